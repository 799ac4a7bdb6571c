//! Connection settings: the `zk://` URL and the builder that says the same.

use std::fmt;
use std::time::Duration;

use distlock_core::{BackendUrl, Host, LockError, Result, TlsSettings};

/// The prefix under which lock names live when the URL names none.
pub const DEFAULT_PREFIX: &str = "/distlock";

/// The session timeout asked for when the URL names none. The server clamps
/// it into its own `[minSessionTimeout, maxSessionTimeout]`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The waiter-liveness window when the URL names none: how long a waiter
/// whose turn came may take to claim it before the others pass over it (see
/// [`ZkConfig::with_waiter_timeout`]).
pub const DEFAULT_WAITER_TIMEOUT: Duration = distlock_core::line::DEFAULT_WAITER_TIMEOUT;

/// Extra time a session handshake gets beyond the session timeout when no
/// `connect_timeout` is set (the library itself gives up after about one
/// session timeout).
const CONNECT_SLACK: Duration = Duration::from_secs(1);

/// Everything a [`ZkBackend`](crate::ZkBackend) needs to connect.
///
/// Build it from a URL with [`ZkConfig::from_url`] or by hand:
///
/// ```
/// use std::time::Duration;
/// use distlock_zookeeper::ZkConfig;
/// let config = ZkConfig::new(["127.0.0.1:2181", "127.0.0.1:2182"])
///     .with_chroot("/apps/billing")?
///     .with_session_timeout(Duration::from_secs(4))
///     .with_credentials("billing", "s3cret");
/// assert_eq!(config.base_path(), "/apps/billing/distlock");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct ZkConfig {
    hosts: Vec<String>,
    chroot: String,
    prefix: String,
    session_timeout: Duration,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    credentials: Option<(String, String)>,
    tls: Option<TlsSettings>,
    waiter_timeout: Duration,
    /// Waiters claim their turn (off only in the tests that show why).
    waiter_claims: bool,
    /// Change notices include the nodes' data changes (off only in the
    /// test that shows why).
    notice_claims: bool,
}

impl fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkConfig")
            .field("hosts", &self.hosts)
            .field("chroot", &self.chroot)
            .field("prefix", &self.prefix)
            .field("session_timeout", &self.session_timeout)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("waiter_timeout", &self.waiter_timeout)
            .finish()
    }
}

impl ZkConfig {
    /// Settings for an ensemble given as `host:port` strings (IPv6 in
    /// brackets); default prefix, no chroot, default session timeout, no
    /// credentials.
    pub fn new<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ZkConfig {
            hosts: hosts.into_iter().map(Into::into).collect(),
            chroot: String::new(),
            prefix: DEFAULT_PREFIX.to_string(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            timeout: None,
            connect_timeout: None,
            credentials: None,
            tls: None,
            waiter_timeout: DEFAULT_WAITER_TIMEOUT,
            waiter_claims: true,
            notice_claims: true,
        }
    }

