//! One URL grammar for every backend.
//!
//! ```text
//! scheme://[user[:password]@]host[:port][,[user[:password]@]host[:port]…][/path][?key=value&…]
//! ```
//!
//! - The scheme is case-insensitive.
//! - Hosts are a comma-separated list; IPv6 addresses go in brackets
//!   (`[::1]:2379`); a host without a port gets its scheme's default port
//!   from the [registry](crate::registry).
//! - User and password are percent-decoded (write `@` as `%40`, `,` as
//!   `%2C`). Userinfo on the first host applies to every host that has none
//!   of its own.
//! - The path is percent-decoded.
//! - Query values are read by typed readers: durations as `2s`, `500ms`,
//!   `1m` (a legacy `<key>_ms=<integer>` form is accepted too), booleans as
//!   `true/false/1/0/on/off/yes/no` in any case, numbers, strings. A key
//!   given twice is refused, and so is any key no reader asked for
//!   ([`BackendUrl::finish`]).
//! - Passwords never reach an error message or `Debug` output: both use the
//!   [redacted](crate::redact_url) form of the URL.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{LockError, Result};
use crate::name::percent_decode as decode;
use crate::redact::redact_url;

/// One host of a URL's host list.
#[derive(Clone, PartialEq, Eq)]
pub struct Host {
    /// The host name or address, without IPv6 brackets.
    pub name: String,
    /// The port (the scheme's default where the URL gives none).
    pub port: u16,
    /// The user, percent-decoded.
    pub user: Option<String>,
    password: Option<String>,
}

impl Host {
    /// The password, percent-decoded (never shown by `Debug`).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// True for a well-formed `host:port` (IPv6 in brackets, a non-zero
    /// port, no URL punctuation): what hand-built configs are checked with.
    ///
    /// ```
    /// use distlock_core::Host;
    /// assert!(Host::is_address("h:1") && Host::is_address("[::1]:2379"));
    /// assert!(!Host::is_address("h") && !Host::is_address("::1:2379") && !Host::is_address("h:0"));
    /// ```
    pub fn is_address(s: &str) -> bool {
        if s.is_empty() || s.contains(['/', '?', '#', ' ', ',', '@']) {
            return false;
        }
        let (name, port) = match s.strip_prefix('[') {
            Some(v6) => match v6.split_once("]:") {
                Some(parts) => parts,
                None => return false,
            },
            None => match s.rsplit_once(':') {
                Some((name, port)) if !name.contains(':') => (name, port),
                _ => return false,
            },
        };
        !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.name.contains(':') {
            format!("[{}]:{}", self.name, self.port)
        } else {
            format!("{}:{}", self.name, self.port)
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A parsed backend URL with typed, consuming query readers.
///
/// ```
/// use std::time::Duration;
/// use distlock_core::BackendUrl;
/// let mut url = BackendUrl::parse("etcd://app:p%40ss@h1,[::1]:2380/locks?timeout=2s&tls=ON")?;
/// let hosts = url.hosts()?;
/// assert_eq!(hosts[0].address(), "h1:2379");
/// assert_eq!(hosts[1].address(), "[::1]:2380");
/// assert_eq!(hosts[1].password(), Some("p@ss"));
/// assert_eq!(url.path(), "/locks");
/// assert_eq!(url.duration("timeout")?, Some(Duration::from_secs(2)));
/// assert_eq!(url.boolean("tls")?, Some(true));
/// url.finish()?;
/// assert!(!format!("{url:?}").contains("p%40ss"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
pub struct BackendUrl {
    scheme: String,
    authority: String,
    path: String,
    params: Vec<(String, String)>,
    taken: Vec<bool>,
    redacted: String,
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BackendUrl").field(&self.redacted).finish()
    }
}

impl BackendUrl {
    /// Parses `url`; `InvalidConfig` for anything that is not a URL, a
    /// malformed percent escape, or a repeated query key.
    pub fn parse(url: &str) -> Result<Self> {
        let redacted = redact_url(url);
        let bad = |why: &str| LockError::invalid_config(format!("`{redacted}`: {why}"));
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| bad("not a URL: expected `<scheme>://…`"))?;
        let scheme_ok = !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(bad("no valid scheme"));
        }
        let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match before_query.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
            None => (String::new(), before_query),
        };
        let path = decode(path).ok_or_else(|| bad("bad percent escape in the path"))?;
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k.is_empty() {
                continue;
            }
            if params.iter().any(|(seen, _)| *seen == k) {
                return Err(bad(&format!("parameter `{k}` is given twice")));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        Ok(BackendUrl {
            scheme: scheme.to_ascii_lowercase(),
            authority,
            path,
            taken: vec![false; params.len()],
            params,
            redacted,
        })
    }

