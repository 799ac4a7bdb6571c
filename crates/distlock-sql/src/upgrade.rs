//! Upgrading a reader to the writer, in place: one grant transaction per
//! attempt, which turns the owner's reader row into the exclusive hold of
//! the name's row (with the next fencing token) only when that reader is
//! the only holder left. While it waits, the upgrade keeps an intent (see
//! [`verdict`](crate::verdict)), so no new reader comes in; other writers'
//! intents do not stop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::waiting::{request_bound, Attempt};
use distlock_core::{AcquireRequest, FencingToken, Grant, Lease, LockError, LockName, Result};

use crate::acquire::{forget_intent_quietly, log_cleanup, retry, SharedConnection};
use crate::holds::NameState;
use crate::key::key;
use crate::notify::Subscription;
use crate::store::Store;
use crate::verdict::{self, Verdict, INTENT_REFRESH};

/// One upgrade: what every attempt of it shares.
pub(crate) struct Upgrade<'a> {
    store: &'a Store,
    request: &'a AcquireRequest,
    key: String,
    /// The reader's owner token, as stored: it stays the owner.
    owner: String,
    deadline: Option<Instant>,
    /// Removes the upgrade's intent; armed once an attempt recorded one.
    intent: std::sync::Mutex<CleanupOnDrop>,
}

impl<'a> Upgrade<'a> {
    /// An upgrade of `lease` as `request` (the lease's name and owner, the
    /// exclusive mode, the new ttl and the wait) asks.
    pub fn new(store: &'a Store, lease: &Lease, request: &'a AcquireRequest) -> Self {
        Upgrade {
            store,
            request,
            key: key(lease.name()),
            owner: lease.owner().to_hex(),
            deadline: request.options.wait.deadline(Instant::now()),
            intent: std::sync::Mutex::new(CleanupOnDrop::new(store.backend(), "upgrade's intent")),
        }
    }

    /// Tries, then waits and retries until upgraded or the wait ends (the
    /// reader still held then). An intent left on the way is removed before
    /// this returns (one statement).
    ///
    /// # Cancel safety
    ///
    /// A dropped attempt whose outcome is unknown is undone in the
    /// background (see [`attempt`](Upgrade::attempt)); a recorded intent is
    /// removed in the background. The reader stays held either way.
    pub async fn run(self, subscription: Option<Subscription>) -> Result<Option<Grant>> {
        let options = &self.request.options;
        let result = retry(options, subscription, &self.key, || self.attempt()).await;
        let mut intent = std::mem::replace(
            &mut *lock(&self.intent),
            CleanupOnDrop::new(self.store.backend(), "upgrade's intent"),
        );
        if matches!(result, Ok(Some(_))) {
            // The upgrading transaction removed it.
            intent.disarm();
        } else {
            intent.run_now().await;
        }
        result
    }

    /// One attempt: one grant transaction deciding by
    /// [`verdict::for_upgrade`].
    ///
    /// # Cancel safety
    ///
    /// From the moment the transaction may commit until its outcome is
    /// known, a clean-up is armed that undoes an upgrade in the background
    /// (the exclusive hold becomes the reader again, with the same expiry)
    /// and removes the intent — on the same connection, after the
    /// transaction (rolled back if it had not committed).
    async fn attempt(&self) -> Result<Attempt> {
        let name = &self.request.name;
        let until = Instant::now() + self.limit();
        let left = || until.saturating_duration_since(Instant::now());
        let conn = self.store.connection(name, left()).await?;
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let mut attempt_conn = Arc::clone(&conn).lock_owned().await;
        // The fencing token this attempt's upgrade takes, once it decided to:
        // what the clean-up undoes, and nothing else (a later upgrade of the
        // same reader takes a greater one).
        let taking: Arc<std::sync::Mutex<Option<u64>>> = Arc::default();
        let mut cleanup = CleanupOnDrop::new(self.store.backend(), "dropped upgrade");
        cleanup.arm(downgrade_quietly(
            conn,
            name.clone(),
            self.key.clone(),
            self.owner.clone(),
            Arc::clone(&taking),
        ));
        let owner = self.owner.as_str();
        let mut verdict = None;
        let mut decide = |state: &NameState| {
            let v = verdict::for_upgrade(owner, state);
            let upgrading = v == Verdict::Upgrade;
            *lock(&taking) = state.fence.filter(|_| upgrading).map(|f| f + 1);
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
            Some(Verdict::Wait { next, .. }) => {
                self.arm_intent_removal();
                Ok(Attempt::Held {
                    remaining: Some(next.min(INTENT_REFRESH)),
                })
            }
            _ => Err(LockError::not_held(name.as_str())),
        }
    }

    /// Arms the removal of the intent the last attempt recorded.
    fn arm_intent_removal(&self) {
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

    /// The bound on one attempt: the statement timeout cut to the caller's
    /// deadline ([`request_bound`]).
    fn limit(&self) -> Duration {
        request_bound(self.store.timeout(), self.deadline)
    }
}

/// Undoes an upgrade of `owner` on `key` on the attempt's connection, for a
/// dropped attempt: first rolls back the transaction if it was left open
/// (the connection then leaves the pool), then undoes the upgrade that took
/// the fencing token in `taking` — a no-op unless the transaction had
/// committed it — and removes the intent.
async fn downgrade_quietly(
    conn: SharedConnection,
    name: LockName,
    key: String,
    owner: String,
    taking: Arc<std::sync::Mutex<Option<u64>>>,
) {
    let mut conn = conn.lock().await;
    let backend = conn.backend();
    let fence = *lock(&taking);
    let undone = match conn.abandon_transaction(&name).await {
        Ok(()) => conn.downgrade(&name, &key, &owner, fence).await,
        Err(e) => Err(e),
    };
    log_cleanup(backend, &name, undone);
}
