//! Configuration: the URL forms (read with the core's one URL grammar), the
//! builder, and the per-instance settings.

use std::fmt;
use std::time::Duration;

use distlock_core::{BackendUrl, Host, LockError, Result, TlsSettings};

use crate::cluster::{self, ClusterConfig};
use crate::sentinel::{self, SentinelConfig};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "distlock:";

/// Default bound on one request to one instance when a single instance is
/// used (and on the connection check of every instance).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default floor of the Redlock per-instance timeout.
pub const DEFAULT_MIN_INSTANCE_TIMEOUT: Duration = Duration::from_millis(50);

/// Default ceiling of the Redlock per-instance timeout.
pub const DEFAULT_MAX_INSTANCE_TIMEOUT: Duration = Duration::from_millis(500);

/// Default waiter-liveness window (fair mode): how long a waiter that stopped
/// refreshing its place in line keeps it (and a hold handed to it unasked).
pub const DEFAULT_WAITER_TIMEOUT: Duration = distlock_core::line::DEFAULT_WAITER_TIMEOUT;

/// Default bound on waiting for replicas to acknowledge a grant or an
/// extension (`WAIT`), when [`RedisConfig::replicas`] asks for any.
pub const DEFAULT_REPLICA_TIMEOUT: Duration = Duration::from_millis(500);

/// Credentials for one instance. `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user name (`None`: the `default` user).
    pub username: Option<String>,
    /// Password (`requirepass` or the ACL user's).
    pub password: Option<String>,
}

impl Credentials {
    /// Credentials of an ACL user, or of the `default` user (`requirepass`)
    /// when `username` is `None`.
    pub fn new(username: Option<&str>, password: &str) -> Self {
        Credentials {
            username: username.map(str::to_string),
            password: Some(password.to_string()),
        }
    }

    /// The user and password of a URL host; an empty user is the `default`
    /// user, an empty password none.
    pub(crate) fn of_host(host: &Host) -> Self {
        Credentials {
            username: host.user.clone().filter(|u| !u.is_empty()),
            password: host
                .password()
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One Redis server: address, credentials, database, TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Logical database number.
    pub db: i64,
    /// TLS (rustls), if on: the CA to verify the server against (the
    /// system roots without one), a client certificate.
    pub tls: Option<TlsSettings>,
    /// Credentials, if the server wants them.
    pub credentials: Credentials,
}

impl InstanceConfig {
    /// A plain-TCP instance on database 0 without credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        InstanceConfig {
            host: host.into(),
            port,
            db: 0,
            tls: None,
            credentials: Credentials::default(),
        }
    }