    /// The scheme, lower-cased.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The URL with passwords replaced by `***`, for messages.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The percent-decoded path, with its leading `/` (empty if none).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw authority (everything between `//` and the path), for
    /// backends whose "host" is not a network address.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The host list, each with its port (the scheme's default port when
    /// none is given) and userinfo. `InvalidConfig` for an empty list, a
    /// bad port, an unclosed IPv6 bracket or a missing port on a scheme
    /// without a default.
    pub fn hosts(&self) -> Result<Vec<Host>> {
        let default_port = crate::registry::lookup(&self.scheme).and_then(|s| s.default_port);
        let mut hosts = Vec::new();
        let mut shared: Option<(Option<String>, Option<String>)> = None;
        for part in self.authority.split(',') {
            if part.is_empty() {
                return Err(self.error("empty host in the host list"));
            }
            let (userinfo, hostport) = match part.rfind('@') {
                Some(at) => (Some(&part[..at]), &part[at + 1..]),
                None => (None, part),
            };
            let (user, password) = match userinfo {
                Some(info) => {
                    let (u, p) = match info.split_once(':') {
                        Some((u, p)) => (u, Some(p)),
                        None => (info, None),
                    };
                    let u =
                        decode(u).ok_or_else(|| self.error("bad percent escape in the user"))?;
                    let p = p
                        .map(|p| {
                            decode(p)
                                .ok_or_else(|| self.error("bad percent escape in the password"))
                        })
                        .transpose()?;
                    let creds = ((!u.is_empty()).then_some(u), p);
                    shared.get_or_insert_with(|| creds.clone());
                    creds
                }
                None => shared.clone().unwrap_or((None, None)),
            };
            let (name, port) = self.host_port(hostport, default_port)?;
            hosts.push(Host {
                name,
                port,
                user,
                password,
            });
        }
        Ok(hosts)
    }

    fn host_port(&self, s: &str, default_port: Option<u16>) -> Result<(String, u16)> {
        let (name, port) = if let Some(v6) = s.strip_prefix('[') {
            let (name, after) = v6
                .split_once(']')
                .ok_or_else(|| self.error("unclosed `[` in an IPv6 host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| self.error("expected `:port` after `]`"))?,
                ),
            };
            (name.to_string(), port)
        } else {
            match s.rsplit_once(':') {
                Some((n, p)) => (n.to_string(), Some(p)),
                None => (s.to_string(), None),
            }
        };
        if name.is_empty() {
            return Err(self.error("a host name is empty"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| self.error(&format!("`{p}` is not a port")))?,
            None => default_port.ok_or_else(|| {
                self.error(&format!(
                    "host `{name}` needs a port (this scheme has no default)"
                ))
            })?,
        };
        Ok((name, port))
    }

    /// The one identity of a URL whose servers all share it: the userinfo
    /// (the same on every host) or the legacy `user` (or `username`) and
    /// `password` query keys, never both; a user without a password (or the
    /// reverse) is refused. Takes those keys.
    pub fn shared_credentials(&mut self) -> Result<Option<(String, String)>> {
        let from_query = (
            self.string_any(&["user", "username"])?,
            self.string("password"),
        );
        let hosts = self.hosts()?;
        let Some(first) = hosts.first() else {
            return Err(self.error("no host"));
        };
        if hosts
            .iter()
            .any(|h| h.user != first.user || h.password() != first.password())
        {
            return Err(self.error("every host must be given the same credentials"));
        }
        let from_userinfo = (first.user.clone(), first.password().map(str::to_string));
        let (user, password) =
            match (from_userinfo, from_query) {
                ((None, None), query) => query,
                (userinfo, (None, None)) => userinfo,
                _ => return Err(self.error(
                    "credentials given both before the hosts and as `user`/`password`; give one",
                )),
            };
        match (user, password) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            (None, None) => Ok(None),
            _ => Err(self.error("a user and a password must be given together")),
        }
    }

