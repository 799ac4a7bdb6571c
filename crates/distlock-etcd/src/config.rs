//! Connection settings: the `etcd://` URL and the builder that says the same.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use distlock_core::line;
use distlock_core::{BackendUrl, Host, LockError, Result, TlsSettings};

/// Default session timeout (the etcd lease ttl): how long a vanished
/// client's locks stay held.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one request to the cluster.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on establishing a connection to one member.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default key prefix under which locks live.
pub const DEFAULT_PREFIX: &str = "distlock";
/// Default waiter-liveness window: how long a waiter whose turn came may
/// take to claim it before the others pass over it (see
/// [`EtcdConfig::with_waiter_timeout`]).
pub const DEFAULT_WAITER_TIMEOUT: Duration = line::DEFAULT_WAITER_TIMEOUT;

/// Everything needed to reach an etcd cluster and lock in it.
///
/// Build it from a URL with [`EtcdConfig::from_url`] or field by field with
/// [`EtcdConfig::new`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use distlock_etcd::EtcdConfig;
///
/// let a = EtcdConfig::from_url("etcd://10.0.0.1:2379,10.0.0.2/app/locks?session_timeout=5s")?;
/// let b = EtcdConfig::new(["10.0.0.1:2379", "10.0.0.2:2379"])
///     .with_prefix("app/locks")
///     .with_session_timeout(Duration::from_secs(5));
/// assert_eq!(a.endpoints(), b.endpoints());
/// assert_eq!(a.prefix(), b.prefix());
/// assert_eq!(a.session_timeout(), b.session_timeout());
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    prefix: String,
    session_timeout: Duration,
    credentials: Option<(String, String)>,
    tls: Option<TlsSettings>,
    timeout: Duration,
    connect_timeout: Duration,
    waiter_timeout: Duration,
    /// Waiters claim their turn (off only in the tests that show why).
    waiter_claims: bool,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("session_timeout", &self.session_timeout)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("waiter_timeout", &self.waiter_timeout)
            .finish()
    }
}

