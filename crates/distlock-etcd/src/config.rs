//! Connection settings: the `etcd://` URL and the builder that says the same.

use distlock_core::percent_decode;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use distlock_core::{redact_url, LockError, Result};

/// Default etcd lease TTL: how long a crashed client's locks stay held.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default bound on one request to the cluster.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on establishing the first connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default key prefix under which locks live.
pub const DEFAULT_PREFIX: &str = "distlock";

/// Everything needed to reach an etcd cluster and lock in it.
///
/// Build it from a URL with [`EtcdConfig::from_url`] or field by field with
/// [`EtcdConfig::new`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use distlock_etcd::EtcdConfig;
///
/// let a = EtcdConfig::from_url("etcd://10.0.0.1:2379,10.0.0.2:2379/app/locks?lease_ttl=5s")?;
/// let b = EtcdConfig::new(["10.0.0.1:2379", "10.0.0.2:2379"])
///     .with_prefix("app/locks")
///     .with_lease_ttl(Duration::from_secs(5));
/// assert_eq!(a.endpoints(), b.endpoints());
/// assert_eq!(a.prefix(), b.prefix());
/// assert_eq!(a.lease_ttl(), b.lease_ttl());
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    prefix: String,
    lease_ttl: Duration,
    user: Option<String>,
    password: Option<String>,
    tls: bool,
    ca: Option<PathBuf>,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl EtcdConfig {
    /// Settings for these endpoints (`host:port`, or `http://`/`https://`
    /// URLs), with every other value at its default.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints
                .into_iter()
                .map(|e| strip_scheme(&e.into()))
                .collect(),
            prefix: DEFAULT_PREFIX.to_string(),
            lease_ttl: DEFAULT_LEASE_TTL,
            user: None,
            password: None,
            tls: false,
            ca: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Parses `etcd://[user:password@]host:port[,host:port…][/prefix][?options]`.
    ///
    /// Options: `user`, `password`, `tls=true|false`, `ca=<path to PEM>`
    /// (implies TLS), `lease_ttl` (whole seconds: `10`, `10s`), `timeout`
    /// (per request: `5s`, `500ms`), `connect_timeout`. The path, if any, is
    /// the key prefix (default `distlock`).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` (with the password redacted) for anything malformed.
    pub fn from_url(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        let bad = |why: &str| LockError::invalid_config(format!("{why} in `{shown}`"));
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("an etcd URL must start with `etcd://`"))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        // Optional `user:password@` before the host list (it ends at the last '@').
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no etcd endpoint"));
        }
        for e in &endpoints {
            let (host, port) = e
                .rsplit_once(':')
                .ok_or_else(|| bad(&format!("endpoint `{e}` needs a port (`host:port`)")))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(&format!("endpoint `{e}` is not `host:port`")));
            }
        }
        let mut config = EtcdConfig::new(endpoints);
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            config.user = Some(percent_decode(user).ok_or_else(|| bad("bad user encoding"))?);
            if let Some(p) = password {
                config.password =
                    Some(percent_decode(p).ok_or_else(|| bad("bad password encoding"))?);
            }
        }
        if let Some(path) = path {
            let path = path.trim_matches('/');
            if !path.is_empty() {
                config.prefix = percent_decode(path).ok_or_else(|| bad("bad prefix encoding"))?;
            }
        }
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| bad(&format!("bad encoding in option `{key}`")))?;
            match key {
                "user" | "username" => config.user = Some(value),
                "password" => config.password = Some(value),
                "tls" => {
                    config.tls =
                        parse_bool(&value).ok_or_else(|| bad("`tls` must be true or false"))?;
                }
                "ca" | "cacert" => {
                    config.ca = Some(PathBuf::from(value));
                    config.tls = true;
                }
                "lease_ttl" => {
                    config.lease_ttl = parse_whole_seconds(&value).ok_or_else(|| {
                        bad("`lease_ttl` must be a whole number of seconds >= 1 (`10` or `10s`)")
                    })?
                }
                "timeout" => {
                    config.request_timeout = parse_duration(&value)
                        .ok_or_else(|| bad("`timeout` must be a duration like `5s` or `500ms`"))?;
                }
                "connect_timeout" => {
                    config.connect_timeout = parse_duration(&value).ok_or_else(|| {
                        bad("`connect_timeout` must be a duration like `5s` or `500ms`")
                    })?;
                }
                other => return Err(bad(&format!("unknown option `{other}`"))),
            }
        }
        if config.password.is_some() && config.user.is_none() {
            return Err(bad("a password needs a user"));
        }
        if config.user.is_some() && config.password.is_none() {
            return Err(bad("a user needs a password"));
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the key prefix (no leading or trailing `/` needed).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_matches('/').to_string();
        self
    }

    /// Sets the etcd lease TTL (whole seconds; etcd rounds up to its minimum,
    /// 1.5 × the election timeout).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Authenticates as `user` with `password`.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Connects with TLS, verifying the server against the system roots or
    /// [`with_ca`](Self::with_ca).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Verifies servers against this PEM CA certificate (implies TLS).
    pub fn with_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.ca = Some(ca.into());
        self.tls = true;
        self
    }

    /// Bounds each request to the cluster.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Bounds establishing the connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The endpoints, as `host:port`.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The etcd lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether TLS is on.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The per-request bound.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The connect bound.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub(crate) fn ca(&self) -> Option<&PathBuf> {
        self.ca.as_ref()
    }

    /// The endpoints as URLs for the client (`http://` or `https://`).
    pub(crate) fn endpoint_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    /// A URL that describes this config, with the password redacted.
    pub fn display_url(&self) -> String {
        let auth = match &self.user {
            Some(u) => format!("{u}:***@"),
            None => String::new(),
        };
        format!(
            "etcd://{auth}{}/{}{}",
            self.endpoints.join(","),
            self.prefix,
            if self.tls { "?tls=true" } else { "" }
        )
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let shown = self.display_url();
        if self.endpoints.is_empty() {
            return Err(LockError::invalid_config(format!(
                "no etcd endpoint in `{shown}`"
            )));
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return Err(LockError::invalid_config(format!(
                "the etcd lease ttl must be a whole number of seconds >= 1, got {:?} (`{shown}`)",
                self.lease_ttl
            )));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(LockError::invalid_config(format!(
                "timeouts must be positive (`{shown}`)"
            )));
        }
        if self.prefix.is_empty() {
            return Err(LockError::invalid_config(format!(
                "the key prefix must not be empty (`{shown}`)"
            )));
        }
        Ok(())
    }
}

