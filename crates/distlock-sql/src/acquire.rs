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
//! Waiting between attempts is by `NOTIFY` on PostgreSQL and by polling
//! elsewhere (the core's loops), never sleeping past the time the holders
//! in the way have left.

use std::time::{Duration, Instant};

use distlock_core::waiting::Attempt;
use distlock_core::FencingToken;
use distlock_core::{AcquireRequest, Grant, LockError, Mode, Result};

use crate::attempts::{log_cleanup, retry, Attempts, Dropped};
use crate::dialect::Take;
use crate::holds::Hold;
use crate::key::key;
use crate::notify::Subscription;
use crate::store::Store;
use crate::verdict::{self, Verdict, INTENT_LIFE, INTENT_REFRESH};

/// Tries `request`, then waits and retries until granted or the wait
/// ends: woken by `subscription` when there is one, polling otherwise. An
/// intent recorded on the way is removed before this returns (one
/// statement).
///
/// # Cancel safety
///
/// Cancel safe: a dropped attempt is undone in the background (see
/// [`exclusive`] and [`holder`]), and so is a recorded intent. A future
/// dropped while removing the intent leaves it to expire, within
/// [`INTENT_LIFE`].
pub(crate) async fn acquire(
    store: &Store,
    request: &AcquireRequest,
    subscription: Option<Subscription>,
) -> Result<Option<Grant>> {
    let (key, owner) = (key(&request.name), request.owner.to_hex());
    let a = Attempts::new(store, request, key, owner, "waiting writer's intent");
    let result = retry(&request.options, subscription, &a.key, || attempt(&a)).await;
    // The exclusive grant leaves the intent: it is removed after.
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
/// statement; on MySQL and SQLite a read of the holders' remaining time
/// when the lock is held; and the writer's intent when readers or
/// permit holders are in the way (or it has one already).
///
/// # Cancel safety
///
/// From the moment the statement may run until its outcome is known, a
/// clean-up is armed that releases this owner's hold in the background
/// if the attempt is dropped or fails — on the same connection, after
/// the acquire statement, which the database may still be running.
async fn exclusive(a: &Attempts<'_>) -> Result<Attempt> {
    let (name, ttl) = (&a.request.name, a.request.options.ttl);
    let mut opened = a
        .open("lock taken by a dropped acquire", release_quietly)
        .await?;
    let sent = Instant::now();
    let limit = opened.left();
    let taken = opened.conn.take(name, &a.key, &a.owner, ttl, limit).await?;
    opened.cleanup.disarm();
    let (remaining, shared) = match taken {
        Take::Acquired(fence) => {
            return Ok(Attempt::Acquired(Grant::new(FencingToken(fence), sent)))
        }
        Take::Held { remaining, shared } => (remaining, shared),
        Take::HeldAskRemaining => {
            // A row released or expired since the acquire statement:
            // retry at once.
            let limit = opened.left();
            match opened.conn.holder(name, &a.key, limit).await? {
                Some(h) => (Some(h.until_free()), h.is_shared()),
                None => (Some(Duration::ZERO), false),
            }
        }
    };
    if !shared && !a.has_intent() {
        return Ok(Attempt::Held { remaining });
    }
    // Records (refreshes) this writer's intent, its removal armed first.
    a.arm_intent_removal();
    let limit = opened.left();
    opened
        .conn
        .record_intent(name, &a.key, &a.owner, INTENT_LIFE, limit)
        .await?;
    let capped = remaining.map_or(INTENT_REFRESH, |r| r.min(INTENT_REFRESH));
    Ok(Attempt::Held {
        remaining: Some(capped),
    })
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
