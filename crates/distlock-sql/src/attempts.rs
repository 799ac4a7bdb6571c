//! What every attempt of one acquire or upgrade shares: the request, the
//! bound on each attempt, the waiting between attempts, the waiting
//! writer's intent and its removal, and one attempt's connection with the
//! clean-up that undoes the attempt if it is dropped before its outcome is
//! known.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::waiting::{notified_acquire, poll_acquire, request_bound, Attempt};
use distlock_core::{AcquireOptions, AcquireRequest, FencingToken, Grant, LockName, Result};
use tokio::sync::OwnedMutexGuard;

use crate::holds::NameState;
use crate::notify::Subscription;
use crate::store::{Store, StoreConnection};
use crate::verdict::Verdict;

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
    /// What the intent is, in clean-up logs.
    intent_is: &'static str,
    /// Removes the owner's intent; armed once an attempt recorded one.
    intent: std::sync::Mutex<CleanupOnDrop>,
}

impl<'a> Attempts<'a> {
    /// The attempts of `request` on `store` as `owner`, whose waiting
    /// writer's intent is called `intent_is` in logs.
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
            intent_is,
            intent: std::sync::Mutex::new(CleanupOnDrop::new(store.backend(), intent_is)),
        }
    }

    /// Removes the intent an attempt recorded (one statement) — unless
    /// `removed`: the grant removed it already.
    ///
    /// # Cancel safety
    ///
    /// A recorded intent is removed in the background; a future dropped
    /// while removing it leaves it to expire, within
    /// [`INTENT_LIFE`](crate::verdict::INTENT_LIFE).
    pub async fn end_intent(&self, removed: bool) {
        let mut intent = std::mem::replace(
            &mut *lock(&self.intent),
            CleanupOnDrop::new(self.store.backend(), self.intent_is),
        );
        if removed {
            intent.disarm();
        } else {
            intent.run_now().await;
        }
    }

    /// Whether an attempt recorded an intent (its removal is armed).
    pub fn has_intent(&self) -> bool {
        lock(&self.intent).is_armed()
    }

    /// Arms the removal of the intent an attempt records (or recorded).
    pub fn arm_intent_removal(&self) {
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

    /// A connection of the pool for one attempt, bounded by the statement
    /// timeout cut to the caller's deadline ([`request_bound`]), held by
    /// the attempt; `undo` (called `undone` in logs) is armed to run on it
    /// in the background, after the attempt's statements, unless the
    /// attempt [disarms](CleanupOnDrop::disarm) it once its outcome is
    /// known.
    pub async fn open<U, Fut>(&self, undone: &'static str, undo: U) -> Result<Opened>
    where
        U: FnOnce(Dropped) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let until = Instant::now() + request_bound(self.store.timeout(), self.deadline);
        let left = until.saturating_duration_since(Instant::now());
        let conn = self.store.connection(&self.request.name, left).await?;
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

/// Removes a waiting writer's intent, for an acquire that ended or was
/// dropped; failing that, it expires within
/// [`INTENT_LIFE`](crate::verdict::INTENT_LIFE).
async fn forget_intent_quietly(store: Store, name: LockName, key: String, owner: String) {
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