impl EtcdConfig {
    /// Settings for these endpoints (`host:port`, IPv6 in brackets, or
    /// `http://`/`https://` URLs), with every other value at its default.
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
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            credentials: None,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            waiter_timeout: DEFAULT_WAITER_TIMEOUT,
            waiter_claims: true,
        }
    }

    /// Parses
    /// `etcd://[user:password@]host[:port][,host[:port]…][/prefix][?parameters]`
    /// in the URL grammar of [`BackendUrl`](distlock_core::BackendUrl):
    ///
    /// - hosts: one or more `host[:port]` (port 2379 by default; IPv6 in
    ///   brackets);
    /// - `user:password@` (percent-decoded): credentials for every member;
    ///   the legacy query keys `user` (or `username`) and `password` say the
    ///   same;
    /// - path or `prefix` (not both; default `distlock`): the key prefix;
    /// - `session_timeout` (`10s`; whole seconds, etcd leases count in
    ///   seconds; legacy `lease_ttl=<seconds>`): how long a vanished
    ///   client's locks stay held;
    /// - `timeout` (legacy `timeout_ms`; default 5 s): the bound on each
    ///   request;
    /// - `connect_timeout` (legacy `connect_timeout_ms`; default 5 s): the
    ///   bound on connecting to one member;
    /// - `waiter_timeout` (default 1 s, 30 ms to 1 h): the waiter-liveness
    ///   window, see [`with_waiter_timeout`](Self::with_waiter_timeout);
    /// - `tls` (boolean): TLS to the members, verified against the system
    ///   roots; `ca=<PEM file>` (legacy `cacert`) verifies against that CA
    ///   instead, `cert=<PEM file>&key=<PEM file>` present a client
    ///   certificate (for `--client-cert-auth`); each implies TLS (the core's
    ///   [`TlsSettings`]). The etcd client always verifies the members'
    ///   certificates: `danger_accept_invalid_certs` is refused.
    ///
    /// Unknown parameters are refused; the password never appears in errors.
    ///
    /// ```
    /// use std::time::Duration;
    /// use distlock_etcd::EtcdConfig;
    /// let c = EtcdConfig::from_url("etcd://app:pw@a:1,[::1]/team?timeout=2s&lease_ttl=4")?;
    /// assert_eq!(c.endpoints(), ["a:1", "[::1]:2379"]);
    /// assert_eq!(c.prefix(), "team");
    /// assert_eq!(c.session_timeout(), Duration::from_secs(4));
    /// assert_eq!(c.user(), Some("app"));
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidConfig` (with the password redacted) for anything malformed.
    pub fn from_url(url: &str) -> Result<Self> {
        let mut url = BackendUrl::parse(url)?;
        if url.scheme() != "etcd" {
            return Err(url.error("an etcd URL must start with `etcd://`"));
        }
        let hosts = url.hosts()?;
        let mut config = EtcdConfig::new(hosts.iter().map(Host::address));
        config.credentials = url.shared_credentials()?;
        config.prefix = prefix(&mut url)?;
        config.session_timeout = session_timeout(&mut url)?;
        config.timeout = url.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        config.connect_timeout = url
            .duration("connect_timeout")?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        config.waiter_timeout = url
            .duration("waiter_timeout")?
            .unwrap_or(DEFAULT_WAITER_TIMEOUT);
        config.tls = TlsSettings::from_url(&mut url, false)?;
        url.finish()?;
        match config.problem() {
            Some(why) => Err(url.error(&why)),
            None => Ok(config),
        }
    }

    /// Sets the key prefix (no leading or trailing `/` needed).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_matches('/').to_string();
        self
    }

    /// Sets the session timeout: the ttl of the client's etcd lease, so how
    /// long a vanished client's locks stay held (whole seconds; etcd raises
    /// it to its minimum, 1.5 × the election timeout).
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Authenticates as `user` with `password`.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Connects with TLS: verifying the members against the system roots or
    /// the settings' CA, presenting their client certificate if any.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Verifies members against this PEM CA certificate (implies TLS; keeps
    /// a client certificate already set).
    pub fn with_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.tls = Some(self.tls.take().unwrap_or_default().with_ca(ca));
        self
    }

    /// Bounds each request to the cluster.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds establishing a connection to one member.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the waiter-liveness window: a waiter whose turn came must claim
    /// it within this time, or the client that handed the turn on passes
    /// over it (deletes its queue key); a waiter that died in line so holds
    /// the others up this long, never a session timeout. The key of a
    /// waiter lives on a waiter lease of this ttl (whole seconds, rounded
    /// up; etcd raises it to its minimum), which frees it when no live
    /// client hands the turn on. From 30 ms to 1 h; every client of a name
    /// should use the same window.
    pub fn with_waiter_timeout(mut self, timeout: Duration) -> Self {
        self.waiter_timeout = timeout;
        self
    }

    /// Queues waiters without the waiter-liveness window: a waiter's key
    /// lives on the client's etcd lease and its turn is never claimed, so a
    /// waiter that dies in line holds the others up until that lease ends.
    /// Only for the tests that show the difference.
    #[doc(hidden)]
    pub fn without_waiter_claims(mut self) -> Self {
        self.waiter_claims = false;
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

    /// The session timeout (the etcd lease ttl asked for).
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    /// The TLS settings, when TLS is on.
    pub fn tls(&self) -> Option<&TlsSettings> {
        self.tls.as_ref()
    }

    /// The bound on each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bound on connecting to one member.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The waiter-liveness window.
    pub fn waiter_timeout(&self) -> Duration {
        self.waiter_timeout
    }

    /// Whether waiters claim their turn (see
    /// [`without_waiter_claims`](Self::without_waiter_claims)).
    pub(crate) fn waiter_claims(&self) -> bool {
        self.waiter_claims
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(_, p)| p.as_str())
    }

    /// The endpoints as URLs for the client (`http://` or `https://`).
    pub(crate) fn endpoint_urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    /// A URL that describes this config, with the password redacted.
    pub fn display_url(&self) -> String {
        let auth = match self.user() {
            Some(u) => format!("{u}:***@"),
            None => String::new(),
        };
        format!(
            "etcd://{auth}{}/{}{}",
            self.endpoints.join(","),
            self.prefix,
            if self.tls.is_some() { "?tls=true" } else { "" }
        )
    }

    /// Refuses settings no client can work with.
    pub(crate) fn validate(&self) -> Result<()> {
        match self.problem() {
            None => Ok(()),
            Some(why) => Err(LockError::invalid_config(format!(
                "`{}`: {why}",
                self.display_url()
            ))),
        }
    }

    /// What makes these settings unusable, if anything.
    fn problem(&self) -> Option<String> {
        if self.endpoints.is_empty() {
            return Some("no etcd endpoint".into());
        }
        if let Some(e) = self.endpoints.iter().find(|e| !Host::is_address(e)) {
            return Some(format!("endpoint `{e}` is not `host:port`"));
        }
        let whole_seconds = self.session_timeout.subsec_nanos() == 0;
        if self.session_timeout < Duration::from_secs(1) || !whole_seconds {
            return Some(format!(
                "the session timeout is an etcd lease ttl: a whole number of seconds >= 1, got {:?}",
                self.session_timeout
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Some("timeouts must be positive".into());
        }
        if let Err(LockError::InvalidConfig { reason }) =
            line::check_waiter_timeout(self.waiter_timeout)
        {
            return Some(reason);
        }
        if self.prefix.is_empty() {
            return Some("the key prefix must not be empty".into());
        }
        if self.credentials.as_ref().is_some_and(|(u, _)| u.is_empty()) {
            return Some("empty user name".into());
        }
        let tls = self.tls.as_ref()?;
        tls.check()
            .and_then(|()| tls.require_verification("etcd"))
            .err()
            .map(|e| match e {
                LockError::InvalidConfig { reason } => reason,
                other => other.to_string(),
            })
    }
}

/// The key prefix: the URL's path or its `prefix` parameter, not both.
fn prefix(url: &mut BackendUrl) -> Result<String> {
    let path = url.path().trim_matches('/').to_string();
    match (path.is_empty(), url.string("prefix")) {
        (true, None) => Ok(DEFAULT_PREFIX.to_string()),
        (false, None) => Ok(path),
        (true, Some(p)) => Ok(p.trim_matches('/').to_string()),
        (false, Some(_)) => {
            Err(url.error("the prefix is given both as the path and as `prefix`; give one"))
        }
    }
}

/// `session_timeout` (a duration) or the legacy `lease_ttl` (whole
/// seconds, `10` or `10s`), not both.
fn session_timeout(url: &mut BackendUrl) -> Result<Duration> {
    let modern = url.duration("session_timeout")?;
    let legacy = match url.string("lease_ttl") {
        None => None,
        Some(v) => Some(whole_seconds(&v).ok_or_else(|| {
            url.error(&format!(
                "`lease_ttl={v}` must be a whole number of seconds >= 1 (`10` or `10s`)"
            ))
        })?),
    };
    match (modern, legacy) {
        (Some(_), Some(_)) => {
            Err(url.error("`session_timeout` and `lease_ttl` mean the same thing; give one"))
        }
        (modern, legacy) => Ok(modern.or(legacy).unwrap_or(DEFAULT_SESSION_TIMEOUT)),
    }
}

fn whole_seconds(s: &str) -> Option<Duration> {
    let s = s.trim();
    let n: u64 = s.strip_suffix('s').unwrap_or(s).parse().ok()?;
    (n >= 1).then(|| Duration::from_secs(n))
}

fn strip_scheme(endpoint: &str) -> String {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests;
