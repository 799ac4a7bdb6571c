//! One acquire, in any mode: its attempts, and the waiting between them.
//!
//! - **Exclusive** (the mutex, the writer): one upsert of the name's row,
//!   which takes it only when no exclusive holder, reader or permit holder
//!   is alive. When readers or permit holders are in its way, the writer
//!   records its intent (see [`verdict`]) and refreshes it
//!   with every attempt until it is granted, gives up or is dropped.
//! - **Shared** and **Permit** (readers, semaphores): one grant transaction
//!   that deletes expired holders, decides by the core's [`Mode::fits`] on
//!   the rest, and adds the holder with the next fencing token.
//!
//! Waiting between attempts is by `NOTIFY` on PostgreSQL (one waiter woken
//! per release) and by polling elsewhere, never sleeping past the time the
//! holders in the way have left. Where waiters poll (MySQL/MariaDB,
//! SQLite), exclusive waiters keep places in a queue on the database (rows
//! of the holders table, kind `q`, living the waiter-liveness window
//! (`waiter_timeout`, [`place_life`]) and kept by each attempt), and the lock goes only to the first live place, or to anyone
//! when none lives: a client that just released cannot take the lock again
//! ahead of those who waited (`attempts` paces how often they look).

use std::time::{Duration, Instant};

use distlock_core::waiting::Attempt;
use distlock_core::{AcquireRequest, FencingToken, Grant, LockError, Mode, Result, Wait};

use crate::attempts::{log_cleanup, Attempts, Dropped, Opened};
use crate::dialect::{Queue, Take};
use crate::holds::Hold;
use crate::key::key;
use crate::notify::Subscription;
use crate::store::Store;
use crate::verdict::{self, Verdict, INTENT_LIFE, INTENT_REFRESH};

/// How long an exclusive waiter's queue place lives on the database clock
/// unless its waiter keeps it: the waiter-liveness window
/// (`waiter_timeout`). A waiter that vanished holds the queue up for at
/// most this long.
pub(crate) fn place_life(store: &Store) -> Duration {
    store.waiter_timeout()
}

/// How often at least a waiter with a place attempts (and so keeps its
/// place): a quarter of the place's life. Its place is renewed by the
/// attempt that finds less than `life - refresh` left of it.
pub(crate) fn place_refresh(life: Duration) -> Duration {
    life / 4
}

/// Tries `request`, then waits and retries until granted or the wait
/// ends: woken by `subscription` when there is one, polling otherwise. An
/// intent or queue place recorded on the way is removed before this
/// returns (one statement).
///
/// # Cancel safety
///
/// Cancel safe: a dropped attempt is undone in the background (see
/// [`exclusive`] and [`holder`]), and so are a recorded intent and place.
/// A future dropped while removing them leaves them to expire, within
/// [`INTENT_LIFE`] and [`place_life`].
pub(crate) async fn acquire(
    store: &Store,
    request: &AcquireRequest,
    subscription: Option<Subscription>,
) -> Result<Option<Grant>> {
    let (key, owner) = (key(&request.name), request.owner.to_hex());
    let a = Attempts::new(
        store,
        request,
        key,
        owner,
        "waiting writer's intent or place",
    );
    let result = a.retry(subscription, || attempt(&a)).await;
    // The exclusive grant leaves the intent and the place: removed after.
    a.end_intent(false).await;
    result
}

/// One attempt in the request's mode.
async fn attempt(a: &Attempts<'_>) -> Result<Attempt> {
    match Hold::of(a.request.mode) {
        None => exclusive(a).await,
        Some(hold) => holder(a, hold).await,
    }
}