    /// Sets the logical database number.
    pub fn with_db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Connects with TLS (URL: `rediss://`, or `tls`, `ca`, `cert`, `key`,
    /// `danger_accept_invalid_certs`).
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// `host:port`, the name used in errors and logs (never credentials).
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceConfig")
            .field("addr", &self.label())
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Everything a Redis or Redlock backend needs; built from a URL
/// ([`RedisConfig::from_url`]) or by hand.
///
/// ```
/// use std::time::Duration;
/// use distlock_redis::{InstanceConfig, RedisConfig};
/// let config = RedisConfig::from_url("redlock://:pw@h1:7001,h2:7002,h3:7003/2?prefix=app:")?;
/// assert_eq!(config.instances.len(), 3);
/// assert_eq!(config.instances[1].db, 2);
/// assert_eq!(config.prefix, "app:");
/// assert!(!format!("{config:?}").contains("pw"));
///
/// let by_hand = RedisConfig::single(InstanceConfig::new("127.0.0.1", 6379).with_db(1))
///     .with_prefix("app:")
///     .with_timeout(Duration::from_secs(1))
///     .with_fair(false);
/// assert!(by_hand.validate().is_ok());
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// The instances: one for a single-instance lock, several (independent,
    /// not replicas of each other) for Redlock.
    pub instances: Vec<InstanceConfig>,
    /// Prefix of every key (default `distlock:`). Must not contain `{` or `}`.
    pub prefix: String,
    /// Single instance: the bound on one request (connect included). Both:
    /// the bound on the connection check.
    pub timeout: Duration,
    /// Redlock: the per-instance timeout is `ttl / 10` clamped to
    /// `[min_instance_timeout, max_instance_timeout]`.
    pub min_instance_timeout: Duration,
    /// See [`min_instance_timeout`](RedisConfig::min_instance_timeout).
    pub max_instance_timeout: Duration,
    /// Whether this is a Redlock configuration (also with one instance).
    pub redlock: bool,
    /// Serve waiters in arrival order through a queue kept on the server
    /// (Redlock: on each instance, for the writer and readers; default on).
    pub fair: bool,
    /// Fair mode: the waiter-liveness window. A waiter refreshes its queue
    /// entry every third of this while waiting; one that stops is dropped
    /// when its entry is this old, and a hold handed to it lives no longer
    /// until it confirms it. A vanished waiter holds up the line for at most
    /// this long, and a crashed process's waiters not at all.
    pub waiter_timeout: Duration,
    /// Single instance: after each grant and each extension, `WAIT` until
    /// this many replicas acknowledged the write (0, the default: no
    /// `WAIT`). A grant that fewer replicas acknowledged within
    /// [`replica_timeout`](RedisConfig::replica_timeout) is released and
    /// the acquire fails with `Unavailable`; such an extension fails the
    /// same way. Not strong consistency: see `docs/backends/redis.md`.
    pub replicas: usize,
    /// How long one `WAIT` waits for the replicas (at least 1 ms).
    pub replica_timeout: Duration,
    /// Sentinel: the one instance is the primary these sentinels name,
    /// looked up again whenever the connection is lost or the server says
    /// it is a replica now (`READONLY`); `instances` then holds only what
    /// [`SentinelConfig`] says of the primary (its name, database and
    /// credentials; no address).
    pub sentinel: Option<SentinelConfig>,
    /// A Redis Cluster: its seed nodes and credentials
    /// (`redis+cluster://`). The one instance in `instances` then stands for
    /// the cluster (its address is not used).
    pub cluster: Option<ClusterConfig>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("instances", &self.instances)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("min_instance_timeout", &self.min_instance_timeout)
            .field("max_instance_timeout", &self.max_instance_timeout)
            .field("redlock", &self.redlock)
            .field("fair", &self.fair)
            .field("waiter_timeout", &self.waiter_timeout)
            .field("replicas", &self.replicas)
            .field("replica_timeout", &self.replica_timeout)
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl Default for RedisConfig {
    /// One instance at `localhost:6379`, database 0, every option at its
    /// default: the options alone, for
    /// [`RedisBackend::from_client`](crate::RedisBackend::from_client) and
    /// [`RedlockBackend::from_clients`](crate::RedlockBackend::from_clients),
    /// which replace the instances.
    fn default() -> Self {
        RedisConfig::single(InstanceConfig::new("localhost", 6379))
    }
}

impl RedisConfig {
    /// A single-instance configuration.
    pub fn single(instance: InstanceConfig) -> Self {
        RedisConfig {
            instances: vec![instance],
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            min_instance_timeout: DEFAULT_MIN_INSTANCE_TIMEOUT,
            max_instance_timeout: DEFAULT_MAX_INSTANCE_TIMEOUT,
            redlock: false,
            fair: true,
            waiter_timeout: DEFAULT_WAITER_TIMEOUT,
            replicas: 0,
            replica_timeout: DEFAULT_REPLICA_TIMEOUT,
            sentinel: None,
            cluster: None,
        }
    }

    /// A single-instance configuration whose instance is the primary the
    /// sentinels name, followed across failovers (URL:
    /// `redis+sentinel://`).
    pub fn sentinel(sentinel: SentinelConfig) -> Self {
        RedisConfig {
            sentinel: Some(sentinel.clone()),
            ..RedisConfig::single(sentinel.primary())
        }
    }

    /// A single-instance configuration on a Redis Cluster: each lock lives
    /// on the primary that serves its slot, found through the seeds and
    /// followed across failovers and resharding (URL: `redis+cluster://`).
    /// `replicas` then waits for that primary's replicas.
    pub fn cluster(cluster: ClusterConfig) -> Self {
        RedisConfig {
            cluster: Some(cluster.clone()),
            ..RedisConfig::single(cluster.entry())
        }
    }

    /// A Redlock configuration over independent instances.
    pub fn redlock(instances: Vec<InstanceConfig>) -> Self {
        RedisConfig {
            instances,
            redlock: true,
            ..RedisConfig::single(InstanceConfig::new("localhost", 6379))
        }
    }

    /// Sets the key prefix (URL: `prefix`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the request timeout (URL: `timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Turns the waiters' queue on or off (URL: `fair`).
    pub fn with_fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }

    /// Sets the waiter-liveness window (URL: `waiter_timeout`).
    pub fn with_waiter_timeout(mut self, waiter_timeout: Duration) -> Self {
        self.waiter_timeout = waiter_timeout;
        self
    }

    /// Single instance: `WAIT`s for `replicas` replicas to acknowledge each
    /// grant and extension (URL: `replicas`; see
    /// [`replicas`](RedisConfig::replicas)).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Sets how long one `WAIT` for the replicas waits (URL:
    /// `replica_timeout`).
    pub fn with_replica_timeout(mut self, timeout: Duration) -> Self {
        self.replica_timeout = timeout;
        self
    }

    /// Sets the floor of the Redlock per-instance timeout (URL:
    /// `min_instance_timeout`).
    pub fn with_min_instance_timeout(mut self, timeout: Duration) -> Self {
        self.min_instance_timeout = timeout;
        self
    }

    /// Sets the ceiling of the Redlock per-instance timeout (URL:
    /// `max_instance_timeout`).
    pub fn with_max_instance_timeout(mut self, timeout: Duration) -> Self {
        self.max_instance_timeout = timeout;
        self
    }

    /// Connects to every instance with TLS (URL: `rediss://`, or `tls`,
    /// `ca`, `cert`, `key`, `danger_accept_invalid_certs`).
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        for instance in &mut self.instances {
            instance.tls = Some(tls.clone());
        }
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if self.instances.is_empty() {
            return Err(LockError::invalid_config("no redis instance configured"));
        }
        if !self.redlock && self.instances.len() != 1 {
            return Err(LockError::invalid_config(
                "a single-instance redis configuration takes exactly one instance; use redlock:// for several",
            ));
        }
        if let Some(sentinel) = &self.sentinel {
            sentinel.check(self)?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.check(self)?;
        }
        if self.prefix.contains(['{', '}']) {
            return Err(LockError::invalid_config(
                "the key prefix must not contain `{` or `}` (they delimit the hash tag)",
            ));
        }
        if self.prefix.len() > 256 {
            return Err(LockError::invalid_config(
                "the key prefix must be at most 256 bytes",
            ));
        }
        if self.redlock && self.replicas > 0 {
            return Err(LockError::invalid_config(
                "`replicas` applies to one instance; Redlock's instances are independent primaries (its quorum is the redundancy)",
            ));
        }
        if self.replica_timeout < Duration::from_millis(1) {
            return Err(LockError::invalid_config(
                "the replica timeout (`replica_timeout`) must be at least 1 ms",
            ));
        }
        distlock_core::line::check_waiter_timeout(self.waiter_timeout)?;
        for tls in self.instances.iter().filter_map(|i| i.tls.as_ref()) {
            tls.check()?;
        }
        if self.timeout.is_zero()
            || self.min_instance_timeout.is_zero()
            || self.min_instance_timeout > self.max_instance_timeout
        {
            return Err(LockError::invalid_config(
                "timeouts must be positive and the instance timeout's min must not exceed its max",
            ));
        }
        Ok(())
    }

