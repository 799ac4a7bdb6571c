//! [`RedisBackend`]: the lock on one instance.

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, ChangeNotices, Grant, Lease, LockBackend, LockError,
    LockName, LockStatus, Renewal, Result,
};

use crate::config::RedisConfig;
use crate::engine::{Clients, Engine, TokenRule, Variant, WaiterLiveness};
use crate::sentinel::Primary;
use crate::REDIS;

/// A lock on one Redis instance (`redis://` or `rediss://`), on the
/// primary its sentinels name (`redis+sentinel://`), followed across
/// failovers, or on a Redis Cluster (`redis+cluster://`), each lock on the
/// primary of its slot.
///
/// Cloning is cheap and shares connections.
#[derive(Clone, Debug)]
pub struct RedisBackend {
    engine: Arc<Engine>,
}

impl RedisBackend {
    /// Connects to the instance a `redis://` or `rediss://` URL names, to
    /// the primary the sentinels of a `redis+sentinel://` URL name, or to
    /// the cluster a `redis+cluster://` URL's seeds belong to, and checks it
    /// answers (wrong credentials are an error here).
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
    pub async fn from_config(config: RedisConfig) -> Result<Self> {
        Self::with_variant(config, Clients::Configured, Variant::SHIPPED).await
    }

    /// Shares a `redis::Client` the application already has: its address,
    /// database, credentials and TLS settings are used, and `config` gives
    /// only the options (prefix, timeout, fairness, waiter timeout; its
    /// instance is replaced by the client's, so
    /// [`RedisConfig::default`] will do). The backend opens its own
    /// multiplexed connection and pub/sub connection through the client, on
    /// first use, and checks the server answers (one PING).
    ///
    /// ```no_run
    /// # async fn demo() -> distlock_core::Result<()> {
    /// use std::sync::Arc;
    /// use distlock_core::LockClient;
    /// use distlock_redis::{redis, RedisBackend, RedisConfig};
    ///
    /// let shared = redis::Client::open("redis://127.0.0.1:6379/0").expect("a redis URL");
    /// let options = RedisConfig::default().with_prefix("app:");
    /// let backend = RedisBackend::from_client(shared.clone(), options).await?;
    /// let locks = LockClient::new(Arc::new(backend));
    /// let guard = locks.lock("billing/run").await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for bad options; the connection errors of
    /// [`from_config`](Self::from_config).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn from_client(client: redis::Client, config: RedisConfig) -> Result<Self> {
        Self::with_variant(config, Clients::Given(vec![client]), Variant::SHIPPED).await
    }

    /// Not for use: a backend *without* waiter liveness, whose queue hands
    /// a hold to a waiter with its full ttl whether the waiter is alive or
    /// not, and never checks a waiter's process. It exists so that a test
    /// can show the waiter-liveness tests failing without the check.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    #[doc(hidden)]
    pub async fn from_config_blind_to_dead_waiters(config: RedisConfig) -> Result<Self> {
        let variant = Variant {
            liveness: WaiterLiveness::Blind,
            ..Variant::SHIPPED
        };
        Self::with_variant(config, Clients::Configured, variant).await
    }

    /// Not for use: a backend whose fencing tokens come from the counter
    /// alone (`INCR`, without the server's clock as a floor), so they start
    /// again from 1 on an instance that restarted empty. It exists so that
    /// a test can show tokens going backwards without the clock.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    #[doc(hidden)]
    pub async fn from_config_counter_only_tokens(config: RedisConfig) -> Result<Self> {
        let variant = Variant {
            tokens: TokenRule::CounterOnly,
            ..Variant::SHIPPED
        };
        Self::with_variant(config, Clients::Configured, variant).await
    }

    /// Not for use: a Sentinel backend that asks the sentinels for the
    /// primary once, at connect, and stays with that server ever after
    /// (no failover is followed). It exists so that a test can show the
    /// failover test failing without the lookup on every connect.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    #[doc(hidden)]
    pub async fn from_config_pinned_to_first_primary(mut config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let Some(sentinel) = config.sentinel.take() else {
            return Err(LockError::invalid_config("not a Sentinel configuration"));
        };
        let lookup = Primary::new(&sentinel)?;
        let bound = tokio::time::timeout(config.timeout, lookup.client());
        let client = match bound.await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let why = format!("asking the sentinels of {}: {e}", sentinel.label());
                return Err(LockError::unavailable(REDIS, why));
            }
            Err(_) => {
                let why = format!("asking the sentinels of {}: timed out", sentinel.label());
                return Err(LockError::unavailable(REDIS, why));
            }
        };
        Self::with_variant(config, Clients::Given(vec![client]), Variant::SHIPPED).await
    }

    async fn with_variant(
        mut config: RedisConfig,
        clients: Clients,
        variant: Variant,
    ) -> Result<Self> {
        config.redlock = false;
        let engine = Arc::new(Engine::new(REDIS, config, clients, variant)?);
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
    /// hand-off, batched extension, readers, semaphores, upgrades, leader
    /// labels, change notices and lock-at-least-for; no sessions.
    fn claims(&self) -> Capabilities {
        self.engine.claims()
    }

    /// Takes the name in `request.mode` (writer, reader or permit), waiting
    /// on its release channel between attempts; in fair mode only when the
    /// queue admits it (nobody overtakes an earlier waiter).
    ///
    /// Round trips: one per attempt; the first wait adds one SUBSCRIBE
    /// unless the channel is still subscribed (and one for the client's
    /// liveness channel on a new pub/sub connection, fair mode); a hold
    /// handed over by a release (fair mode) costs the attempt that confirms
    /// it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped future leaves nothing held and nothing queued
    /// (the owner token is released, or the queue left, in the background).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.engine.grant(request).await
    }

    /// Turns the reader hold `lease` into the writer's in one script once
    /// it is the only hold; while it waits it is first in the queue (fair
    /// mode), so readers arriving meanwhile wait behind it.
    ///
    /// Round trips: as for [`grant`](LockBackend::grant); an upgrade
    /// granted by the last other reader's release costs the attempt that
    /// confirms it.
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the reader hold as it was: an upgrade that
    /// may have happened is turned back into the reader hold, and the queue
    /// left, in the background.
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        let _ = lease; // `request` carries its name and owner
        self.engine.upgrade(request).await
    }

    /// Extends the lease (any mode) if this owner still holds it (never
    /// revives an expired one).
    ///
    /// Round trips: one.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        self.engine.renew(lease, ttl).await
    }

    /// Extends every lease of the batch, of any modes, in one script call.
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
        self.engine.max_batch()
    }

    /// Releases the hold (any mode) and hands the name to every request the
    /// queue admits now (fair mode; skipping waiters that vanished, each
    /// hand-over living until its waiter confirms it or its queue entry
    /// dies), or wakes every waiter.
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

    /// Holder's remaining ttl, fencing counter (the writer's own token while
    /// one holds), the writer's label and queue length.
    ///
    /// Round trips: one.
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
    /// Round trips: one.
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
    /// Round trips: one SUBSCRIBE unless the channel is subscribed
    /// already.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream stops watching.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        self.engine.watch(name).await
    }
}