/// One exclusive attempt, on one connection of the pool: the acquire
/// statement; when the lock is held and the request waits, what is in the
/// way ([`in_the_way`]), then [`wait_on`] it. A waiter that has a queue
/// place looks first (one read, which locks nothing) and runs the acquire
/// statement only when the lock is free and its place is first.
///
/// # Cancel safety
///
/// From the moment the statement may run until its outcome is known, a
/// clean-up is armed that releases this owner's hold in the background
/// if the attempt is dropped or fails — on the same connection, after
/// the acquire statement, which the database may still be running. The
/// intent and the place are removed in the background too.
async fn exclusive(a: &Attempts<'_>) -> Result<Attempt> {
    let (name, ttl) = (&a.request.name, a.request.options.ttl);
    let mut opened = a
        .open("lock taken by a dropped acquire", release_quietly)
        .await?;
    let looked = if a.has_place() {
        let way = read_the_way(a, &mut opened).await?;
        if !way.open_to_me() {
            opened.cleanup.disarm();
            return wait_on(a, &mut opened, way).await;
        }
        Some(way)
    } else {
        None
    };
    let sent = Instant::now();
    let limit = opened.left();
    let hold = (ttl, a.request.label.as_deref());
    let taken = opened
        .conn
        .take(name, &a.key, &a.owner, hold, limit)
        .await?;
    opened.cleanup.disarm();
    if let Take::Acquired(fence) = taken {
        return Ok(Attempt::Acquired(Grant::new(FencingToken(fence), sent)));
    }
    if a.request.options.wait == Wait::NoWait {
        // Tries once: what is in the way does not matter.
        return Ok(Attempt::Held { remaining: None });
    }
    let way = match looked {
        // Just read: taken again since, or nearly so.
        Some(way) => way,
        None => in_the_way(a, &mut opened, taken).await?,
    };
    wait_on(a, &mut opened, way).await
}

/// Waits on what is in the way: records (refreshes) the writer's intent
/// when readers or permit holders are in the way (or it has one already),
/// and takes (keeps) the waiter's queue place where waiters queue; the
/// time to wait at most before the next attempt.
async fn wait_on(a: &Attempts<'_>, opened: &mut Opened, way: Way) -> Result<Attempt> {
    let mut next = way.remaining;
    if way.shared || a.has_intent() {
        keep_intent(a, opened).await?;
        next = Some(next.map_or(INTENT_REFRESH, |r| r.min(INTENT_REFRESH)));
    }
    if let Some(queue) = way.queue {
        keep_place(a, opened, queue).await?;
        let refresh = place_refresh(place_life(a.store));
        next = Some(next.map_or(refresh, |r| r.min(refresh)));
    }
    Ok(Attempt::Held { remaining: next })
}

/// What stands between an exclusive attempt that did not take the lock
/// and the lock.
struct Way {
    /// The time until the holders' time runs out, if known.
    remaining: Option<Duration>,
    /// Readers or permit holders hold the name.
    shared: bool,
    /// Where the waiter stands in the queue, where waiters queue.
    queue: Option<Queue>,
}

impl Way {
    /// Whether the lock is free, and no waiter goes before this one.
    fn open_to_me(&self) -> bool {
        self.remaining.is_some_and(|r| r.is_zero())
            && !self.shared
            && self.queue.is_none_or(|q| q.ahead == 0)
    }
}

/// What is in the way: as the acquire statement `taken` said, or read
/// ([`read_the_way`]) where it could not say.
async fn in_the_way(a: &Attempts<'_>, opened: &mut Opened, taken: Take) -> Result<Way> {
    match taken {
        Take::Held { remaining, shared } => Ok(Way {
            remaining,
            shared,
            queue: None,
        }),
        _ => read_the_way(a, opened).await,
    }
}

