//! Release: compare owner, delete, and wake (or hand the lock to) the next
//! waiter, on every instance.

use std::time::Duration;

use distlock_core::{Lease, LockError, OwnerToken, Result};
use futures::future::join_all;

use crate::instance::CallError;
use crate::keys::LockKeys;

use super::Engine;

impl Engine {
    /// Gives `lease` back on every instance (one round trip, in parallel).
    /// `NotHeld` when no instance held the lock for this owner.
    pub(crate) async fn revoke(&self, lease: &Lease) -> Result<()> {
        let keys = self.keys(lease.name());
        let answers = self
            .release_on(&self.all(), &keys, lease.owner(), lease.ttl())
            .await;
        let released = answers.iter().filter(|a| matches!(a, Ok(1))).count();
        let refused = answers.iter().filter(|a| matches!(a, Ok(0))).count();
        if released > 0 {
            return Ok(());
        }
        if refused > self.tolerated() {
            return Err(LockError::not_held(lease.name().as_str()));
        }
        let failures: Vec<(usize, &CallError)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().err().map(|e| (i, e)))
            .collect();
        Err(self.quorum_error(&format!("releasing `{}`", lease.name()), &failures))
    }

    /// Runs the release script on the given instances in parallel (one round
    /// trip): compare owner, DEL, PUBLISH on the release channel (naming the
    /// next waiter in fair mode, everyone otherwise). Each answer is 1 when
    /// that instance released the lock, 0 when it did not hold it for `owner`.
    pub(super) async fn release_on(
        &self,
        indexes: &[usize],
        keys: &LockKeys,
        owner: OwnerToken,
        ttl: Duration,
    ) -> Vec<std::result::Result<i64, CallError>> {
        let timeout = self.instance_timeout(ttl);
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.channel)
            .key(&keys.queue)
            .key(&keys.waiters)
            .key(&keys.fence)
            .arg(owner.to_hex());
        join_all(
            indexes
                .iter()
                .map(|i| self.instances[*i].invoke::<i64>(&invocation, timeout)),
        )
        .await
    }

    /// Fair mode: leaves the queue and releases whatever this owner holds (one
    /// round trip); wakes the next waiter when we were first in line.
    pub(super) async fn abandon(
        &self,
        keys: &LockKeys,
        owner: OwnerToken,
        ttl: Duration,
    ) -> std::result::Result<i64, CallError> {
        let mut invocation = self.scripts.abandon.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.channel)
            .key(&keys.queue)
            .key(&keys.waiters)
            .key(&keys.fence)
            .arg(owner.to_hex());
        self.instances[0]
            .invoke::<i64>(&invocation, self.instance_timeout(ttl))
            .await
    }
}
