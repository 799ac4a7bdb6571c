//! [`RedlockBackend`]: the lock over several independent instances.

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, ChangeNotices, Grant, Lease, LockBackend, LockError,
    LockName, LockStatus, Renewal, Result,
};

use crate::config::RedisConfig;
use crate::engine::{Clients, Engine, QueueOrder, TokenRule, Variant, WaiterLiveness, MAX_BATCH};
use crate::REDLOCK;

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
    pub async fn from_config(config: RedisConfig) -> Result<Self> {
        Self::with_variant(config, Clients::Configured, Variant::SHIPPED).await
    }

    /// Shares `redis::Client`s the application already has, one per
    /// independent instance: their addresses, databases, credentials and
    /// TLS settings are used, and `config` gives only the options (prefix,
    /// timeouts, fairness, waiter timeout; its instances are replaced by the
    /// clients', so [`RedisConfig::default`] will do). Connections are opened through the
    /// clients on first use; one PING per instance, in parallel, as for
    /// [`from_config`](Self::from_config).
    ///
    /// ```no_run
    /// # async fn demo() -> distlock_core::Result<()> {
    /// use distlock_redis::{redis, RedisConfig, RedlockBackend};
    ///
    /// let clients = ["redis://h1:6379", "redis://h2:6379", "redis://h3:6379"]
    ///     .into_iter()
    ///     .map(redis::Client::open)
    ///     .collect::<redis::RedisResult<Vec<_>>>()
    ///     .expect("redis URLs");
    /// let backend = RedlockBackend::from_clients(clients, RedisConfig::default()).await?;
    /// assert_eq!(backend.quorum(), 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for no client or bad options; refused credentials as
    /// for [`from_config`](Self::from_config).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    pub async fn from_clients(clients: Vec<redis::Client>, config: RedisConfig) -> Result<Self> {
        Self::with_variant(config, Clients::Given(clients), Variant::SHIPPED).await
    }

    /// Not for use: a backend whose fencing tokens come from the counters
    /// alone (`INCR`, without the servers' clocks as a floor), so they start
    /// again from 1 when the instances restart empty. It exists so that a
    /// test can show tokens going backwards without the clock.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    #[doc(hidden)]
    pub async fn from_config_counter_only_tokens(config: RedisConfig) -> Result<Self> {
        let variant = Variant {
            tokens: TokenRule::CounterOnly,
            ..Variant::SHIPPED
        };
        Self::with_variant(config, Clients::Configured, variant).await
    }

    /// Not for use: a backend without waiter liveness — a hold handed to a
    /// queued waiter gets its full ttl whether the waiter is alive or not.
    /// It exists so that a test can show a vanished waiter holding up the
    /// line for its ttl without the check.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    #[doc(hidden)]
    pub async fn from_config_blind_to_dead_waiters(config: RedisConfig) -> Result<Self> {
        let variant = Variant {
            liveness: WaiterLiveness::Blind,
            ..Variant::SHIPPED
        };
        Self::with_variant(config, Clients::Configured, variant).await
    }

    /// Not for use: a fair backend whose instances order their queues by
    /// when each waiter's request reached them (each its own clock) rather
    /// than by the waiter's ticket, so instances that a request reached in
    /// different orders disagree on who is next. It exists so that a test
    /// can show waiters served out of arrival order without the tickets.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempts.
    #[doc(hidden)]
    pub async fn from_config_queued_by_arrival(config: RedisConfig) -> Result<Self> {
        let variant = Variant {
            order: QueueOrder::Arrival,
            ..Variant::SHIPPED
        };
        Self::with_variant(config, Clients::Configured, variant).await
    }

    async fn with_variant(
        mut config: RedisConfig,
        clients: Clients,
        variant: Variant,
    ) -> Result<Self> {
        config.redlock = true;
        let engine = Arc::new(Engine::new(REDLOCK, config, clients, variant)?);
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

    /// Fencing, FIFO unless `fair=false` (the writer and readers; permits
    /// do not queue), notified waits, ttl expiry, lease hand-off, batched
    /// extension, readers, semaphores, leader labels, change notices and
    /// lock-at-least-for; no sessions, no upgrades.
    fn claims(&self) -> Capabilities {
        self.engine.claims()
    }

    /// Takes the name in `request.mode` on a quorum (a permit: one permit
    /// slot on a quorum), waiting on the instances' release channels between
    /// attempts; in fair mode (the default) the writer and readers wait in
    /// every instance's queue, by their ticket, and a release hands the
    /// name to the head, which confirms it with its next attempt.
    ///
    /// Round trips: one per attempt on every instance in parallel, plus one
    /// when the fencing counters of the granting quorum disagree, plus one to
    /// give back a partial hold; the first wait adds one SUBSCRIBE per
    /// instance unless the channel is still subscribed (fair mode: one more
    /// per new pub/sub connection, for the client's liveness channel).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing held and nothing queued
    /// (the owner token is released, and the queue entries removed, on
    /// every instance in the background).
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

    /// Extends every lease of the batch, of any modes, in one script call
    /// per instance.
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

    /// Releases the hold (any mode; a permit's slot) on every instance,
    /// leaves any queue the owner is still in, and hands each instance to
    /// the head of its queue (fair mode), or wakes every waiter.
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

    /// Held when a quorum reports a holder; a writer holding on a quorum
    /// with its label and token, else the highest fencing counter.
    ///
    /// Round trips: one (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// Read-only: dropping the future changes nothing.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        self.engine.inspect(name).await
    }

    /// Keeps a hold released before its lock-at-least-for minimum until
    /// `hold` from now, and wakes the waiters to wait for that expiry.
    ///
    /// Round trips: one (every instance in parallel).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have shortened the hold; if not, it
    /// frees when its ttl ends (never before the minimum).
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        self.engine.release_after(lease, hold).await
    }

    /// Change notices: a watcher of the lock's release channel, woken by
    /// every release, hand-over and leader's grant.
    ///
    /// Round trips: one SUBSCRIBE per instance, in parallel, unless the channel is subscribed
    /// already.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream stops watching.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        self.engine.watch(name).await
    }
}
