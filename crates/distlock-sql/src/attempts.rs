//! What every attempt of one acquire or upgrade shares: the request, the
//! bound on each attempt, the waiting between attempts, the waiting
//! writer's intent and the waiter's queue place and their removal, and one
//! attempt's connection with the clean-up that undoes the attempt if it is
//! dropped before its outcome is known.

mod pace;
mod waits;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::waiting::{request_bound, Attempt};
use distlock_core::{AcquireOptions, AcquireRequest, FencingToken, Grant, LockName, Mode, Result};
use tokio::sync::OwnedMutexGuard;

use crate::holds::NameState;
use crate::notify::Subscription;
use crate::store::{Store, StoreConnection};
use crate::verdict::Verdict;

use pace::Pace;
use waits::Waits;

/// A pool connection shared by an attempt and the clean-up that undoes it,
/// so that the clean-up runs after the attempt's statements.
pub(crate) type SharedConnection = Arc<tokio::sync::Mutex<StoreConnection>>;

/// What the clean-up of a dropped attempt works on.
pub(crate) struct Dropped {
    /// The attempt's connection, free once the attempt let go of it.
    pub conn: SharedConnection,
    /// The lock.
    pub name: LockName,
    /// Its key.
    pub key: String,
    /// The owner token, as stored.
    pub owner: String,
}

/// What every attempt of one acquire or upgrade shares.
pub(crate) struct Attempts<'a> {
    /// The locks table.
    pub store: &'a Store,
    /// The request (for an upgrade: the lease's name and owner).
    pub request: &'a AcquireRequest,
    /// The name's key.
    pub key: String,
    /// The owner token, as stored.
    pub owner: String,
    deadline: Option<Instant>,
    /// When the request began, in microseconds since the Unix epoch: its
    /// ticket in a queue whose database clock is this machine's.
    pub arrived: i64,
    /// What the removal is of, in clean-up logs.
    intent_is: &'static str,
    /// Removes the owner's intent and queue place; armed once an attempt
    /// recorded either.
    intent: std::sync::Mutex<CleanupOnDrop>,
    /// Whether an attempt recorded a waiting writer's intent.
    recorded_intent: AtomicBool,
    /// Whether an attempt took a queue place.
    placed: AtomicBool,
    /// When to look again, while polling.
    pace: std::sync::Mutex<Pace>,
}

impl<'a> Attempts<'a> {
    /// The attempts of `request` on `store` as `owner`, whose waiting
    /// writer's intent (and queue place) is called `intent_is` in logs.
    pub fn new(
        store: &'a Store,
        request: &'a AcquireRequest,
        key: String,
        owner: String,
        intent_is: &'static str,
    ) -> Self {
        Attempts {
            store,
            request,
            key,
            owner,
            deadline: request.options.wait.deadline(Instant::now()),
            arrived: micros_since_epoch(),
            intent_is,
            intent: std::sync::Mutex::new(CleanupOnDrop::new(store.backend(), intent_is)),
            recorded_intent: AtomicBool::new(false),
            placed: AtomicBool::new(false),
            pace: std::sync::Mutex::new(Pace::new(request.options.backoff)),
        }
    }

    /// Removes the intent and the queue place an attempt recorded (one
    /// statement) — unless `removed`: the grant removed them already.
    ///
    /// # Cancel safety
    ///
    /// A recorded intent or place is removed in the background; a future
    /// dropped while removing it leaves it to expire, within
    /// [`INTENT_LIFE`](crate::verdict::INTENT_LIFE) (an intent) or
    /// the waiter-liveness window ([`place_life`](crate::acquire::place_life)) (a place).
    pub async fn end_intent(&self, removed: bool) {
        let mut intent = std::mem::replace(
            &mut *lock(&self.intent),
            CleanupOnDrop::new(self.store.backend(), self.intent_is),
        );
        self.recorded_intent.store(false, Ordering::Relaxed);
        self.placed.store(false, Ordering::Relaxed);
        if removed {
            intent.disarm();
        } else {
            intent.run_now().await;
        }
    }

    /// Whether an attempt recorded a waiting writer's intent.
    pub fn has_intent(&self) -> bool {
        self.recorded_intent.load(Ordering::Relaxed)
    }

    /// Arms the removal of the intent an attempt records (or recorded).
    pub fn arm_intent_removal(&self) {
        self.recorded_intent.store(true, Ordering::Relaxed);
        self.arm_removal();
    }

    /// Whether an attempt took a queue place.
    pub fn has_place(&self) -> bool {
        self.placed.load(Ordering::Relaxed)
    }

    /// Arms the removal of the queue place an attempt takes (or took); the
    /// same statement removes an intent.
    pub fn arm_place_removal(&self) {
        self.placed.store(true, Ordering::Relaxed);
        self.arm_removal();
    }

    fn arm_removal(&self) {
        let mut intent = lock(&self.intent);
        if !intent.is_armed() {
            intent.arm(forget_intent_quietly(
                self.store.clone(),
                self.request.name.clone(),
                self.key.clone(),
                self.owner.clone(),
            ));
        }
    }

    /// Tells the pace of polling what an attempt saw: the name's last
    /// fencing token and how many wait ahead in its queue.
    pub fn saw(&self, fence: u64, ahead: u64) {
        lock(&self.pace).saw(fence, ahead);
    }

