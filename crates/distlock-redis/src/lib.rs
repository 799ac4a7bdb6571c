//! # distlock-redis
//!
//! Distributed locks on Redis: [`RedisBackend`] on one instance, and
//! [`RedlockBackend`] over several *independent* instances (not replicas of
//! each other) using the Redlock algorithm, both with fencing tokens and with
//! waiters woken by pub/sub.
//!
//! ## URLs
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?params]      one instance
//! rediss://[user[:password]@]host[:port][/db][?params]     one instance over TLS
//! redlock://[user[:password]@]h1[:p1],[user[:password]@]h2[:p2],…[/db][?params]
//! ```
//!
//! - The port defaults to 6379, the database to 0. IPv6 hosts go in brackets.
//! - User and password are percent-decoded (write `@`, `:`, `,`, `/` in a
//!   password as `%40`, `%3A`, `%2C`, `%2F`). `redis://:pw@…` authenticates
//!   the `default` user with `pw` (`requirepass`); `redis://user:pw@…` an ACL
//!   user.
//! - In a `redlock://` URL each instance may carry its own credentials; an
//!   instance without any uses those of the *first* instance.
//! - Parameters: `prefix=` (key prefix, default `distlock:`, no `{` or `}`),
//!   `timeout_ms=` (single instance: bound on one request, default 2000),
//!   `fair=` (single instance: serve waiters in arrival order, default
//!   `true`), `queue_ttl_ms=` (fair mode: life of a waiter's queue entry
//!   between refreshes, default 2000), `min_instance_timeout_ms=` /
//!   `max_instance_timeout_ms=` (Redlock: the per-instance timeout is
//!   `ttl / 10` clamped to these, default 50 and 500), `tls=true` (Redlock
//!   over TLS; `rediss://` does it for one instance). TLS uses rustls with the
//!   system's root certificates.
//!
//! Passwords never appear in errors, logs or `Debug` output.
//!
//! ## Keys
//!
//! A lock named `n` uses `{<prefix><n'>}:lock` (the owner token, expiring with
//! the ttl), `{<prefix><n'>}:fence` (the fencing counter, kept forever), the
//! channel `{<prefix><n'>}:released`, and in fair mode `{<prefix><n'>}:queue`
//! and `{<prefix><n'>}:waiters` (expiring when nobody waits). `n'` is `n` with
//! `%`, `{`, `}` percent-escaped (so the hash tag cannot be broken and all
//! keys of a lock share a cluster slot) and shortened with a hash suffix when
//! longer than 512 bytes.
//!
//! ## What it guarantees
//!
//! - **Mutual exclusion** while a lease is valid. Validity is measured on the
//!   monotonic clock: start of the request + ttl − drift, drift = 1% of the
//!   ttl + 2 ms. With Redlock, a lease is only returned when a quorum
//!   (N/2 + 1) of instances granted it and validity remains after all
//!   round trips.
//! - **Liveness** is the ttl alone: a holder that vanishes frees the lock
//!   after at most its ttl. There are no sessions; [`LockClient`] guards
//!   extend themselves at a third of the ttl.
//! - **Fencing tokens** strictly increase across holders. One instance: the
//!   acquire script `INCR`s the name's counter. Redlock: every granting
//!   instance increments its counter in the same script; the token is the
//!   highest value among them, and unless a quorum of them already hold that
//!   value, it is written back (raise-only, and only while we hold the lock
//!   there) to a quorum before the lease is returned. Two quorums intersect,
//!   so the next holder's counters start above it. This survives instance
//!   restarts only if the instances persist every write: `appendonly yes`
//!   (Redis writes the AOF before replying, so a killed process loses
//!   nothing) and `appendfsync always` to survive a machine crash too. An
//!   instance that restarts empty forgets locks and counters (see
//!   `docs/backends/redis.md`).
//! - **Waiting** is by notification: the release script `PUBLISH`es on the
//!   lock's channel. A waiter subscribes before its second attempt, and each
//!   wait ends on a release message or after the holder's remaining PTTL, so
//!   a crashed holder costs no more than its ttl. There is no fixed-interval
//!   polling (only while too few instances can be subscribed is a wait cut to
//!   a backoff delay). One pub/sub connection per instance per backend
//!   client is shared by all its waiters; one task fans messages out.
//! - **Fairness**: on one instance (by default) waiters queue on the server
//!   (a sorted set of owner tokens by arrival) and only the oldest live
//!   waiter may take a free lock. The release script *hands the lock over*:
//!   it sets the lock to the oldest live waiter's owner token with that
//!   waiter's ttl, increments the fencing counter and publishes
//!   `<owner>:<token>`, so exactly that waiter wakes (no herd) and owns the
//!   lock without a round trip of its own. Its validity counts from the start
//!   of its last attempt that found the lock held (the hand-over carries a
//!   higher fencing token than that attempt saw, so it happened later). A
//!   client that releases and re-acquires at once goes to the back of the
//!   line (`fifo = true`). A waiter refreshes its queue entry at least every
//!   third of `queue_ttl_ms`; a waiter that vanished is dropped from the line
//!   when its entry expires, or, if the lock was handed to it first, holds it
//!   up for at most its ttl, like a holder that vanished. A try without
//!   waiting does not queue and fails while anyone waits. Redlock has no
//!   queue (`fifo = false`): every waiter wakes on a release and they race;
//!   each waiter is bounded only by its own wait.
//! - **Round trips**: acquire 1 per attempt (Redlock: 1, or 2 when the
//!   counters of the granting quorum disagree, plus 1 to give back a partial
//!   hold; fair mode: none for a lock handed over by a release); extend 1 for
//!   any number of leases ([`DistributedLock::extend_many`]); release 1;
//!   status 1; a waiter's first wait adds one SUBSCRIBE unless the channel is
//!   still subscribed from an earlier wait. Redlock
//!   runs each round on all instances in parallel, each call bounded by the
//!   per-instance timeout, so a dead instance costs at most that timeout.
//! - **Partitions**: a holder cut off from its instances cannot extend; its
//!   guard reports loss when its validity passes, before the keys expire on
//!   the servers (validity ends `drift` earlier), so before anyone else can
//!   take the lock. With Redlock, a minority of instances down or cut off is
//!   tolerated; without a quorum, operations fail with `Unavailable`.
//! - **Not guaranteed**: safety across an instance that loses its data
//!   (restart without fsync'd AOF, failover to a lagging replica), or across
//!   clocks that jump on the servers (Redis expires keys by wall clock).
//!   Use fencing tokens at the protected resource for correctness that does
//!   not depend on timing.
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use std::sync::Arc;
//! use distlock_core::LockClient;
//! use distlock_redis::RedlockBackend;
//!
//! let backend = RedlockBackend::connect("redlock://h1:6379,h2:6379,h3:6379").await?;
//! let client = LockClient::new(Arc::new(backend));
//! let guard = client.lock("billing/run").await?;
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! [`LockClient`]: distlock_core::LockClient

