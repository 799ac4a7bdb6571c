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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use distlock_core::{Capabilities, LockError, LockName, Result};
use futures::future::join_all;

use crate::config::{InstanceConfig, RedisConfig};
use crate::instance::{described, Acks, CallError, Instance};
use crate::keys::LockKeys;
use crate::notify::Notifier;

use hold::Hold;
use scripts::{Channels, Scripts};

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
    /// The waiters' queue (one instance, or on each Redlock instance for
    /// the writer and readers).
    fair: bool,
    /// Redlock fair mode: waiters queue by their tickets (the client's
    /// clock at the acquire's start), not by each instance's clock.
    tickets: bool,
    /// Fair mode: the stem of the clients' liveness channels, which the
    /// queue scripts check a waiter's client against (`""` for the blind
    /// hand-over).
    alive_stem: String,
}

/// Where the engine's connections to its instances come from.
pub(crate) enum Clients {
    /// Clients built from the configuration's instances.
    Configured,
    /// The application's own clients, one per instance, in order; they
    /// replace the configuration's instances.
    Given(Vec<redis::Client>),
}

/// The instances of `config`, or those of the given clients (which then
/// become `config`'s instances), after checking the configuration.
fn instances(config: &mut RedisConfig, clients: Clients) -> Result<Vec<Arc<Instance>>> {
    match clients {
        Clients::Configured => {
            config.validate()?;
            if let Some(cluster) = &config.cluster {
                return Ok(vec![Instance::cluster(cluster)?]);
            }
            match &config.sentinel {
                Some(sentinel) => Ok(vec![Instance::following(sentinel)?]),
                None => config.instances.iter().map(Instance::new).collect(),
            }
        }
        Clients::Given(_) if config.sentinel.is_some() => Err(LockError::invalid_config(
            "a Sentinel configuration finds its primary itself: build the backend from it alone, without clients",
        )),
        Clients::Given(_) if config.cluster.is_some() => Err(LockError::invalid_config(
            "a Redis Cluster configuration finds its nodes itself: build the backend from it alone, without clients",
        )),
        Clients::Given(clients) => {
            let described: Vec<(String, InstanceConfig)> = clients.iter().map(described).collect();
            config.instances = described.iter().map(|(_, i)| i.clone()).collect();
            config.validate()?;
            let labels = described.into_iter().map(|(label, _)| label);
            Ok(clients
                .into_iter()
                .zip(labels)
                .map(|(client, label)| Instance::with_client(label, client))
                .collect())
        }
    }
}

/// What the engine deliberately lacks: nothing ([`Variant::SHIPPED`]),
/// except in the purpose-broken backends that tests show failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Variant {
    /// How the queue treats waiters that may have vanished.
    pub(crate) liveness: WaiterLiveness,
    /// How the scripts issue fencing tokens.
    pub(crate) tokens: TokenRule,
    /// How Redlock instances order their waiters' queues.
    pub(crate) order: QueueOrder,
}

impl Variant {
    /// The backend as shipped.
    pub(crate) const SHIPPED: Variant = Variant {
        liveness: WaiterLiveness::Checked,
        tokens: TokenRule::ClockFloor,
        order: QueueOrder::Ticket,
    };
}

/// How the instances of a fair Redlock order their waiters' queues (one
/// instance always orders by its own clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueOrder {
    /// By the waiter's ticket: its client's clock in µs when the acquire
    /// began, then its owner token; the same on every instance, so every
    /// instance puts the same waiters in the same order, whenever each
    /// request reaches it.
    Ticket,
    /// By each instance's clock when the waiter's request reached it. Only
    /// for the test that shows waiters served out of order when requests
    /// reach the instances in different orders.
    Arrival,
}

/// How the scripts issue fencing tokens (`scripts/lib/fence.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenRule {
    /// max(counter + 1, the server's clock in µs), which becomes the
    /// counter: tokens rise across an instance that forgot its counter
    /// while its clock does not step back by more than the time between
    /// two grants.
    ClockFloor,
    /// The counter alone (`INCR`), which starts again from 1 on an
    /// instance that forgot it. Only for the test that shows tokens going
    /// backwards without the clock.
    CounterOnly,
}

/// How far ahead of the client's clock a Redlock acquire proposes its
/// token (see [`Engine::proposed_token`]).
const PROPOSAL_LEAD: Duration = Duration::from_millis(20);

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
        mut config: RedisConfig,
        clients: Clients,
        variant: Variant,
    ) -> Result<Self> {
        let instances = instances(&mut config, clients)?;
        let quorum = instances.len() / 2 + 1;
        let fair = config.fair;
        let tickets = fair && config.redlock && variant.order == QueueOrder::Ticket;
        let alive_stem = if fair && variant.liveness == WaiterLiveness::Checked {
            format!("{}alive:", config.prefix)
        } else {
            String::new()
        };
        // A cluster's `PUBSUB NUMSUB` counts one node's subscribers only:
        // waiters there are judged by their queue entries' deadlines.
        let notified_stem =
            Some(alive_stem.as_str()).filter(|s| !s.is_empty() && config.cluster.is_none());
        let channels = if config.cluster.is_some() {
            Channels::Sharded
        } else {
            Channels::Classic
        };
        Ok(Engine {
            fair,
            tickets,
            backend,
            notifier: Notifier::new(backend, &instances, notified_stem),
            alive_stem,
            config,
            instances,
            scripts: Scripts::new(variant.tokens, channels),
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

    /// The most leases one extend-script call carries: [`MAX_BATCH`], or one
    /// in a cluster (a script's keys must share a slot).
    pub(crate) fn max_batch(&self) -> usize {
        if self.config.cluster.is_some() {
            1
        } else {
            MAX_BATCH
        }
    }

    /// Whether a request for `hold` waits in the queue (fair mode; Redlock
    /// permits, each a mutex on a slot of its own, do not).
    fn queues(&self, hold: &Hold) -> bool {
        self.fair && !matches!(hold, Hold::Slot { .. })
    }

    /// Redlock fair mode: a new acquire's ticket, its place in every
    /// instance's queue (the client's clock in µs); empty where each
    /// instance orders by its own clock.
    fn ticket(&self) -> String {
        if !self.tickets {
            return String::new();
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_micros().to_string())
            .unwrap_or_default()
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

    /// Redlock: the fencing token an acquire proposes to every instance, so
    /// that they issue the same one and it is settled in one round: the
    /// client's clock in µs, a little ahead (an instance takes it only when
    /// it is above its own max(counter + 1, clock) and at most 100 ms ahead
    /// of its clock; it never lowers a token). A request delayed past the
    /// lead, or a client clock off by more, only costs the write-back round.
    /// Empty on one instance, and when the client's clock reads before 1970.
    fn proposed_token(&self) -> String {
        if self.single() {
            return String::new();
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| (since + PROPOSAL_LEAD).as_micros().to_string())
            .unwrap_or_default()
    }

    /// Single instance with `replicas`: how many replicas must acknowledge
    /// each grant and extension, and how long to wait for them.
    fn acks(&self) -> Option<Acks> {
        (self.config.replicas > 0).then_some(Acks {
            replicas: self.config.replicas,
            timeout: self.config.replica_timeout,
        })
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
        if e.is_unavailable() {
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
