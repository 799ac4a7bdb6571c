//! Status: what the instances can tell about a lock without taking it.

use std::time::Duration;

use distlock_core::{FencingToken, LockName, LockStatus, Result};
use futures::future::join_all;

use crate::instance::CallError;

use super::Engine;

/// The ttl whose per-instance timeout bounds a status read.
const STATUS_TTL: Duration = Duration::from_secs(10);

impl Engine {
    /// Reads the status on every instance (one round trip, in parallel).
    /// Held when a quorum reports a holder (of any mode); `expires_in` is
    /// how long until fewer than a quorum do (for readers and permits: until
    /// the longest-lived of them expires); the fencing token is the highest
    /// counter seen.
    pub(crate) async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let keys = self.keys(name);
        let timeout = self.instance_timeout(STATUS_TTL);
        let mut invocation = self.scripts.status.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.fence)
            .key(&keys.queue)
            .key(&keys.holders);
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<(i64, i64, i64)>(&invocation, timeout)),
        )
        .await;
        let mut waiters = 0usize;
        let mut pttls = Vec::new();
        let mut fence = 0u64;
        let mut failures: Vec<(usize, CallError)> = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok((pttl, counter, queued)) => {
                    waiters = waiters.max(usize::try_from(queued).unwrap_or(0));
                    fence = fence.max(u64::try_from(counter).unwrap_or(0));
                    if pttl != -2 {
                        pttls.push(pttl);
                    }
                }
                Err(e) => failures.push((i, e)),
            }
        }
        if self.instances.len() - failures.len() < self.quorum {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("reading the status of `{name}`"), &failures));
        }
        // The quorum-th longest remaining ttl: until then a quorum still
        // holds the key.
        pttls.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_pttl = pttls.get(self.quorum - 1).copied();
        let held = quorum_pttl.is_some();
        let expires_in = quorum_pttl
            .and_then(|p| u64::try_from(p).ok())
            .map(Duration::from_millis);
        Ok(LockStatus::new(
            held,
            (fence > 0).then_some(FencingToken(fence)),
            expires_in,
            self.fair.then_some(waiters),
        ))
    }
}