#![warn(missing_docs)]

mod config;
mod engine;
mod instance;
mod keys;
mod notify;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    async_trait, validate_ttl, AcquireOptions, Capabilities, DistributedLock, Lease, LockError,
    LockName, LockStatus, Result,
};

pub use config::{Credentials, InstanceConfig, RedisConfig, DEFAULT_PREFIX};

use engine::Engine;

/// The shortest ttl accepted: a lease must outlive a few round trips and the
/// drift allowance.
const MIN_TTL: Duration = Duration::from_millis(10);

fn capabilities(fifo: bool) -> Capabilities {
    Capabilities::builder()
        .fencing(true)
        .fifo(fifo)
        .wait_notification(true)
        .session_liveness(false)
        .ttl_expiry(true)
        .lease_handoff(true)
        .cross_process(true)
        .batch_extend(true)
        .min_ttl(MIN_TTL)
        .build()
}

/// Connects to the backend a `redis://`, `rediss://` or `redlock://` URL names.
///
/// # Cancel safety
///
/// Dropping the future abandons the connection attempt; nothing is held.
pub async fn connect(url: &str) -> Result<Arc<dyn DistributedLock>> {
    let config = RedisConfig::from_url(url)?;
    if config.redlock {
        Ok(Arc::new(RedlockBackend::with_config(config).await?))
    } else {
        Ok(Arc::new(RedisBackend::with_config(config).await?))
    }
}

