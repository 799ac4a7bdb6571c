//! Configuration: the URL forms, the builder, and the per-instance settings.

use distlock_core::percent_decode;
use std::fmt;
use std::time::Duration;

use distlock_core::{redact_url, LockError, Result};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "distlock:";

/// Default bound on one request to one instance when a single instance is used.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Default floor of the Redlock per-instance timeout.
pub const DEFAULT_MIN_INSTANCE_TIMEOUT: Duration = Duration::from_millis(50);

/// Default ceiling of the Redlock per-instance timeout.
pub const DEFAULT_MAX_INSTANCE_TIMEOUT: Duration = Duration::from_millis(500);

/// Default lifetime of a waiter's queue entry between refreshes (fair mode).
pub const DEFAULT_QUEUE_ENTRY_TTL: Duration = Duration::from_secs(2);

/// Credentials for one instance. `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user name (`None`: the `default` user).
    pub username: Option<String>,
    /// Password (`requirepass` or the ACL user's).
    pub password: Option<String>,
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
/// use distlock_redis::RedisConfig;
/// let config = RedisConfig::from_url("redlock://:pw@h1:7001,h2:7002,h3:7003/2?prefix=app:")?;
/// assert_eq!(config.instances.len(), 3);
/// assert_eq!(config.instances[1].db, 2);
/// assert_eq!(config.prefix, "app:");
/// assert!(!format!("{config:?}").contains("pw"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// The instances: one for a single-instance lock, several (independent,
    /// not replicas of each other) for Redlock.
    pub instances: Vec<InstanceConfig>,
    /// Prefix of every key (default `distlock:`). Must not contain `{` or `}`.
    pub prefix: String,
    /// Single instance: the bound on one request (connect included).
    pub request_timeout: Duration,
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
    pub queue_entry_ttl: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("instances", &self.instances)
            .field("prefix", &self.prefix)
            .field("request_timeout", &self.request_timeout)
            .field("min_instance_timeout", &self.min_instance_timeout)
            .field("max_instance_timeout", &self.max_instance_timeout)
            .field("redlock", &self.redlock)
            .field("fair", &self.fair)
            .field("queue_entry_ttl", &self.queue_entry_ttl)
            .finish()
    }
}

impl RedisConfig {
    /// A single-instance configuration.
    pub fn single(instance: InstanceConfig) -> Self {
        RedisConfig {
            instances: vec![instance],
            prefix: DEFAULT_PREFIX.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            min_instance_timeout: DEFAULT_MIN_INSTANCE_TIMEOUT,
            max_instance_timeout: DEFAULT_MAX_INSTANCE_TIMEOUT,
            redlock: false,
            fair: true,
            queue_entry_ttl: DEFAULT_QUEUE_ENTRY_TTL,
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

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the single-instance request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Turns the waiters' queue on or off (single instance only).
    pub fn with_fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }

    /// Sets the bounds of the Redlock per-instance timeout.
    pub fn with_instance_timeout_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_instance_timeout = min;
        self.max_instance_timeout = max;
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
        if self.queue_entry_ttl < Duration::from_millis(30) {
            return Err(LockError::invalid_config(
                "the queue entry ttl must be at least 30 ms",
            ));
        }
        if self.request_timeout.is_zero()
            || self.min_instance_timeout.is_zero()
            || self.min_instance_timeout > self.max_instance_timeout
        {
            return Err(LockError::invalid_config(
                "timeouts must be positive and the instance timeout's min must not exceed its max",
            ));
        }
        Ok(())
    }

    /// Parses a URL (see the crate documentation for the forms).
    ///
    /// Errors are `InvalidConfig` and show the URL with its passwords redacted.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            LockError::invalid_config(format!("{why} in redis URL `{}`", redact_url(url)))
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("missing `scheme://`"))?;
        let (tls, redlock) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, false),
            "rediss" => (true, false),
            "redlock" => (false, true),
            _ => return Err(bad("unknown scheme (expected redis, rediss or redlock)")),
        };
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, q),
            None => (tail, ""),
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        let db: i64 = if path.is_empty() {
            0
        } else {
            path.parse()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| bad("the path must be a database number"))?
        };

        let mut instances = Vec::new();
        let mut first_credentials: Option<Credentials> = None;
        let parts: Vec<&str> = if redlock {
            authority.split(',').collect()
        } else {
            vec![authority]
        };
        for part in parts {
            let (credentials, hostport) = match part.rfind('@') {
                Some(at) => (
                    Some(parse_userinfo(&part[..at]).ok_or_else(|| bad("bad user info"))?),
                    &part[at + 1..],
                ),
                None => (None, part),
            };
            let (host, port) = parse_hostport(hostport).ok_or_else(|| bad("bad host:port"))?;
            let credentials = match credentials {
                Some(c) => {
                    if first_credentials.is_none() && instances.is_empty() {
                        first_credentials = Some(c.clone());
                    }
                    c
                }
                None => first_credentials.clone().unwrap_or_default(),
            };
            instances.push(InstanceConfig {
                host,
                port,
                db,
                tls,
                credentials,
            });
        }

        let mut config = if redlock {
            RedisConfig::redlock(instances)
        } else {
            RedisConfig::single(instances.remove(0))
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad("bad percent-encoding"))?;
            let millis = || -> Result<Duration> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        bad(&format!(
                            "`{key}` must be a positive number of milliseconds"
                        ))
                    })
            };
            match key {
                "prefix" => config.prefix = value.clone(),
                "timeout_ms" => config.request_timeout = millis()?,
                "min_instance_timeout_ms" => config.min_instance_timeout = millis()?,
                "max_instance_timeout_ms" => config.max_instance_timeout = millis()?,
                "queue_ttl_ms" => config.queue_entry_ttl = millis()?,
                "fair" => {
                    config.fair = flag(&value).ok_or_else(|| bad("`fair` must be true or false"))?
                }
                "tls" => {
                    let on = flag(&value).ok_or_else(|| bad("`tls` must be true or false"))?;
                    for instance in &mut config.instances {
                        instance.tls = on;
                    }
                }
                _ => return Err(bad(&format!("unknown parameter `{key}`"))),
            }
        }
        config.validate().map_err(|e| match e {
            LockError::InvalidConfig { reason } => bad(&reason),
            other => other,
        })?;
        Ok(config)
    }
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_userinfo(userinfo: &str) -> Option<Credentials> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = percent_decode(user)?;
    let password = match password {
        Some(p) => Some(percent_decode(p)?),
        None => None,
    };
    Some(Credentials {
        username: if user.is_empty() { None } else { Some(user) },
        password: password.filter(|p| !p.is_empty()),
    })
}

fn parse_hostport(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "",
            None => return None,
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (s, ""),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ',', ' ']) {
        return None;
    }
    let port = if port.is_empty() {
        6379
    } else {
        port.parse().ok().filter(|p| *p > 0)?
    };
    Some((host.to_string(), port))
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
            "redlock://:secret@h:1,,h:2",
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
}
