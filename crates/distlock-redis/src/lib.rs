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
//! - Parameters (the core's one vocabulary, read by
//!   [`BackendUrl`](distlock_core::BackendUrl)):
//!   - `prefix=` key prefix, default `distlock:`, no `{` or `}`;
//!   - `timeout=` (duration: `2s`, `500ms`; legacy `timeout_ms=<ms>`) the
//!     bound on one request to a single instance and on the connection
//!     check, default 2 s;
//!   - `fair=` (single instance) serve waiters in arrival order, default
//!     `true`;
//!   - `queue_ttl=` (legacy `queue_ttl_ms=`) fair mode: life of a waiter's
//!     queue entry between refreshes, default 2 s;
//!   - `min_instance_timeout=` / `max_instance_timeout=` (legacy `_ms`
//!     forms) Redlock: the per-instance timeout is `ttl / 10` clamped to
//!     these, default 50 ms and 500 ms;
//!   - `tls=` TLS to every instance (`rediss://` does it for one instance).
//!     TLS uses rustls with the system's root certificates.
//!
//!   Booleans are `true/false/1/0/on/off/yes/no` in any case; unknown
//!   parameters are refused, naming them. The same settings by hand:
//!   [`RedisConfig`] and its `with_*` setters, then
//!   [`RedisBackend::from_config`] / [`RedlockBackend::from_config`].
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
//! - **Mutual exclusion** while a lease is valid. The backend reports when
//!   it sent the request that took (or extended) the lock; the core turns
//!   that into the lease's validity with its one drift rule
//!   ([`distlock_core::validity`]: sent + ttl − drift, on the monotonic
//!   clock). With Redlock, a lock is only granted when a quorum (N/2 + 1) of
//!   instances granted it and validity remains after all round trips.
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
//!   lock without a round trip of its own. Its validity counts from the send
//!   time of its last attempt that found the lock held (the hand-over carries a
//!   higher fencing token than that attempt saw, so it happened later). A
//!   client that releases and re-acquires at once goes to the back of the
//!   line (`fifo = true`). A waiter refreshes its queue entry at least every
//!   third of `queue_ttl`; a waiter that vanished is dropped from the line
//!   when its entry expires, or, if the lock was handed to it first, holds it
//!   up for at most its ttl, like a holder that vanished. A try without
//!   waiting does not queue and fails while anyone waits. Redlock has no
//!   queue (`fifo = false`): every waiter wakes on a release and they race;
//!   each waiter is bounded only by its own wait.
//! - **Round trips**: acquire 1 per attempt (Redlock: 1, or 2 when the
//!   counters of the granting quorum disagree, plus 1 to give back a partial
//!   hold; fair mode: none for a lock handed over by a release); extend 1 for
//!   up to 256 leases (the core splits
//!   [`extend_many`](distlock_core::DistributedLock::extend_many) into
//!   batches of that size, each one script call per instance); release 1;
//!   status 1; a waiter's first wait adds one SUBSCRIBE unless the channel is
//!   still subscribed from an earlier wait. Redlock
//!   runs each round on all instances in parallel, each call bounded by the
//!   per-instance timeout, so a dead instance costs at most that timeout.
//! - **Partitions**: a holder cut off from its instances cannot extend; its
//!   guard reports loss when its validity passes, before the keys expire on
//!   the servers (validity ends the core's drift allowance earlier), so
//!   before anyone else can
//!   take the lock. With Redlock, a minority of instances down or cut off is
//!   tolerated; without a quorum, operations fail with `Unavailable`.
//! - **Not guaranteed**: safety across an instance that loses its data
//!   (restart without fsync'd AOF, failover to a lagging replica), or across
//!   clocks that jump on the servers (Redis expires keys by wall clock).
//!   Use fencing tokens at the protected resource for correctness that does
//!   not depend on timing.
//!
//! Option and lease checks, lease validity, `extend_many` batching, tracing
//! and metrics are the core's checked layer around this crate's
//! [`LockBackend`] implementations: this crate is only the algorithm.
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

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, DistributedLock, Grant, Lease, LockBackend,
    LockError, LockName, LockStatus, Renewal, Result,
};

pub use config::{
    Credentials, InstanceConfig, RedisConfig, DEFAULT_MAX_INSTANCE_TIMEOUT,
    DEFAULT_MIN_INSTANCE_TIMEOUT, DEFAULT_PREFIX, DEFAULT_QUEUE_TTL, DEFAULT_TIMEOUT,
};

use engine::{Engine, MAX_BATCH};

/// The kind of the single-instance backend, recorded in its leases.
const REDIS: &str = "redis";
/// The kind of the Redlock backend, recorded in its leases.
const REDLOCK: &str = "redlock";

