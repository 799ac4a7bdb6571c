//! One acquire, in any mode: its attempts, and the waiting between them.
//!
//! - **Exclusive** (the mutex, the writer): one upsert of the name's row,
//!   which takes it only when no exclusive holder, reader or permit holder
//!   is alive. When readers or permit holders are in its way, the writer
//!   records its intent (see [`verdict`](crate::verdict)) and refreshes it
//!   with every attempt until it is granted, gives up or is dropped.
//! - **Shared** and **Permit** (readers, semaphores): one grant transaction
//!   that deletes expired holders, decides by the core's [`Mode::fits`] on
//!   the rest, and adds the holder with the next fencing token.
//!
//! Waiting between attempts is by `NOTIFY` on PostgreSQL and by polling
//! elsewhere (the core's loops), never sleeping past the time the holders
//! in the way have left.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::waiting::{notified_acquire, poll_acquire, request_bound, Attempt};
use distlock_core::{
    AcquireOptions, AcquireRequest, FencingToken, Grant, LockError, LockName, Mode, Result,
};

use crate::dialect::Take;
use crate::holds::{Hold, NameState};
use crate::key::key;
use crate::notify::Subscription;
use crate::store::{Store, StoreConnection};
use crate::verdict::{self, Verdict, INTENT_LIFE, INTENT_REFRESH};

/// A pool connection shared by an attempt and the clean-up that undoes it,
/// so that the clean-up runs after the attempt's statements.
pub(crate) type SharedConnection = Arc<tokio::sync::Mutex<StoreConnection>>;

/// One acquire: what every attempt of it shares.
pub(crate) struct Acquire<'a> {
    store: &'a Store,
    request: &'a AcquireRequest,
    key: String,
    /// The owner token the core drew for this acquire, as stored.
    owner: String,
    deadline: Option<Instant>,
    /// Removes this writer's intent; armed once an attempt records one.
    intent: std::sync::Mutex<CleanupOnDrop>,
}

impl<'a> Acquire<'a> {
    /// An acquire of `request` on `store`.
    pub fn new(store: &'a Store, request: &'a AcquireRequest) -> Self {
        Acquire {
            store,
            request,
            key: key(&request.name),
            owner: request.owner.to_hex(),
            deadline: request.options.wait.deadline(Instant::now()),
            intent: std::sync::Mutex::new(CleanupOnDrop::new(
                store.backend(),
                "waiting writer's intent",
            )),
        }
    }

    /// Tries, then waits and retries until granted or the wait ends: woken
    /// by `subscription` when there is one, polling otherwise. An intent
    /// recorded on the way is removed before this returns (one statement).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped attempt is undone in the background (see
    /// [`exclusive`](Acquire::exclusive) and [`holder`](Acquire::holder)),
    /// and so is a recorded intent. A future dropped while removing the
    /// intent leaves it to expire, within [`INTENT_LIFE`].
    pub async fn run(self, subscription: Option<Subscription>) -> Result<Option<Grant>> {
        let options = &self.request.options;
        let result = retry(options, subscription, &self.key, || self.attempt()).await;
        let intent = std::mem::replace(
            &mut *lock(&self.intent),
            CleanupOnDrop::new(self.store.backend(), "waiting writer's intent"),
        );
        intent.run_now().await;
        result
    }

