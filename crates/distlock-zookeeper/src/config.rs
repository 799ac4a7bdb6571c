//! Connection settings: the `zk://` URL and the builder that says the same.

use std::fmt;
use std::time::Duration;

use distlock_core::{BackendUrl, Host, LockError, Result};

/// The prefix under which lock names live when the URL names none.
pub const DEFAULT_PREFIX: &str = "/distlock";

/// The session timeout asked for when the URL names none. The server clamps
/// it into its own `[minSessionTimeout, maxSessionTimeout]`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

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
    ///   a session (default: the session timeout plus 1 s).
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
        if let Some((user, _)) = &self.credentials {
            if user.is_empty() || user.contains(':') {
                return Err(LockError::invalid_config(
                    "the ZooKeeper user must be non-empty and contain no `:`",
                ));
            }
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
mod tests {
    use super::*;

    #[test]
    fn full_url_is_understood() {
        let c = ZkConfig::from_url(
            "zk://h1:1,h2:2,h3/chroot/x?session_timeout_ms=2500&user=alice&password=p%40ss%26w&root=/locks",
        )
        .unwrap();
        assert_eq!(c.hosts(), ["h1:1", "h2:2", "h3:2181"]);
        assert_eq!(c.base_path(), "/chroot/x/locks");
        assert_eq!(c.session_timeout(), Duration::from_millis(2500));
        assert_eq!(c.user(), Some("alice"));
        assert_eq!(c.digest_auth().unwrap(), b"alice:p@ss&w");
    }

    #[test]
    fn a_bare_url_uses_the_default_prefix_and_timeouts() {
        let c = ZkConfig::from_url("zookeeper://localhost").unwrap();
        assert_eq!(c.hosts(), ["localhost:2181"], "default port");
        assert_eq!(c.base_path(), "/distlock");
        assert_eq!(c.session_timeout(), DEFAULT_SESSION_TIMEOUT);
        assert_eq!(c.timeout(), None);
        assert_eq!(c.connect_timeout(), DEFAULT_SESSION_TIMEOUT + CONNECT_SLACK);
        assert!(c.user().is_none());
    }

    #[test]
    fn userinfo_gives_the_credentials_percent_decoded() {
        let c = ZkConfig::from_url("zk://alice:p%40ss%2Cw@h1:1,h2:2/app").unwrap();
        assert_eq!(c.hosts(), ["h1:1", "h2:2"]);
        assert_eq!(c.user(), Some("alice"));
        assert_eq!(c.digest_auth().unwrap(), b"alice:p@ss,w");
        assert_eq!(c.base_path(), "/app/distlock");
        // The legacy query keys say the same.
        let legacy =
            ZkConfig::from_url("zk://h1:1,h2:2/app?username=alice&password=p%40ss%2Cw").unwrap();
        assert_eq!(legacy.digest_auth(), c.digest_auth());
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let c = ZkConfig::from_url("zk://[::1]:2182,[fe80::1]").unwrap();
        assert_eq!(c.hosts(), ["[::1]:2182", "[fe80::1]:2181"]);
        assert_eq!(c.connect_string(), "[::1]:2182,[fe80::1]:2181");
    }

    #[test]
    fn durations_take_units_and_the_legacy_millisecond_keys() {
        let modern =
            ZkConfig::from_url("zk://h?timeout=2s&session_timeout=6s&connect_timeout=500ms")
                .unwrap();
        let legacy = ZkConfig::from_url(
            "zk://h?timeout_ms=2000&session_timeout_ms=6000&connect_timeout_ms=500",
        )
        .unwrap();
        for c in [&modern, &legacy] {
            assert_eq!(c.timeout(), Some(Duration::from_secs(2)));
            assert_eq!(c.session_timeout(), Duration::from_secs(6));
            assert_eq!(c.connect_timeout(), Duration::from_millis(500));
        }
        assert!(ZkConfig::from_url("zk://h?timeout=2s&timeout_ms=2000").is_err());
    }

    #[test]
    fn prefix_and_its_legacy_name_root() {
        let c = ZkConfig::from_url("zk://h/c?prefix=locks/").unwrap();
        assert_eq!(c.base_path(), "/c/locks");
        let c = ZkConfig::from_url("zk://h?root=/old").unwrap();
        assert_eq!(c.prefix(), "/old");
        let err = ZkConfig::from_url("zk://h?root=/a&prefix=/b").unwrap_err();
        assert!(err.to_string().contains("give one"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = ZkConfig::from_url("zk://u:hunter2@h?session_timeout=2s&colour=ON").unwrap_err();
        assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().contains("`colour`"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_urls_are_invalid_config_without_the_password() {
        for url in [
            "zk://",
            "zk://h:notaport",
            "zk://h:1?session_timeout_ms=abc&password=hunter2",
            "zk://h:1?session_timeout=0s&password=hunter2&user=u",
            "zk://h:1?password=hunter2",
            "zk://h:1?user=a&password=hunter2&bogus=1",
            "zk://u:hunter2@h:1?user=u&password=hunter2",
            "zk://u@h:1",
            "zk://u%3Ax:hunter2@h:1",
            "zk://u:hunter2@h:1,v:hunter2@h2:2",
            "zk://h:1/a//b?password=hunter2&user=u",
            "zk://h:1?root=/&user=u&password=hunter2",
            "redis://h:1",
        ] {
            let err = ZkConfig::from_url(url).unwrap_err();
            assert!(
                matches!(err, LockError::InvalidConfig { .. }),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn hand_built_settings_are_checked() {
        assert!(ZkConfig::new(["h:1"]).validate().is_ok());
        assert!(ZkConfig::new(["[::1]:1"]).validate().is_ok());
        for hosts in [
            vec![],
            vec!["h"],
            vec!["h:0"],
            vec!["::1:2181"],
            vec!["[::1]"],
        ] {
            assert!(
                ZkConfig::new(hosts.clone()).validate().is_err(),
                "{hosts:?}"
            );
        }
        let zero = ZkConfig::new(["h:1"]).with_timeout(Duration::ZERO);
        assert!(zero.validate().is_err());
        assert!(ZkConfig::new(["h:1"]).with_prefix("/").is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        for url in ["zk://h:1?user=u&password=hunter2", "zk://u:hunter2@h:1"] {
            let c = ZkConfig::from_url(url).unwrap();
            let dbg = format!("{c:?}");
            assert!(!dbg.contains("hunter2"), "{dbg}");
            assert!(dbg.contains("***"), "{dbg}");
        }
    }
}
