//! Upgrading a reader to the writer, in place: one grant transaction per
//! attempt, which turns the owner's reader row into the exclusive hold of
//! the name's row (with the next fencing token) only when that reader is
//! the only holder left. While it waits, the upgrade keeps an intent (see
//! [`verdict`]), so no new reader comes in; other writers'
//! intents do not stop it.

use std::sync::Arc;

use distlock_core::sync::lock;
use distlock_core::waiting::Attempt;
use distlock_core::{AcquireRequest, Grant, Lease, LockError, Result};

use crate::attempts::{log_cleanup, retry, Attempts, Dropped};
use crate::key::key;
use crate::notify::Subscription;
use crate::store::Store;
use crate::verdict::{self, Verdict, INTENT_REFRESH};

/// Upgrades `lease` as `request` (the lease's name and owner, the
/// exclusive mode, the new ttl and the wait) asks: tries, then waits and
/// retries until upgraded or the wait ends (the reader still held then).
/// The reader's owner token stays the owner. An intent left on the way is
/// removed before this returns (one statement).
///
/// # Cancel safety
///
/// A dropped attempt whose outcome is unknown is undone in the background
/// (see [`attempt`]); a recorded intent is removed in the background. The
/// reader stays held either way.
pub(crate) async fn upgrade(
    store: &Store,
    lease: &Lease,
    request: &AcquireRequest,
    subscription: Option<Subscription>,
) -> Result<Option<Grant>> {
    let (key, owner) = (key(lease.name()), lease.owner().to_hex());
    let a = Attempts::new(store, request, key, owner, "upgrade's intent");
    let result = retry(&request.options, subscription, (&a.key, false), || {
        attempt(&a)
    })
    .await;
    // The upgrading transaction removed the intent.
    a.end_intent(matches!(result, Ok(Some(_)))).await;
    result
}

/// One attempt: one grant transaction deciding by
/// [`verdict::for_upgrade`].
///
/// # Cancel safety
///
/// From the moment the transaction may commit until its outcome is known,
/// a clean-up is armed that undoes an upgrade in the background (the
/// exclusive hold becomes the reader again, with the same expiry) and
/// removes the intent — on the same connection, after the transaction
/// (rolled back if it had not committed).
async fn attempt(a: &Attempts<'_>) -> Result<Attempt> {
    // The fencing token this attempt's upgrade takes, once it decided to:
    // what the clean-up undoes, and nothing else (a later upgrade of the
    // same reader takes a greater one).
    let taking: Arc<std::sync::Mutex<Option<u64>>> = Arc::default();
    let undo = |dropped| downgrade_quietly(dropped, Arc::clone(&taking));
    let mut opened = a.open("dropped upgrade", undo).await?;
    let owner = a.owner.as_str();
    let judge = |state: &_| {
        let v = verdict::for_upgrade(owner, state);
        let upgrading = v == Verdict::Upgrade;
        *lock(&taking) = state.fence.filter(|_| upgrading).map(|f| f + 1);
        v
    };
    let (granted, verdict) = a.transact(&mut opened, judge).await?;
    if let Some(grant) = granted {
        return Ok(Attempt::Acquired(grant));
    }
    match verdict {
        Some(Verdict::Wait { next, .. }) => {
            a.arm_intent_removal();
            Ok(Attempt::Held {
                remaining: Some(next.min(INTENT_REFRESH)),
            })
        }
        _ => Err(LockError::not_held(a.request.name.as_str())),
    }
}

/// Undoes an upgrade of the owner on the attempt's connection, for a
/// dropped attempt: first rolls back the transaction if it was left open
/// (the connection then leaves the pool), then undoes the upgrade that took
/// the fencing token in `taking` — a no-op unless the transaction had
/// committed it — and removes the intent.
async fn downgrade_quietly(d: Dropped, taking: Arc<std::sync::Mutex<Option<u64>>>) {
    let mut conn = d.conn.lock().await;
    let backend = conn.backend();
    let fence = *lock(&taking);
    let undone = match conn.abandon_transaction(&d.name).await {
        Ok(()) => conn.downgrade(&d.name, &d.key, &d.owner, fence).await,
        Err(e) => Err(e),
    };
    log_cleanup(backend, &d.name, undone);
}
