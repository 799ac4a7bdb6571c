//! Configuration: the URL forms (read with the core's one URL grammar), the
//! builder, and the per-instance settings.

use std::fmt;
use std::time::Duration;

use distlock_core::{BackendUrl, Host, LockError, Result};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "distlock:";

/// Default bound on one request to one instance when a single instance is
/// used (and on the connection check of every instance).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default floor of the Redlock per-instance timeout.
pub const DEFAULT_MIN_INSTANCE_TIMEOUT: Duration = Duration::from_millis(50);

/// Default ceiling of the Redlock per-instance timeout.
pub const DEFAULT_MAX_INSTANCE_TIMEOUT: Duration = Duration::from_millis(500);

/// Default lifetime of a waiter's queue entry between refreshes (fair mode).
pub const DEFAULT_QUEUE_TTL: Duration = Duration::from_secs(2);

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
    fn of_host(host: &Host) -> Self {
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
    /// Whether to connect with TLS (rustls, system roots).
    pub tls: bool,
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
            tls: false,
            credentials: Credentials::default(),
        }
    }

    /// Sets the logical database number.
    pub fn with_db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Turns TLS on or off.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
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

    pub(crate) fn client(&self) -> Result<redis::Client> {
        let addr = if self.tls {
            ensure_crypto_provider();
            ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut redis_info = RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.credentials.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = &self.credentials.password {
            redis_info = redis_info.set_password(password);
        }
        let info = addr
            .into_connection_info()
            .map_err(|_| LockError::invalid_config(format!("bad redis address {}", self.label())))?
            .set_redis_settings(redis_info);
        redis::Client::open(info).map_err(|_| {
            LockError::invalid_config(format!("bad redis configuration for {}", self.label()))
        })
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

/// rustls needs one process-wide crypto provider; install ring's unless the
/// application already installed one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: some provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
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
    /// Single instance: serve waiters in arrival order through a queue kept
    /// on the server (default on; Redlock is never fair).
    pub fair: bool,
    /// Fair mode: how long a waiter's queue entry lives unless refreshed. A
    /// waiter refreshes it at a third of this while waiting; a waiter that
    /// vanished holds up the line for at most this long.
    pub queue_ttl: Duration,
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
            .field("queue_ttl", &self.queue_ttl)
            .finish()
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
            queue_ttl: DEFAULT_QUEUE_TTL,
        }
    }

    /// A Redlock configuration over independent instances.
    pub fn redlock(instances: Vec<InstanceConfig>) -> Self {
        RedisConfig {
            instances,
            redlock: true,
            fair: false,
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

    /// Turns the waiters' queue on or off, single instance only (URL: `fair`).
    pub fn with_fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }

    /// Sets the life of a waiter's queue entry (URL: `queue_ttl`).
    pub fn with_queue_ttl(mut self, queue_ttl: Duration) -> Self {
        self.queue_ttl = queue_ttl;
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

    /// Turns TLS on or off for every instance (URL: `tls`, or `rediss://`).
    pub fn with_tls(mut self, tls: bool) -> Self {
        for instance in &mut self.instances {
            instance.tls = tls;
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
        if self.redlock && self.fair {
            return Err(LockError::invalid_config(
                "fair (queued) waiting is only available on a single instance, not with redlock",
            ));
        }
        if self.queue_ttl < Duration::from_millis(30) {
            return Err(LockError::invalid_config(
                "the queue entry ttl (`queue_ttl`) must be at least 30 ms",
            ));
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
        let (scheme_tls, redlock) = match url.scheme() {
            "redis" => (false, false),
            "rediss" => (true, false),
            "redlock" => (false, true),
            other => {
                let why = format!("unknown scheme `{other}` (expected redis, rediss or redlock)");
                return Err(url.error(&why));
            }
        };
        let db = database(&url)?;
        let hosts = url.hosts()?;
        if !redlock && hosts.len() != 1 {
            return Err(url.error(
                "a redis:// URL names one instance; use redlock:// for several independent instances",
            ));
        }
        let mut instances: Vec<InstanceConfig> = hosts
            .iter()
            .map(|h| {
                InstanceConfig::new(h.name.clone(), h.port)
                    .with_db(db)
                    .with_tls(scheme_tls)
                    .with_credentials(Credentials::of_host(h))
            })
            .collect();
        let mut config = if redlock {
            RedisConfig::redlock(instances)
        } else {
            RedisConfig::single(instances.remove(0))
        };
        config.read_parameters(&mut url, scheme_tls)?;
        url.finish()?;
        config.validate().map_err(|e| match e {
            LockError::InvalidConfig { reason } => url.error(&reason),
            other => other,
        })?;
        Ok(config)
    }

    /// Takes every parameter this backend knows from `url`.
    fn read_parameters(&mut self, url: &mut BackendUrl, scheme_tls: bool) -> Result<()> {
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
        if let Some(queue_ttl) = url.duration("queue_ttl")? {
            self.queue_ttl = queue_ttl;
        }
        if let Some(fair) = url.boolean("fair")? {
            self.fair = fair;
        }
        if let Some(tls) = url.boolean("tls")? {
            if scheme_tls && !tls {
                return Err(url.error("`rediss://` means TLS: `tls=false` contradicts it"));
            }
            for instance in &mut self.instances {
                instance.tls = tls;
            }
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
mod tests {
    use super::*;

    #[test]
    fn single_instance_url_with_credentials_and_db() {
        let c = RedisConfig::from_url("redis://locker:p%40ss@127.0.0.1:16384/3").unwrap();
        assert!(!c.redlock);
        let i = &c.instances[0];
        assert_eq!((i.host.as_str(), i.port, i.db), ("127.0.0.1", 16384, 3));
        assert_eq!(i.credentials.username.as_deref(), Some("locker"));
        assert_eq!(i.credentials.password.as_deref(), Some("p@ss"));
        assert!(!format!("{c:?}").contains("p@ss"));
    }

    #[test]
    fn rediss_turns_on_tls() {
        let c = RedisConfig::from_url("rediss://:pw@example.com").unwrap();
        assert!(c.instances[0].tls);
        assert_eq!(c.instances[0].port, 6379);
        assert_eq!(c.instances[0].credentials.username, None);
        assert_eq!(c.instances[0].credentials.password.as_deref(), Some("pw"));
        let err = RedisConfig::from_url("rediss://:pw@example.com?tls=false").unwrap_err();
        assert!(err.to_string().contains("tls=false"), "{err}");
    }

    #[test]
    fn redlock_instances_inherit_the_first_credentials_unless_given_their_own() {
        let c =
            RedisConfig::from_url("redlock://u:a@h1:1,h2:2,v:b@h3:3,[::1]:4/1?prefix=x:").unwrap();
        assert!(c.redlock);
        assert_eq!(c.instances.len(), 4);
        assert_eq!(c.instances[1].credentials.password.as_deref(), Some("a"));
        assert_eq!(c.instances[2].credentials.username.as_deref(), Some("v"));
        assert_eq!(c.instances[3].host, "::1");
        assert!(c.instances.iter().all(|i| i.db == 1));
        assert_eq!(c.prefix, "x:");
    }

    #[test]
    fn bad_urls_are_invalid_config_without_the_password() {
        for url in [
            "redis://:secret@h:notaport",
            "redis://:secret@h:1/x",
            "redis://:secret@h:1?prefix=%7Bx",
            "redis://:secret@h:1?bogus=1",
            "redis://:secret@",
            "redis://:secret@h1:1,h2:2",
            "redlock://:secret@h:1,,h:2",
            "redlock://:secret@h:1?fair=true",
            "redis://:secret@h:1?queue_ttl=1ms",
            "memcached://:secret@h:1",
        ] {
            let err = RedisConfig::from_url(url).unwrap_err();
            assert!(
                matches!(err, LockError::InvalidConfig { .. }),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn a_host_without_a_port_gets_the_default_port() {
        let c = RedisConfig::from_url("redlock://h1,h2:7000,h3").unwrap();
        let ports: Vec<u16> = c.instances.iter().map(|i| i.port).collect();
        assert_eq!(ports, [6379, 7000, 6379]);
    }

    #[test]
    fn ipv6_hosts_go_in_brackets() {
        let c = RedisConfig::from_url("redis://[::1]:16379").unwrap();
        assert_eq!(
            (c.instances[0].host.as_str(), c.instances[0].port),
            ("::1", 16379)
        );
        assert_eq!(c.instances[0].label(), "[::1]:16379");
        let c = RedisConfig::from_url("redis://[fe80::1]").unwrap();
        assert_eq!(c.instances[0].port, 6379);
    }

    #[test]
    fn durations_take_units_and_the_legacy_millisecond_keys() {
        let modern = RedisConfig::from_url("redis://h?timeout=2s&queue_ttl=500ms").unwrap();
        let legacy = RedisConfig::from_url("redis://h?timeout_ms=2000&queue_ttl_ms=500").unwrap();
        assert_eq!(modern.timeout, Duration::from_secs(2));
        assert_eq!(modern.timeout, legacy.timeout);
        assert_eq!(modern.queue_ttl, legacy.queue_ttl);
        let c = RedisConfig::from_url(
            "redlock://h1,h2,h3?min_instance_timeout=20ms&max_instance_timeout_ms=900",
        )
        .unwrap();
        assert_eq!(c.min_instance_timeout, Duration::from_millis(20));
        assert_eq!(c.max_instance_timeout, Duration::from_millis(900));
        assert!(RedisConfig::from_url("redis://h?timeout=2s&timeout_ms=2000").is_err());
    }

    #[test]
    fn booleans_accept_any_case() {
        let c = RedisConfig::from_url("redlock://h1,h2,h3?tls=ON").unwrap();
        assert!(c.instances.iter().all(|i| i.tls));
        let c = RedisConfig::from_url("redis://h?fair=No").unwrap();
        assert!(!c.fair);
        assert!(RedisConfig::from_url("redis://h?fair=maybe").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let err = RedisConfig::from_url("redis://:secret@h?prefix=a:&colour=blue").unwrap_err();
        assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().contains("`colour`"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn userinfo_is_accepted_and_percent_decoded() {
        let c = RedisConfig::from_url("redis://app%2Fuser:p%3Aw%2C@h:1").unwrap();
        let creds = &c.instances[0].credentials;
        assert_eq!(creds.username.as_deref(), Some("app/user"));
        assert_eq!(creds.password.as_deref(), Some("p:w,"));
        let c = RedisConfig::from_url("redis://only-user@h:1").unwrap();
        assert_eq!(
            c.instances[0].credentials.username.as_deref(),
            Some("only-user")
        );
        assert_eq!(c.instances[0].credentials.password, None);
    }
}