/// Reads what is in the way (one statement, which locks nothing), telling
/// the pace of polling what it saw.
async fn read_the_way(a: &Attempts<'_>, opened: &mut Opened) -> Result<Way> {
    let limit = opened.left();
    let read = opened
        .conn
        .waiting(&a.request.name, &a.key, &a.owner, limit)
        .await?;
    // No row: released or expired since the acquire statement: retry at once.
    let Some(read) = read else {
        return Ok(Way {
            remaining: Some(Duration::ZERO),
            shared: false,
            queue: None,
        });
    };
    if let Some(queue) = read.queue {
        a.saw(read.holder.fence, queue.ahead);
    }
    Ok(Way {
        remaining: Some(read.holder.until_free()),
        shared: read.holder.is_shared(),
        queue: read.queue,
    })
}

/// Records (refreshes) this writer's intent, its removal armed first.
async fn keep_intent(a: &Attempts<'_>, opened: &mut Opened) -> Result<()> {
    a.arm_intent_removal();
    let limit = opened.left();
    let name = &a.request.name;
    opened
        .conn
        .record_intent(name, &a.key, &a.owner, INTENT_LIFE, limit)
        .await
}

/// Takes this waiter's place in the queue, or renews it when less than
/// `life - refresh` is left of it (one statement then), its removal armed
/// first.
async fn keep_place(a: &Attempts<'_>, opened: &mut Opened, queue: Queue) -> Result<()> {
    let life = place_life(a.store);
    let fresh = queue
        .mine
        .is_some_and(|left| left >= life.saturating_sub(place_refresh(life)));
    if fresh {
        return Ok(());
    }
    a.arm_place_removal();
    let limit = opened.left();
    let name = &a.request.name;
    let place = (life, a.arrived);
    opened
        .conn
        .enqueue(name, &a.key, &a.owner, place, limit)
        .await
}

/// One reader or permit attempt: one grant transaction on one
/// connection of the pool, deciding by [`verdict::for_hold`].
///
/// # Cancel safety
///
/// From the moment the transaction may commit until its outcome is
/// known, a clean-up is armed that releases this owner's hold in the
/// background if the attempt is dropped or fails — on the same
/// connection, after the transaction (rolled back if it had not
/// committed).
async fn holder(a: &Attempts<'_>, hold: Hold) -> Result<Attempt> {
    let (name, mode, owner) = (&a.request.name, a.request.mode, a.owner.as_str());
    let undone = "hold taken by a dropped acquire";
    let mut opened = a.open(undone, release_holder_quietly).await?;
    let judge = |state: &_| verdict::for_hold(mode, hold, owner, state);
    let (granted, verdict) = a.transact(&mut opened, judge).await?;
    if let Some(grant) = granted {
        return Ok(Attempt::Acquired(grant));
    }
    match verdict {
        Some(Verdict::Mismatch { declared }) => Err(LockError::PermitMismatch {
            name: name.to_string(),
            declared,
            requested: match mode {
                Mode::Permit { limit } => limit,
                _ => 0,
            },
        }),
        Some(Verdict::Wait { next, .. }) => Ok(Attempt::Held {
            remaining: Some(next),
        }),
        _ => Ok(Attempt::Held { remaining: None }),
    }
}

/// Releases the owner's exclusive hold on the attempt's connection, once
/// the attempt let go of it, for a dropped attempt; a no-op unless the
/// attempt's statement had taken the lock.
async fn release_quietly(d: Dropped) {
    let mut conn = d.conn.lock().await;
    let backend = conn.backend();
    let released = conn.release(&d.name, &d.key, &d.owner).await;
    log_cleanup(backend, &d.name, released);
}

/// Releases the owner's reader or permit on the attempt's connection, for
/// a dropped attempt: first rolls back the transaction if it was left open
/// (the connection then leaves the pool), then releases — a no-op unless
/// the transaction had committed a grant.
async fn release_holder_quietly(d: Dropped) {
    let mut conn = d.conn.lock().await;
    let backend = conn.backend();
    let released = match conn.abandon_transaction(&d.name).await {
        Ok(()) => conn.release_holder(&d.name, &d.key, &d.owner).await,
        Err(e) => Err(e),
    };
    log_cleanup(backend, &d.name, released);
}