    /// Takes a string parameter.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let i = self.params.iter().position(|(k, _)| k == key)?;
        self.taken[i] = true;
        Some(self.params[i].1.clone())
    }

    /// Takes a parameter that has a current name and older aliases; giving
    /// two of them is refused.
    pub fn string_any(&mut self, keys: &[&str]) -> Result<Option<String>> {
        let mut found: Option<(&str, String)> = None;
        for key in keys {
            if let Some(v) = self.string(key) {
                if let Some((first, _)) = &found {
                    return Err(self.error(&format!(
                        "`{first}` and `{key}` mean the same thing; give one"
                    )));
                }
                found = Some((key, v));
            }
        }
        Ok(found.map(|(_, v)| v))
    }

    /// Takes a number (or anything with `FromStr`).
    pub fn number<T: FromStr>(&mut self, key: &str) -> Result<Option<T>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.error(&format!("`{key}={v}` is not a valid number"))),
        }
    }

    /// Takes a boolean: `true/false/1/0/on/off/yes/no`, any case.
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => Ok(Some(true)),
                "false" | "0" | "off" | "no" => Ok(Some(false)),
                _ => Err(self.error(&format!(
                    "`{key}={v}` is not a boolean (true/false, 1/0, on/off, yes/no)"
                ))),
            },
        }
    }

    /// Takes a duration: `key=2s` / `500ms` / `1m30s`, or the legacy
    /// `key_ms=<integer milliseconds>`. Giving both is refused; a bare number
    /// without a unit is refused (it would be ambiguous).
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        let legacy = format!("{key}_ms");
        let modern = self.string(key);
        let millis = self.string(&legacy);
        match (modern, millis) {
            (Some(_), Some(_)) => Err(self.error(&format!(
                "`{key}` and `{legacy}` mean the same thing; give one"
            ))),
            (Some(v), None) => humantime::parse_duration(v.trim()).map(Some).map_err(|_| {
                self.error(&format!(
                    "`{key}={v}` is not a duration (write it with a unit: `2s`, `500ms`, `1m`)"
                ))
            }),
            (None, Some(v)) => v
                .trim()
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| {
                    self.error(&format!(
                        "`{legacy}={v}` is not a whole number of milliseconds"
                    ))
                }),
            (None, None) => Ok(None),
        }
    }

    /// Refuses any parameter no reader took, naming it and the URL.
    pub fn finish(&self) -> Result<()> {
        let unknown: Vec<&str> = self
            .params
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|((k, _), _)| k.as_str())
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(self.error(&format!(
                "unknown parameter{} {} (see the URL parameters table in docs/backends.md)",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// An `InvalidConfig` error about this URL (redacted).
    pub fn error(&self, why: &str) -> LockError {
        LockError::invalid_config(format!("`{}`: {why}", self.redacted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_of_the_first_host_applies_to_the_others() {
        let url = BackendUrl::parse("redlock://u:a@h1:1,h2:2,v:b@h3:3").unwrap();
        let hosts = url.hosts().unwrap();
        assert_eq!(hosts[1].user.as_deref(), Some("u"));
        assert_eq!(hosts[1].password(), Some("a"));
        assert_eq!(hosts[2].user.as_deref(), Some("v"));
        assert_eq!(hosts[2].password(), Some("b"));
    }

    #[test]
    fn default_ports_come_from_the_registry() {
        let url = BackendUrl::parse("zk://a,b:2182").unwrap();
        let ports: Vec<u16> = url.hosts().unwrap().iter().map(|h| h.port).collect();
        assert_eq!(ports, [2181, 2182]);
    }

    #[test]
    fn legacy_millisecond_keys_are_read_and_both_forms_refused() {
        let mut url = BackendUrl::parse("redis://h?timeout_ms=250").unwrap();
        assert_eq!(
            url.duration("timeout").unwrap(),
            Some(Duration::from_millis(250))
        );
        let mut url = BackendUrl::parse("redis://h?timeout_ms=250&timeout=1s").unwrap();
        assert!(url.duration("timeout").is_err());
        let mut url = BackendUrl::parse("redis://h?timeout=250").unwrap();
        assert!(
            url.duration("timeout").is_err(),
            "a bare number has no unit"
        );
    }

    #[test]
    fn booleans_are_case_insensitive_and_garbage_refused() {
        let mut url = BackendUrl::parse("x://h:1?a=OFF&b=Yes&c=maybe").unwrap();
        assert_eq!(url.boolean("a").unwrap(), Some(false));
        assert_eq!(url.boolean("b").unwrap(), Some(true));
        assert!(url.boolean("c").is_err());
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused_without_the_password() {
        let url = BackendUrl::parse("etcd://u:secret@h?tls=1&colour=red").unwrap();
        let err = url.finish().unwrap_err().to_string();
        assert!(err.contains("`colour`") && err.contains("`tls`"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = BackendUrl::parse("etcd://h?a=1&a=2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn malformed_hosts_are_errors_not_panics() {
        for bad in [
            "etcd://",
            "etcd://h:0",
            "etcd://h:99999",
            "etcd://[::1",
            "etcd://a,,b",
            "etcd://h:x",
        ] {
            let url = BackendUrl::parse(bad).unwrap();
            assert!(url.hosts().is_err(), "{bad}");
        }
        for bad in ["", "nourl", "1x://h", "x://h/%zz", "x://u:%@h"] {
            let parsed = BackendUrl::parse(bad);
            assert!(parsed.is_err() || parsed.unwrap().hosts().is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding_of_userinfo_and_path() {
        let url = BackendUrl::parse("postgres://a%20b:p%2Cw%40@db/my%20db").unwrap();
        let h = &url.hosts().unwrap()[0];
        assert_eq!(h.user.as_deref(), Some("a b"));
        assert_eq!(h.password(), Some("p,w@"));
        assert_eq!(url.path(), "/my db");
        assert_eq!(h.port, 5432);
    }
}