    /// One attempt in the request's mode.
    async fn attempt(&self) -> Result<Attempt> {
        match Hold::of(self.request.mode) {
            None => self.exclusive().await,
            Some(hold) => self.holder(hold).await,
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
    async fn exclusive(&self) -> Result<Attempt> {
        let (name, ttl) = (&self.request.name, self.request.options.ttl);
        let until = Instant::now() + self.limit();
        let left = || until.saturating_duration_since(Instant::now());
        let conn = self.store.connection(name, left()).await?;
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let mut attempt_conn = Arc::clone(&conn).lock_owned().await;
        let mut cleanup =
            CleanupOnDrop::new(self.store.backend(), "lock taken by a dropped acquire");
        cleanup.arm(release_quietly(
            conn,
            name.clone(),
            self.key.clone(),
            self.owner.clone(),
        ));
        let sent = Instant::now();
        let taken = attempt_conn
            .take(name, &self.key, &self.owner, ttl, left())
            .await?;
        cleanup.disarm();
        let (remaining, shared) = match taken {
            Take::Acquired(fence) => {
                return Ok(Attempt::Acquired(Grant::new(FencingToken(fence), sent)))
            }
            Take::Held { remaining, shared } => (remaining, shared),
            Take::HeldAskRemaining => {
                // A row released or expired since the acquire statement:
                // retry at once.
                match attempt_conn.holder(name, &self.key, left()).await? {
                    Some(h) => (Some(h.until_free()), h.is_shared()),
                    None => (Some(Duration::ZERO), false),
                }
            }
        };
        if !shared && !lock(&self.intent).is_armed() {
            return Ok(Attempt::Held { remaining });
        }
        self.record_intent(&mut attempt_conn, left()).await?;
        let capped = remaining.map_or(INTENT_REFRESH, |r| r.min(INTENT_REFRESH));
        Ok(Attempt::Held {
            remaining: Some(capped),
        })
    }

    /// Records (refreshes) this writer's intent on the attempt's
    /// connection, its removal armed first.
    async fn record_intent(
        &self,
        attempt_conn: &mut StoreConnection,
        limit: Duration,
    ) -> Result<()> {
        {
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
        let name = &self.request.name;
        attempt_conn
            .record_intent(name, &self.key, &self.owner, INTENT_LIFE, limit)
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
    async fn holder(&self, hold: Hold) -> Result<Attempt> {
        let (name, mode) = (&self.request.name, self.request.mode);
        let until = Instant::now() + self.limit();
        let left = || until.saturating_duration_since(Instant::now());
        let conn = self.store.connection(name, left()).await?;
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let mut attempt_conn = Arc::clone(&conn).lock_owned().await;
        let mut cleanup =
            CleanupOnDrop::new(self.store.backend(), "hold taken by a dropped acquire");
        cleanup.arm(release_holder_quietly(
            conn,
            name.clone(),
            self.key.clone(),
            self.owner.clone(),
        ));
        let owner = self.owner.as_str();
        let mut verdict = None;
        let mut decide = |state: &NameState| {
            let v = verdict::for_hold(mode, hold, owner, state);
            verdict = Some(v);
            v.decision()
        };
        let sent = Instant::now();
        let ttl = self.request.options.ttl;
        let fence = attempt_conn
            .transact(name, &self.key, owner, ttl, &mut decide, left())
            .await?;
        cleanup.disarm();
        if let Some(fence) = fence {
            return Ok(Attempt::Acquired(Grant::new(FencingToken(fence), sent)));
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

    /// The bound on one attempt: the statement timeout cut to the caller's
    /// deadline ([`request_bound`]).
    fn limit(&self) -> Duration {
        request_bound(self.store.timeout(), self.deadline)
    }
}

/// Runs `attempt` until it is granted or the wait of `options` ends: woken
/// by `subscription` (when this key's release is heard, or notifications
/// may have been missed) where there is one, polling with the options'
/// backoff otherwise; never sleeping past the time the holders in the way
/// have left. `subscription` was taken before the first attempt, so a
/// release between an attempt and its wait is not missed.
pub(crate) async fn retry<A, F>(
    options: &AcquireOptions,
    subscription: Option<Subscription>,
    key: &str,
    attempt: A,
) -> Result<Option<Grant>>
where
    A: FnMut() -> F,
    F: Future<Output = Result<Attempt>>,
{
    let Some(subscription) = subscription else {
        return poll_acquire(options, attempt).await;
    };
    let subscription = tokio::sync::Mutex::new(subscription);
    let subscription = &subscription;
    notified_acquire(options, attempt, move |bound| async move {
        subscription.lock().await.wait(key, bound).await
    })
    .await
}

/// Releases `owner`'s exclusive hold on `key` on the attempt's connection,
/// once the attempt let go of it, for a dropped attempt; a no-op unless the
/// attempt's statement had taken the lock.
async fn release_quietly(conn: SharedConnection, name: LockName, key: String, owner: String) {
    let mut conn = conn.lock().await;
    let backend = conn.backend();
    let released = conn.release(&name, &key, &owner).await;
    log_cleanup(backend, &name, released);
}

/// Releases `owner`'s reader or permit on `key` on the attempt's
/// connection, for a dropped attempt: first rolls back the transaction if
/// it was left open (the connection then leaves the pool), then releases —
/// a no-op unless the transaction had committed a grant.
async fn release_holder_quietly(
    conn: SharedConnection,
    name: LockName,
    key: String,
    owner: String,
) {
    let mut conn = conn.lock().await;
    let backend = conn.backend();
    let released = match conn.abandon_transaction(&name).await {
        Ok(()) => conn.release_holder(&name, &key, &owner).await,
        Err(e) => Err(e),
    };
    log_cleanup(backend, &name, released);
}

/// Removes a waiting writer's intent, for an acquire that ended or was
/// dropped; failing that, it expires within [`INTENT_LIFE`].
pub(crate) async fn forget_intent_quietly(
    store: Store,
    name: LockName,
    key: String,
    owner: String,
) {
    if let Err(e) = store.forget_intent(&name, &key, &owner).await {
        tracing::debug!(
            lock = %name, backend = store.backend(), error = %e,
            "distlock.sql.cleanup_failed"
        );
    }
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