fn strip_scheme(endpoint: &str) -> String {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/')
        .to_string()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let d = if let Some(ms) = s.strip_suffix("ms") {
        Duration::from_millis(ms.parse().ok()?)
    } else if let Some(secs) = s.strip_suffix('s') {
        Duration::from_secs(secs.parse().ok()?)
    } else {
        Duration::from_secs(s.parse().ok()?)
    };
    (!d.is_zero()).then_some(d)
}

fn parse_whole_seconds(s: &str) -> Option<Duration> {
    let s = s.trim();
    let n: u64 = s.strip_suffix('s').unwrap_or(s).parse().ok()?;
    (n >= 1).then(|| Duration::from_secs(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_prefix_and_options() {
        let c = EtcdConfig::from_url(
            "etcd://127.0.0.1:2379,127.0.0.1:2380/team/locks?lease_ttl=3s&timeout=250ms",
        )
        .unwrap();
        assert_eq!(c.endpoints(), ["127.0.0.1:2379", "127.0.0.1:2380"]);
        assert_eq!(c.prefix(), "team/locks");
        assert_eq!(c.lease_ttl(), Duration::from_secs(3));
        assert_eq!(c.request_timeout(), Duration::from_millis(250));
        assert!(!c.tls());
        assert_eq!(
            c.endpoint_urls(),
            ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
        );
    }

    #[test]
    fn credentials_in_query_or_authority() {
        let a = EtcdConfig::from_url("etcd://h:1?user=bob&password=s%40cret").unwrap();
        let b = EtcdConfig::from_url("etcd://bob:s%40cret@h:1").unwrap();
        for c in [a, b] {
            assert_eq!(c.user(), Some("bob"));
            assert_eq!(c.password(), Some("s@cret"));
            assert_eq!(c.prefix(), DEFAULT_PREFIX);
        }
    }

    #[test]
    fn password_never_shows_in_errors_or_debug() {
        let err = EtcdConfig::from_url("etcd://bob:hunter2@h:1?bogus=1").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err =
            EtcdConfig::from_url("etcd://h:1?user=bob&password=hunter2&lease_ttl=x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = EtcdConfig::from_url("etcd://h:1?user=bob&password=hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.display_url().contains("hunter2"));
    }

    #[test]
    fn malformed_urls_are_invalid_config() {
        for url in [
            "redis://h:1",
            "etcd://",
            "etcd://h",
            "etcd://h:notaport",
            "etcd://h:1?lease_ttl=0",
            "etcd://h:1?lease_ttl=1500ms",
            "etcd://h:1?tls=maybe",
            "etcd://h:1?password=x",
            "etcd://h:1?user=x",
            "etcd://h:1?what=1",
        ] {
            let err = EtcdConfig::from_url(url).unwrap_err();
            assert!(
                matches!(err, LockError::InvalidConfig { .. }),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn ca_implies_tls() {
        let c = EtcdConfig::from_url("etcd://h:1?ca=/etc/ssl/ca.pem").unwrap();
        assert!(c.tls());
        assert_eq!(c.endpoint_urls(), ["https://h:1"]);
    }
}
