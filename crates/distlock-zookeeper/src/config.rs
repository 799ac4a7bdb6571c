//! Connection settings: the `zk://` URL and the builder that says the same.

use distlock_core::percent_decode;
use std::fmt;
use std::time::Duration;

use distlock_core::{redact_url, LockError, Result};

/// The root under which lock names live when the URL names none.
pub const DEFAULT_ROOT: &str = "/distlock";

/// The session timeout asked for when the URL names none. The server clamps
/// it into its own `[minSessionTimeout, maxSessionTimeout]`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a [`ZkBackend`](crate::ZkBackend) needs to connect.
///
/// Build it from a URL with [`ZkConfig::from_url`] or by hand:
///
/// ```
/// use std::time::Duration;
/// use distlock_zookeeper::ZkConfig;
/// let config = ZkConfig::new(["127.0.0.1:2181", "127.0.0.1:2182"])
///     .chroot("/apps/billing")?
///     .session_timeout(Duration::from_secs(4))
///     .credentials("billing", "s3cret");
/// assert_eq!(config.base_path(), "/apps/billing/distlock");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct ZkConfig {
    hosts: Vec<String>,
    chroot: String,
    root: String,
    session_timeout: Duration,
    credentials: Option<(String, String)>,
}

impl fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkConfig")
            .field("hosts", &self.hosts)
            .field("chroot", &self.chroot)
            .field("root", &self.root)
            .field("session_timeout", &self.session_timeout)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u.as_str()))
            .field("password", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ZkConfig {
    /// Settings for an ensemble given as `host:port` strings; default root,
    /// no chroot, default session timeout, no credentials.
    pub fn new<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ZkConfig {
            hosts: hosts.into_iter().map(Into::into).collect(),
            chroot: String::new(),
            root: DEFAULT_ROOT.to_string(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            credentials: None,
        }
    }

    /// Parses `zk://h1:p1,h2:p2/optional/chroot?session_timeout_ms=…&root=…&user=…&password=…`.
    ///
    /// - hosts: one or more `host:port` (port defaults to 2181);
    /// - path (optional): a chroot every node lives under;
    /// - `root` (default `/distlock`): where lock names live, inside the chroot;
    /// - `session_timeout_ms` (default 10000): the session timeout to ask for;
    /// - `user` and `password`: digest credentials; nodes then carry an ACL
    ///   that gives this identity every permission and everyone else read.
    ///
    /// Query values are percent-decoded. Unknown parameters are refused.
    ///
    /// ```
    /// use distlock_zookeeper::ZkConfig;
    /// let c = ZkConfig::from_url("zk://a:1,b:2/team?root=/locks&session_timeout_ms=4000")?;
    /// assert_eq!(c.base_path(), "/team/locks");
    /// assert!(ZkConfig::from_url("zk://").is_err());
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            LockError::invalid_config(format!("{why} in ZooKeeper URL `{}`", redact_url(url)))
        };
        let rest = url
            .strip_prefix("zk://")
            .or_else(|| url.strip_prefix("zookeeper://"))
            .ok_or_else(|| bad("expected scheme `zk://` or `zookeeper://`"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials belong in the query (`?user=…&password=…`), not before the hosts",
            ));
        }
        let mut hosts = Vec::new();
        for host in authority.split(',') {
            hosts.push(parse_host(host).ok_or_else(|| bad("expected hosts as `host:port,…`"))?);
        }
        let mut config = ZkConfig::new(hosts);
        if !path.is_empty() && path != "/" {
            config = config
                .chroot(path)
                .map_err(|_| bad("invalid chroot path"))?;
        }
        let mut user = None;
        let mut password = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad("bad percent-encoding"))?;
            match key {
                "session_timeout_ms" => {
                    let ms: u64 = value
                        .parse()
                        .map_err(|_| bad("`session_timeout_ms` must be a number"))?;
                    if ms == 0 {
                        return Err(bad("`session_timeout_ms` must be positive"));
                    }
                    config.session_timeout = Duration::from_millis(ms);
                }
                "root" => {
                    config = config
                        .root(&value)
                        .map_err(|_| bad("invalid `root` path"))?
                }
                "user" => user = Some(value),
                "password" => password = Some(value),
                other => {
                    return Err(bad(&format!(
                    "unknown parameter `{other}` (known: session_timeout_ms, root, user, password)"
                )))
                }
            }
        }
        match (user, password) {
            (Some(u), Some(p)) if !u.is_empty() && !u.contains(':') => {
                config.credentials = Some((u, p));
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "`user` (non-empty, no `:`) and `password` must be given together",
                ))
            }
        }
        Ok(config)
    }

    /// Sets the chroot: every node lives under this absolute path.
    pub fn chroot(mut self, path: &str) -> Result<Self> {
        self.chroot = normalize_path(path)?;
        Ok(self)
    }

    /// Sets the root under which lock names live (inside the chroot).
    pub fn root(mut self, path: &str) -> Result<Self> {
        let root = normalize_path(path)?;
        if root.is_empty() {
            return Err(LockError::invalid_config(
                "the ZooKeeper root must not be `/`: lock nodes need a parent of their own",
            ));
        }
        self.root = root;
        Ok(self)
    }

    /// Sets the session timeout to ask for.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets digest credentials (see [`ZkConfig::from_url`] for the ACL they bring).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The ensemble's `host:port` list.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The path every lock name's directory lives under: chroot + root.
    pub fn base_path(&self) -> String {
        format!("{}{}", self.chroot, self.root)
    }

    /// The requested session timeout.
    pub fn requested_session_timeout(&self) -> Duration {
        self.session_timeout
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

    pub(crate) fn validate(&self) -> Result<()> {
        if self.hosts.is_empty() || self.hosts.iter().any(|h| parse_host(h).is_none()) {
            return Err(LockError::invalid_config(format!(
                "ZooKeeper hosts must be `host:port`, got {:?}",
                self.hosts
            )));
        }
        if self.session_timeout.is_zero() {
            return Err(LockError::invalid_config(
                "ZooKeeper session timeout must be positive",
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

fn parse_host(host: &str) -> Option<String> {
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return None;
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
            Some(host.to_string())
        }
        Some(_) => None,
        None => Some(format!("{host}:2181")),
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
        assert_eq!(c.requested_session_timeout(), Duration::from_millis(2500));
        assert_eq!(c.user(), Some("alice"));
        assert_eq!(c.digest_auth().unwrap(), b"alice:p@ss&w");
    }

    #[test]
    fn a_bare_url_uses_the_default_root_and_timeout() {
        let c = ZkConfig::from_url("zookeeper://localhost:2181").unwrap();
        assert_eq!(c.base_path(), "/distlock");
        assert_eq!(c.requested_session_timeout(), DEFAULT_SESSION_TIMEOUT);
        assert!(c.user().is_none());
    }

    #[test]
    fn bad_urls_are_invalid_config_without_the_password() {
        for url in [
            "zk://",
            "zk://h:notaport",
            "zk://h:1?session_timeout_ms=abc&password=hunter2",
            "zk://h:1?password=hunter2",
            "zk://h:1?user=a&password=hunter2&bogus=1",
            "zk://u:hunter2@h:1",
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
    fn debug_never_shows_the_password() {
        let c = ZkConfig::from_url("zk://h:1?user=u&password=hunter2").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }
}