macro_rules! backend_impl {
    ($ty:ident, $name:literal) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("engine", &self.engine)
                    .finish()
            }
        }

        #[async_trait]
        impl DistributedLock for $ty {
            fn backend_name(&self) -> &'static str {
                $name
            }

            fn capabilities(&self) -> Capabilities {
                capabilities(self.engine.fair)
            }

            /// Acquire: one round trip per attempt (see the crate docs);
            /// waits on the release channel between attempts.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future leaves nothing held: an attempt in flight
            /// is released in the background, and the waiter's subscription
            /// is dropped (its channel unsubscribed once no one waits on it).
            async fn acquire(
                &self,
                name: &LockName,
                options: &AcquireOptions,
            ) -> Result<Option<Lease>> {
                options.validate(&self.capabilities())?;
                self.engine.acquire(name, options).await
            }

            /// Extend: one round trip (per instance, in parallel).
            ///
            /// # Cancel safety
            ///
            /// Dropping the future may or may not have extended the lease;
            /// the old lease stays correct either way.
            async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
                lease.check_backend(self.backend_name())?;
                validate_ttl(ttl, &self.capabilities())?;
                self.engine
                    .extend_many(&[(lease.clone(), ttl)])
                    .await
                    .pop()
                    .unwrap_or_else(|| Err(LockError::not_held(lease.name().as_str())))
            }

            /// Release: one round trip (per instance, in parallel); publishes
            /// on the lock's release channel.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future may or may not have released the lock; if
            /// not, it frees when the ttl ends.
            async fn release(&self, lease: &Lease) -> Result<()> {
                lease.check_backend(self.backend_name())?;
                self.engine.release(lease).await
            }

            /// Extends every lease in one extend-script call per instance.
            ///
            /// # Cancel safety
            ///
            /// As for `extend`.
            async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
                let caps = self.capabilities();
                let mut results: Vec<Option<Result<Lease>>> = Vec::with_capacity(leases.len());
                let mut batch = Vec::new();
                let mut positions = Vec::new();
                for (k, lease) in leases.iter().enumerate() {
                    match lease
                        .check_backend(self.backend_name())
                        .and_then(|_| validate_ttl(lease.ttl(), &caps))
                    {
                        Ok(()) => {
                            results.push(None);
                            positions.push(k);
                            batch.push((lease.clone(), lease.ttl()));
                        }
                        Err(e) => results.push(Some(Err(e))),
                    }
                }
                let extended = self.engine.extend_many(&batch).await;
                for (k, r) in positions.into_iter().zip(extended) {
                    results[k] = Some(r);
                }
                results
                    .into_iter()
                    .zip(leases)
                    .map(|(r, l)| r.unwrap_or_else(|| Err(LockError::not_held(l.name().as_str()))))
                    .collect()
            }

            /// Status: one round trip (per instance, in parallel).
            async fn status(&self, name: &LockName) -> Result<LockStatus> {
                self.engine.status(name).await
            }
        }
    };
}

/// A lock on one Redis instance (`redis://` or `rediss://`).
///
/// Cloning is cheap and shares connections.
#[derive(Clone)]
pub struct RedisBackend {
    engine: Arc<Engine>,
}

impl RedisBackend {
    /// Connects to the instance a `redis://` or `rediss://` URL names and
    /// checks it answers (wrong credentials are an error here).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn connect(url: &str) -> Result<Self> {
        let config = RedisConfig::from_url(url)?;
        if config.redlock {
            return Err(LockError::invalid_config(
                "a redlock:// URL names several instances: use RedlockBackend",
            ));
        }
        Self::with_config(config).await
    }

    /// Connects with a configuration built by hand.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn with_config(mut config: RedisConfig) -> Result<Self> {
        config.redlock = false;
        let engine = Arc::new(Engine::new("redis", config)?);
        engine.check().await?;
        Ok(RedisBackend { engine })
    }
}

backend_impl!(RedisBackend, "redis");

/// Redlock over several independent Redis instances (`redlock://`).
///
/// Cloning is cheap and shares connections.
#[derive(Clone)]
pub struct RedlockBackend {
    engine: Arc<Engine>,
}

impl RedlockBackend {
    /// Connects to the instances a `redlock://` URL names. Instances that are
    /// down are tolerated (they are retried on every operation); refused
    /// credentials are an error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    pub async fn connect(url: &str) -> Result<Self> {
        let config = RedisConfig::from_url(url)?;
        if !config.redlock {
            return Err(LockError::invalid_config(
                "RedlockBackend takes a redlock:// URL; use RedisBackend for one instance",
            ));
        }
        Self::with_config(config).await
    }

    /// Connects with a configuration built by hand.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    pub async fn with_config(mut config: RedisConfig) -> Result<Self> {
        config.redlock = true;
        let engine = Arc::new(Engine::new("redlock", config)?);
        engine.check().await?;
        Ok(RedlockBackend { engine })
    }

    /// The number of instances that must agree.
    pub fn quorum(&self) -> usize {
        self.engine.instances.len() / 2 + 1
    }
}

backend_impl!(RedlockBackend, "redlock");