/// Connects to the backend a `redis://`, `rediss://` or `redlock://` URL names.
///
/// # Cancel safety
///
/// Dropping the future abandons the connection attempt; nothing is held.
pub async fn connect(url: &str) -> Result<Arc<dyn DistributedLock>> {
    let config = RedisConfig::from_url(url)?;
    if config.redlock {
        Ok(Arc::new(RedlockBackend::from_config(config).await?))
    } else {
        Ok(Arc::new(RedisBackend::from_config(config).await?))
    }
}

/// A lock on one Redis instance (`redis://` or `rediss://`).
///
/// Cloning is cheap and shares connections.
#[derive(Clone, Debug)]
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
        Self::from_config(config).await
    }

    /// Connects with a configuration built by hand (one PING).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn from_config(mut config: RedisConfig) -> Result<Self> {
        config.redlock = false;
        let engine = Arc::new(Engine::new(REDIS, config)?);
        engine.check().await?;
        Ok(RedisBackend { engine })
    }
}

#[async_trait]
impl LockBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        REDIS
    }

    /// Fencing, FIFO unless `fair=false`, notified waits, ttl expiry, lease
    /// hand-off, batched extension; no sessions, no shared or permit modes.
    fn claims(&self) -> Capabilities {
        self.engine.claims()
    }

    /// Takes the lock, waiting on its release channel between attempts.
    ///
    /// Round trips: one per attempt; the first wait adds one SUBSCRIBE
    /// unless the channel is still subscribed; a lock handed over by a
    /// release (fair mode) costs none.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing held and nothing queued
    /// (the owner token is released, or the queue left, in the background).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.engine.grant(request).await
    }

    /// Extends the lease if this owner still holds it (never revives an
    /// expired one).
    ///
    /// Round trips: one.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        self.engine.renew(lease, ttl).await
    }

    /// Extends every lease of the batch in one script call.
    ///
    /// Round trips: one for the whole batch.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended any of the leases.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        self.engine.renew_batch(batch).await
    }

    /// The most leases one extend-script call carries.
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Releases the lock and hands it to the next waiter (fair mode) or
    /// wakes every waiter.
    ///
    /// Round trips: one.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        self.engine.revoke(lease).await
    }

    /// Holder's remaining ttl, fencing counter and queue length.
    ///
    /// Round trips: one.
    ///
    /// # Cancel safety
    ///
    /// Read-only: dropping the future changes nothing.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        self.engine.inspect(name).await
    }
}

/// Redlock over several independent Redis instances (`redlock://`).
///
/// Cloning is cheap and shares connections.
#[derive(Clone, Debug)]
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
        Self::from_config(config).await
    }

    /// Connects with a configuration built by hand (one PING per instance,
    /// in parallel).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    pub async fn from_config(mut config: RedisConfig) -> Result<Self> {
        config.redlock = true;
        let engine = Arc::new(Engine::new(REDLOCK, config)?);
        engine.check().await?;
        Ok(RedlockBackend { engine })
    }

    /// The number of instances that must agree.
    pub fn quorum(&self) -> usize {
        self.engine.quorum()
    }
}

#[async_trait]
impl LockBackend for RedlockBackend {
    fn kind(&self) -> &'static str {
        REDLOCK
    }

    /// Fencing, notified waits, ttl expiry, lease hand-off, batched
    /// extension; no FIFO (waiters race), no sessions, no shared or permit
    /// modes.
    fn claims(&self) -> Capabilities {
        self.engine.claims()
    }

    /// Takes the lock on a quorum, waiting on the instances' release
    /// channels between attempts.
    ///
    /// Round trips: one per attempt on every instance in parallel, plus one
    /// when the fencing counters of the granting quorum disagree, plus one to
    /// give back a partial hold; the first wait adds one SUBSCRIBE per
    /// instance unless the channel is still subscribed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing held (the owner token is
    /// released on every instance in the background).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.engine.grant(request).await
    }

    /// Extends the lease on every instance; renewed when a quorum extended
    /// it (never revives an expired one).
    ///
    /// Round trips: one (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        self.engine.renew(lease, ttl).await
    }

    /// Extends every lease of the batch in one script call per instance.
    ///
    /// Round trips: one for the whole batch (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended any of the leases.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        self.engine.renew_batch(batch).await
    }

    /// The most leases one extend-script call carries.
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Releases the lock on every instance and wakes every waiter.
    ///
    /// Round trips: one (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        self.engine.revoke(lease).await
    }

    /// Held when a quorum reports a holder; the highest fencing counter.
    ///
    /// Round trips: one (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// Read-only: dropping the future changes nothing.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        self.engine.inspect(name).await
    }
}
