//! Release: compare owner, free the hold, leave the queue, and grant
//! whoever may go now (or wake every waiter), on every instance.

use std::time::Duration;

use distlock_core::{Lease, LockError, OwnerToken, Result};
use futures::future::join_all;

use crate::instance::CallError;
use crate::keys::LockKeys;

use super::hold::Hold;
use super::Engine;

impl Engine {
    /// Gives `lease` back on every instance (one round trip, in parallel).
    /// `NotHeld` when no instance held it for this owner.
    pub(crate) async fn revoke(&self, lease: &Lease) -> Result<()> {
        let keys = self.keys(lease.name());
        let hold = Hold::of_lease(lease, &keys, !self.single(), self.backend)?;
        let answers = self
            .release_on(&self.all(), &keys, lease.owner(), &hold, lease.ttl())
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
    /// trip): compare owner, free the hold, leave the queue (a Redlock owner
    /// may still be queued where it was refused), then grant the requests
    /// the queue admits now (fair mode) or PUBLISH `*`. A Redlock permit whose slot is
    /// not known (an unfinished acquire) is released from whichever slot
    /// this owner holds. Each answer is 1 when that instance released the
    /// hold, 0 when it did not hold it for `owner`.
    pub(super) async fn release_on(
        &self,
        indexes: &[usize],
        keys: &LockKeys,
        owner: OwnerToken,
        hold: &Hold,
        ttl: Duration,
    ) -> Vec<std::result::Result<i64, CallError>> {
        let timeout = self.instance_timeout(ttl);
        let invocation = match hold {
            Hold::Slot {
                slot: None, limit, ..
            } => {
                let mut invocation = self.scripts.release_slots.prepare_invoke();
                invocation
                    .key(&keys.holders)
                    .key(&keys.permits)
                    .key(&keys.channel)
                    .arg(owner.to_hex())
                    .arg(hold.member(owner))
                    .arg(*limit);
                invocation
            }
            _ => {
                let mut invocation = self.scripts.release.prepare_invoke();
                invocation
                    .key(hold.owning_key(keys))
                    .key(&keys.channel)
                    .key(&keys.queue)
                    .key(&keys.waiters)
                    .key(&keys.fence)
                    .key(&keys.holders)
                    .key(&keys.lock)
                    .key(&keys.holder)
                    .arg(owner.to_hex())
                    .arg(hold.member(owner))
                    .arg(&self.alive_stem);
                invocation
            }
        };
        join_all(
            indexes
                .iter()
                .map(|i| self.instances[*i].invoke::<i64>(&invocation, timeout)),
        )
        .await
    }

    /// Fair mode: leaves the queue and undoes what this owner may have been
    /// granted, on every instance (one round trip, in parallel): releases
    /// the hold it asked for, or, for an `upgrade` (one instance), turns the
    /// writer it became back into the reader it was. Grants whoever may go
    /// afterwards.
    pub(super) async fn abandon(
        &self,
        keys: &LockKeys,
        owner: OwnerToken,
        hold: &Hold,
        upgrade: bool,
        ttl: Duration,
    ) -> Vec<std::result::Result<i64, CallError>> {
        let mut invocation = self.scripts.abandon.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.channel)
            .key(&keys.queue)
            .key(&keys.waiters)
            .key(&keys.fence)
            .key(&keys.holders)
            .key(&keys.holder)
            .arg(owner.to_hex())
            .arg(hold.member(owner))
            .arg(if upgrade { "1" } else { "0" })
            .arg(&self.alive_stem);
        let timeout = self.instance_timeout(ttl);
        join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<i64>(&invocation, timeout)),
        )
        .await
    }
}