    /// Parses
    /// `zk://[user:password@]h1:p1,h2:p2[/chroot][?session_timeout=…&prefix=…&timeout=…&connect_timeout=…]`
    /// (`zookeeper://` works too), in the URL grammar of
    /// [`BackendUrl`](distlock_core::BackendUrl):
    ///
    /// - hosts: one or more `host[:port]` (port 2181 by default; IPv6 in
    ///   brackets);
    /// - `user:password@` (percent-decoded): digest credentials; nodes then
    ///   carry an ACL that gives this identity every permission and everyone
    ///   else read. The legacy query keys `user` (or `username`) and
    ///   `password` say the same;
    /// - path (optional): a chroot every node lives under;
    /// - `prefix` (legacy `root`; default `/distlock`): where lock names
    ///   live, inside the chroot;
    /// - `session_timeout` (`6s`, `500ms`; legacy `session_timeout_ms=<ms>`;
    ///   default 10 s): the session timeout to ask for;
    /// - `timeout` (legacy `timeout_ms`): the bound on each request (default:
    ///   the negotiated session timeout);
    /// - `connect_timeout` (legacy `connect_timeout_ms`): the bound on opening
    ///   a session (default: the session timeout plus 1 s);
    /// - `waiter_timeout` (default 1 s, 30 ms to 1 h): the waiter-liveness
    ///   window, see [`with_waiter_timeout`](Self::with_waiter_timeout);
    /// - `ca=<PEM file>` (legacy `cacert`): TLS to every server (its
    ///   `secureClientPort`), verified against this CA, which TLS needs (the
    ///   client has no system roots); `cert=<PEM file>&key=<PEM file>`: a
    ///   client certificate (`ssl.clientAuth=need`). The client always
    ///   verifies the server: `danger_accept_invalid_certs` is refused.
    ///
    /// Unknown parameters are refused; the password never appears in errors.
    ///
    /// ```
    /// use std::time::Duration;
    /// use distlock_zookeeper::ZkConfig;
    /// let c = ZkConfig::from_url("zk://app:pw@a:1,b/team?prefix=/locks&session_timeout=4s")?;
    /// assert_eq!(c.hosts(), ["a:1", "b:2181"]);
    /// assert_eq!(c.base_path(), "/team/locks");
    /// assert_eq!(c.session_timeout(), Duration::from_secs(4));
    /// assert_eq!(c.user(), Some("app"));
    /// assert!(ZkConfig::from_url("zk://").is_err());
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let mut url = BackendUrl::parse(url)?;
        let mut config = Self::from_authority(&mut url)?;
        config = config.read_paths(&mut url)?;
        config.read_timeouts(&mut url)?;
        url.finish()?;
        config.validate().map_err(|e| url.error(&reason(&e)))?;
        Ok(config)
    }

    /// The scheme, the hosts and the credentials of a URL.
    fn from_authority(url: &mut BackendUrl) -> Result<Self> {
        if !matches!(url.scheme(), "zk" | "zookeeper") {
            return Err(url.error("expected scheme `zk://` or `zookeeper://`"));
        }
        let hosts = url.hosts()?;
        let mut config = ZkConfig::new(hosts.iter().map(Host::address));
        config.credentials = url.shared_credentials()?;
        config.tls = TlsSettings::from_url(url, false)?;
        Ok(config)
    }

    /// The chroot (the URL's path) and the `prefix` (legacy `root`).
    fn read_paths(mut self, url: &mut BackendUrl) -> Result<Self> {
        if !url.path().is_empty() && url.path() != "/" {
            let chroot = url.path().to_string();
            self = self
                .with_chroot(&chroot)
                .map_err(|_| url.error("invalid chroot path"))?;
        }
        if let Some(prefix) = url.string_any(&["prefix", "root"])? {
            self = self
                .with_prefix(&prefix)
                .map_err(|e| url.error(&format!("invalid `prefix`: {}", reason(&e))))?;
        }
        Ok(self)
    }

    /// `session_timeout`, `timeout` and `connect_timeout` (each also in its
    /// legacy `_ms` form).
    fn read_timeouts(&mut self, url: &mut BackendUrl) -> Result<()> {
        if let Some(session) = url.duration("session_timeout")? {
            self.session_timeout = session;
        }
        self.timeout = url.duration("timeout")?;
        self.connect_timeout = url.duration("connect_timeout")?;
        if let Some(window) = url.duration("waiter_timeout")? {
            self.waiter_timeout = window;
        }
        Ok(())
    }

    /// Sets the chroot: every node lives under this absolute path. Refuses a
    /// path with empty, `.` or `..` segments.
    pub fn with_chroot(mut self, path: &str) -> Result<Self> {
        self.chroot = normalize_path(path)?;
        Ok(self)
    }

    /// Sets the prefix under which lock names live (inside the chroot).
    /// Refuses `/` (lock directories need a parent of their own) and paths
    /// with empty, `.` or `..` segments.
    pub fn with_prefix(mut self, path: &str) -> Result<Self> {
        let prefix = normalize_path(path)?;
        if prefix.is_empty() {
            return Err(LockError::invalid_config(
                "the ZooKeeper prefix must not be `/`: lock nodes need a parent of their own",
            ));
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Sets the session timeout to ask for.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets the bound on each request (default: the negotiated session
    /// timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the bound on opening a session (default: the session timeout
    /// plus 1 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets digest credentials (see [`ZkConfig::from_url`] for the ACL they
    /// bring).
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Connects with TLS to the servers' `secureClientPort`: verifying them
    /// against the settings' CA (required: the client has no system roots),
    /// presenting their client certificate if any.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS settings, when TLS is on.
    pub fn tls(&self) -> Option<&TlsSettings> {
        self.tls.as_ref()
    }

    /// The ensemble's `host:port` list.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The chroot (empty for none).
    pub fn chroot(&self) -> &str {
        &self.chroot
    }

    /// The prefix lock names live under, inside the chroot.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The path every lock name's directory lives under: chroot + prefix.
    pub fn base_path(&self) -> String {
        format!("{}{}", self.chroot, self.prefix)
    }

    /// The requested session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Sets the waiter-liveness window: a waiter whose turn came must claim
    /// it within this time, or the client that handed the turn on (or a
    /// waiter behind it) passes over it (deletes its queue node); a waiter
    /// that died in line so holds the others up about this long, not a
    /// session timeout. From 30 ms to 1 h; every client of a name should use
    /// the same window.
    pub fn with_waiter_timeout(mut self, timeout: Duration) -> Self {
        self.waiter_timeout = timeout;
        self
    }

    /// Queues waiters without the waiter-liveness window: a waiter's node
    /// never claims its turn, so a waiter that dies in line holds the others
    /// up until its session ends. Only for the tests that show the
    /// difference.
    #[doc(hidden)]
    pub fn without_waiter_claims(mut self) -> Self {
        self.waiter_claims = false;
        self
    }

    /// Watches a name's directory for children created and deleted only,
    /// not for their data changes: an observer then misses a waiter
    /// claiming its turn. Only for the test that shows the difference.
    #[doc(hidden)]
    pub fn with_claims_unnoticed_broken_on_purpose(mut self) -> Self {
        self.notice_claims = false;
        self
    }

    /// Whether change notices include the nodes' data changes.
    pub(crate) fn notice_claims(&self) -> bool {
        self.notice_claims
    }

    /// The waiter-liveness window.
    pub fn waiter_timeout(&self) -> Duration {
        self.waiter_timeout
    }

    /// Whether waiters claim their turn.
    pub(crate) fn waiter_claims(&self) -> bool {
        self.waiter_claims
    }

    /// The bound on each request, if set (otherwise the negotiated session
    /// timeout applies).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The bound on opening a session.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
            .unwrap_or(self.session_timeout + CONNECT_SLACK)
    }

    /// The digest user, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(u, _)| u.as_str())
    }

    pub(crate) fn digest_auth(&self) -> Option<Vec<u8>> {
        self.credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{p}").into_bytes())
    }

    /// Refuses settings no session can be opened with.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.hosts.is_empty() || self.hosts.iter().any(|h| !Host::is_address(h)) {
            return Err(LockError::invalid_config(format!(
                "ZooKeeper hosts must be `host:port`, got {:?}",
                self.hosts
            )));
        }
        let durations = [
            ("session_timeout", Some(self.session_timeout)),
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ];
        if let Some((key, _)) = durations
            .iter()
            .find(|(_, d)| d.is_some_and(|d| d.is_zero()))
        {
            return Err(LockError::invalid_config(format!(
                "the ZooKeeper `{key}` must be positive"
            )));
        }
        distlock_core::line::check_waiter_timeout(self.waiter_timeout)?;
        if let Some((user, _)) = &self.credentials {
            if user.is_empty() || user.contains(':') {
                return Err(LockError::invalid_config(
                    "the ZooKeeper user must be non-empty and contain no `:`",
                ));
            }
        }
        self.validate_tls()
    }

    /// The TLS settings must name a CA and must not skip verification: the
    /// client library has neither system roots nor a way to skip it.
    fn validate_tls(&self) -> Result<()> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        tls.check()?;
        tls.require_verification("ZooKeeper")?;
        if tls.ca().is_none() {
            return Err(LockError::invalid_config(
                "ZooKeeper over TLS needs the servers' CA (`ca=<PEM file>`): the client has no system roots",
            ));
        }
        Ok(())
    }

    /// A connect string for the client library (no chroot: distlock
    /// prefixes paths itself).
    pub(crate) fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

/// The message of a config error, for re-wording it against the URL.
fn reason(e: &LockError) -> String {
    match e {
        LockError::InvalidConfig { reason } => reason.clone(),
        other => other.to_string(),
    }
}

/// `/a/b` stays, `a/b/` becomes `/a/b`, `/` becomes ``; empty segments,
/// `.`/`..` and NUL are refused.
fn normalize_path(path: &str) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let mut out = String::new();
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return Err(LockError::invalid_config(format!(
                "`{path}` is not a valid ZooKeeper path"
            )));
        }
        out.push('/');
        out.push_str(seg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