    /// Parses a URL (see the crate documentation for the forms and
    /// parameters).
    ///
    /// Errors are `InvalidConfig` and show the URL with its passwords redacted.
    pub fn from_url(url: &str) -> Result<Self> {
        let mut url = BackendUrl::parse(url)?;
        if url.scheme() == sentinel::SCHEME {
            return sentinel::config_from_url(url);
        }
        if url.scheme() == cluster::SCHEME {
            return cluster::config_from_url(url);
        }
        let (scheme_tls, redlock) = match url.scheme() {
            "redis" => (false, false),
            "rediss" => (true, false),
            "redlock" => (false, true),
            other => {
                let why = format!(
                    "unknown scheme `{other}` (expected redis, rediss, redis+sentinel, redis+cluster or redlock)"
                );
                return Err(url.error(&why));
            }
        };
        let db = database(&url)?;
        let tls = TlsSettings::from_url(&mut url, scheme_tls)?;
        let hosts = url.hosts()?;
        if !redlock && hosts.len() != 1 {
            return Err(url.error(
                "a redis:// URL names one instance; use redlock:// for several independent instances",
            ));
        }
        let mut instances: Vec<InstanceConfig> = hosts
            .iter()
            .map(|h| {
                InstanceConfig {
                    tls: tls.clone(),
                    ..InstanceConfig::new(h.name.clone(), h.port)
                }
                .with_db(db)
                .with_credentials(Credentials::of_host(h))
            })
            .collect();
        let config = if redlock {
            RedisConfig::redlock(instances)
        } else {
            RedisConfig::single(instances.remove(0))
        };
        config.finish_from_url(&mut url)
    }