    /// Runs `attempt` until it is granted or the wait ends, as [`retry`]
    /// does, polling at the pace the attempts' sightings set.
    pub async fn retry<A, F>(
        &self,
        subscription: Option<Subscription>,
        attempt: A,
    ) -> Result<Option<Grant>>
    where
        A: FnMut() -> F,
        F: Future<Output = Result<Attempt>>,
    {
        let shares = self.request.mode != Mode::Exclusive;
        let waits = Waits {
            options: &self.request.options,
            key: &self.key,
            shares,
            pace: &self.pace,
        };
        waits.run(subscription, attempt).await
    }

    /// A connection of the pool for one attempt, held by the attempt:
    /// waiting for a free one counts against the caller's wait (never less
    /// than the statement timeout; see [`Store::connection`]), and the
    /// attempt's statements are then bounded by the statement timeout cut
    /// to the caller's deadline ([`request_bound`]). `undo` (called
    /// `undone` in logs) is armed to run on it in the background, after
    /// the attempt's statements, unless the attempt
    /// [disarms](CleanupOnDrop::disarm) it once its outcome is known.
    pub async fn open<U, Fut>(&self, undone: &'static str, undo: U) -> Result<Opened>
    where
        U: FnOnce(Dropped) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let conn = self
            .store
            .connection(&self.request.name, self.deadline)
            .await?;
        let until = Instant::now() + request_bound(self.store.timeout(), self.deadline);
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let held = Arc::clone(&conn).lock_owned().await;
        let mut cleanup = CleanupOnDrop::new(self.store.backend(), undone);
        cleanup.arm(undo(Dropped {
            conn,
            name: self.request.name.clone(),
            key: self.key.clone(),
            owner: self.owner.clone(),
        }));
        Ok(Opened {
            conn: held,
            cleanup,
            until,
        })
    }

    /// One grant transaction on `opened` for the request's ttl, deciding
    /// by what `judge` concludes from what it read; the clean-up is
    /// disarmed once its outcome is known. The grant it made, if any, and
    /// the verdict.
    pub async fn transact(
        &self,
        opened: &mut Opened,
        mut judge: impl FnMut(&NameState) -> Verdict + Send,
    ) -> Result<(Option<Grant>, Option<Verdict>)> {
        let mut verdict = None;
        let mut decide = |state: &NameState| {
            let v = judge(state);
            verdict = Some(v);
            v.decision()
        };
        let sent = Instant::now();
        let (name, ttl) = (&self.request.name, self.request.options.ttl);
        let limit = opened.left();
        let fence = opened
            .conn
            .transact(name, &self.key, &self.owner, ttl, &mut decide, limit)
            .await?;
        opened.cleanup.disarm();
        let granted = fence.map(|fence| Grant::new(FencingToken(fence), sent));
        Ok((granted, verdict))
    }
}

/// One attempt's connection, and the clean-up armed on it.
pub(crate) struct Opened {
    /// The connection, held by the attempt.
    pub conn: OwnedMutexGuard<StoreConnection>,
    /// Undoes the attempt in the background unless disarmed.
    pub cleanup: CleanupOnDrop,
    until: Instant,
}

impl Opened {
    /// The time left of the attempt's bound.
    pub fn left(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

/// Runs `attempt` until it is granted or the wait of `options` ends: woken
/// by `subscription` (see [`Waits`]) where there is one, polling with the
/// options' backoff otherwise; never sleeping past the time the holders
/// in the way have left. `subscription` was taken before the first
/// attempt, so a release between an attempt and its wait is not missed.
/// With `shares` (a reader's or permit's request), a wake it got in on
/// goes on to the next waiter, who may get in beside it.
pub(crate) async fn retry<A, F>(
    options: &AcquireOptions,
    subscription: Option<Subscription>,
    (key, shares): (&str, bool),
    attempt: A,
) -> Result<Option<Grant>>
where
    A: FnMut() -> F,
    F: Future<Output = Result<Attempt>>,
{
    let pace = std::sync::Mutex::new(Pace::new(options.backoff));
    let waits = Waits {
        options,
        key,
        shares,
        pace: &pace,
    };
    waits.run(subscription, attempt).await
}

/// Removes a waiting writer's intent and a waiter's queue place, for an
/// acquire that ended or was dropped; failing that, they expire within
/// [`INTENT_LIFE`](crate::verdict::INTENT_LIFE) and
/// the waiter-liveness window ([`place_life`](crate::acquire::place_life)).
async fn forget_intent_quietly(store: Store, name: LockName, key: String, owner: String) {
    if let Err(e) = store.forget_intent(&name, &key, &owner).await {
        tracing::debug!(
            lock = %name, backend = store.backend(), error = %e,
            "distlock.sql.cleanup_failed"
        );
    }
}

/// The wall clock now, in microseconds since the Unix epoch (0 before it).
fn micros_since_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Logs what a clean-up did.
pub(crate) fn log_cleanup(backend: &'static str, name: &LockName, outcome: Result<bool>) {
    match outcome {
        Ok(true) => tracing::debug!(lock = %name, backend, "distlock.sql.cleanup_released"),
        Ok(false) => {}
        Err(e) => tracing::debug!(
            lock = %name, backend, error = %e,
            "distlock.sql.cleanup_failed"
        ),
    }
}
