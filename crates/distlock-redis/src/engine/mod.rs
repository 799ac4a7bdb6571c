//! The algorithm shared by the single-instance backend and Redlock: a single
//! instance is a quorum of one.
//!
//! The modules read top to bottom as the lock: [`hold`] (where a hold of
//! each mode lives), [`acquisition`] (one acquire's state), [`acquire`] (one
//! attempt on every instance), [`wait`] (the attempts and the waits between
//! them; also the upgrade), [`extend`], [`release`], [`status`]. This module
//! holds what they share: the instances, the scripts, the per-instance
//! timeout and the errors.

mod acquire;
mod acquisition;
mod extend;
mod hold;
mod release;
mod scripts;
mod status;
mod wait;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{Capabilities, LockError, LockName, Result};
use futures::future::join_all;

use crate::config::RedisConfig;
use crate::instance::{CallError, Instance};
use crate::keys::LockKeys;
use crate::notify::Notifier;

use scripts::Scripts;

/// The shortest ttl accepted: a lease must outlive a few round trips and the
/// drift allowance.
const MIN_TTL: Duration = Duration::from_millis(10);

/// The most leases one extend-script call carries.
pub(crate) const MAX_BATCH: usize = 256;

/// The lock over one or more independent instances.
pub(crate) struct Engine {
    /// `redis` or `redlock`: the kind recorded in leases and errors.
    pub(crate) backend: &'static str,
    config: RedisConfig,
    instances: Vec<Arc<Instance>>,
    notifier: Notifier,
    scripts: Scripts,
    quorum: usize,
    /// Single instance with the waiters' queue.
    fair: bool,
    /// Fair mode: the stem of the clients' liveness channels, which the
    /// queue scripts check a waiter's client against (`""` for the blind
    /// hand-over).
    alive_stem: String,
}

/// How the queue (fair mode) treats waiters that may have vanished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaiterLiveness {
    /// A waiter whose process is gone (its client's liveness channel lost
    /// its subscriber) is skipped, and a hold handed to a waiter lives only
    /// until its queue entry's deadline unless the waiter confirms it.
    Checked,
    /// The behaviour without waiter liveness: a hold handed to a waiter
    /// gets its full ttl, whether the waiter is alive or not. Only for the
    /// test that shows the liveness test failing without the check.
    Blind,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .field("quorum", &self.quorum)
            .field("notifier", &self.notifier)
            .finish()
    }
}

/// A ttl in whole milliseconds, at least 1 (what the scripts take).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Engine {
    /// An engine over the configured instances (no connection is made yet).
    pub(crate) fn new(
        backend: &'static str,
        config: RedisConfig,
        liveness: WaiterLiveness,
    ) -> Result<Self> {
        config.validate()?;
        let instances = config
            .instances
            .iter()
            .map(Instance::new)
            .collect::<Result<Vec<_>>>()?;
        let quorum = instances.len() / 2 + 1;
        let fair = !config.redlock && config.fair;
        let alive_stem = if fair && liveness == WaiterLiveness::Checked {
            format!("{}alive:", config.prefix)
        } else {
            String::new()
        };
        let notified_stem = Some(alive_stem.as_str()).filter(|s| !s.is_empty());
        Ok(Engine {
            fair,
            backend,
            notifier: Notifier::new(backend, &instances, notified_stem),
            alive_stem,
            config,
            instances,
            scripts: Scripts::new(),
            quorum,
        })
    }

    /// What the backend promises (the conformance suite checks each claim):
    /// every mode on both backends; upgrades on one instance only; leader
    /// labels, change notices and lock-at-least-for on both.
    pub(crate) fn claims(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(self.fair)
            .wait_notification(true)
            .session_liveness(false)
            .ttl_expiry(true)
            .lease_handoff(true)
            .cross_process(true)
            .batch_extend(true)
            .shared(true)
            .semaphore(true)
            .upgrade(self.single())
            .labels(true)
            .watch(true)
            .at_least(true)
            .min_ttl(MIN_TTL)
            .max_ttl(Capabilities::default().max_ttl)
            .build()
    }

    /// The number of instances that must agree.
    pub(crate) fn quorum(&self) -> usize {
        self.quorum
    }

    fn single(&self) -> bool {
        !self.config.redlock
    }

    /// How many instances may fail (or refuse) before a quorum is out of reach.
    fn tolerated(&self) -> usize {
        self.instances.len() - self.quorum
    }

    /// Every instance's index.
    fn all(&self) -> Vec<usize> {
        (0..self.instances.len()).collect()
    }

    /// The bound on one call to one instance: the request timeout for a single
    /// instance; for Redlock `ttl / 10` clamped to the configured bounds, far
    /// below the ttl so a dead instance cannot eat the validity.
    fn instance_timeout(&self, ttl: Duration) -> Duration {
        if self.single() {
            self.config.timeout
        } else {
            (ttl / 10).clamp(
                self.config.min_instance_timeout,
                self.config.max_instance_timeout,
            )
        }
    }

    fn keys(&self, name: &LockName) -> LockKeys {
        LockKeys::new(&self.config.prefix, name)
    }

    /// Checks reachability and credentials of every instance (one PING each,
    /// in parallel). A single instance must answer; for Redlock, instances
    /// that are down are tolerated, refused credentials are not.
    pub(crate) async fn check(&self) -> Result<()> {
        let timeout = self.config.timeout;
        let ping = redis::cmd("PING");
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.query::<String>(&ping, timeout)),
        )
        .await;
        for (instance, answer) in self.instances.iter().zip(answers) {
            match answer {
                Ok(_) => {}
                Err(e @ CallError::Auth(_)) => {
                    return Err(self.call_error(&instance.label, "connecting to", &e));
                }
                Err(e) if self.single() => {
                    return Err(self.call_error(&instance.label, "connecting to", &e));
                }
                Err(e) => {
                    tracing::warn!(
                        instance = %instance.label, backend = self.backend, error = %e,
                        "distlock.redis.instance_down"
                    );
                }
            }
        }
        Ok(())
    }

    fn call_error(&self, label: &str, doing: &str, e: &CallError) -> LockError {
        let context = format!("{doing} {label}: {}", e.describe());
        if e.is_unreachable() {
            LockError::unavailable(self.backend, context)
        } else {
            LockError::backend(self.backend, context.clone(), context)
        }
    }

    /// The error for a quorum that could not be reached because instances
    /// failed (rather than because the lock is held).
    fn quorum_error(&self, doing: &str, failures: &[(usize, &CallError)]) -> LockError {
        if self.single() {
            if let Some((i, e)) = failures.first() {
                return self.call_error(&self.instances[*i].label, doing, e);
            }
            return LockError::unavailable(self.backend, format!("{doing}: no answer"));
        }
        let detail = failures
            .iter()
            .map(|(i, e)| format!("{}: {}", self.instances[*i].label, e.describe()))
            .collect::<Vec<_>>()
            .join("; ");
        LockError::unavailable(
            self.backend,
            format!(
                "{doing}: {} of {} instances failed, a quorum of {} is out of reach ({detail})",
                failures.len(),
                self.instances.len(),
                self.quorum
            ),
        )
    }
}