    /// Completes a configuration read from `url`: takes the parameters,
    /// refuses any left over, and validates, naming the URL (redacted) in
    /// every error.
    pub(crate) fn finish_from_url(mut self, url: &mut BackendUrl) -> Result<Self> {
        self.read_parameters(url)?;
        url.finish()?;
        self.validate().map_err(|e| match e {
            LockError::InvalidConfig { reason } => url.error(&reason),
            other => other,
        })?;
        Ok(self)
    }

    /// Takes every parameter this backend knows from `url`.
    fn read_parameters(&mut self, url: &mut BackendUrl) -> Result<()> {
        if let Some(prefix) = url.string("prefix") {
            self.prefix = prefix;
        }
        if let Some(timeout) = url.duration("timeout")? {
            self.timeout = timeout;
        }
        if let Some(timeout) = url.duration("min_instance_timeout")? {
            self.min_instance_timeout = timeout;
        }
        if let Some(timeout) = url.duration("max_instance_timeout")? {
            self.max_instance_timeout = timeout;
        }
        match (url.duration("waiter_timeout")?, url.duration("queue_ttl")?) {
            (Some(_), Some(_)) => {
                let why =
                    "`waiter_timeout` and its older name `queue_ttl` mean the same thing; give one";
                return Err(url.error(why));
            }
            (Some(window), None) | (None, Some(window)) => self.waiter_timeout = window,
            (None, None) => {}
        }
        if let Some(fair) = url.boolean("fair")? {
            self.fair = fair;
        }
        if let Some(replicas) = url.number("replicas")? {
            self.replicas = replicas;
        }
        if let Some(timeout) = url.duration("replica_timeout")? {
            self.replica_timeout = timeout;
        }
        Ok(())
    }
}

/// The database number in the URL's path (`/3`), 0 without one.
fn database(url: &BackendUrl) -> Result<i64> {
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if path.is_empty() {
        return Ok(0);
    }
    path.parse()
        .ok()
        .filter(|d| *d >= 0)
        .ok_or_else(|| url.error("the path must be a database number"))
}

#[cfg(test)]
mod tests;
