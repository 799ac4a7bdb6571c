//! Redis Sentinel: a primary found by asking its sentinels, followed across
//! failovers.
//!
//! A `redis+sentinel://` URL names the sentinels and the name they monitor
//! the primary under. The backend is the one-instance backend (the same
//! scripts, queue and tokens); only where its one connection goes differs:
//! each time the instance connects — the first time, and after a lost
//! connection, a timeout or a `READONLY` reply (the server was demoted to a
//! replica) — it asks the sentinels which server is the primary now, checks
//! that server calls itself a primary (`ROLE`), and connects there. The
//! `redis` crate's Sentinel client does the asking (its `sentinel` feature):
//! it asks up to three sentinels at once and skips a primary a sentinel
//! flags as down or that does not say it is one.

use std::fmt;

use distlock_core::{BackendUrl, LockError, Result, TlsSettings};
use futures::future::BoxFuture;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError};

use crate::config::{Credentials, InstanceConfig, RedisConfig};
use crate::instance::tcp_settings;

/// The URL scheme of a primary found through its sentinels.
pub(crate) const SCHEME: &str = "redis+sentinel";

/// Where the sentinels are, which primary they monitor, and how to log in
/// to that primary.
///
/// ```
/// use distlock_redis::{Credentials, InstanceConfig, RedisConfig, SentinelConfig};
/// let sentinels = vec![
///     InstanceConfig::new("10.0.0.1", 26379),
///     InstanceConfig::new("10.0.0.2", 26379),
///     InstanceConfig::new("10.0.0.3", 26379),
/// ];
/// let config = RedisConfig::sentinel(
///     SentinelConfig::new(sentinels, "locks")
///         .with_db(2)
///         .with_credentials(Credentials::new(Some("app"), "app-pw")),
/// );
/// assert!(config.validate().is_ok());
/// assert!(!format!("{config:?}").contains("app-pw"));
/// ```
/// Its `Debug` output shows no password: [`Credentials`] redacts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelConfig {
    /// The sentinels' addresses, with the sentinels' own credentials (when
    /// they have `requirepass` or ACL users; every sentinel is given the
    /// first one's). Their databases and TLS settings are not used.
    pub sentinels: Vec<InstanceConfig>,
    /// The name the sentinels monitor the primary under (`sentinel monitor
    /// <name> …`).
    pub master: String,
    /// The primary's logical database.
    pub db: i64,
    /// The primary's credentials (its replicas, which may become the
    /// primary, should accept the same).
    pub credentials: Credentials,
    /// Test hook: `(named, reached)` pairs of `host:port` (see
    /// [`with_address_map`](Self::with_address_map)).
    remap: Vec<(String, String)>,
}

impl SentinelConfig {
    /// The primary monitored as `master` by `sentinels`, database 0, no
    /// credentials.
    pub fn new(sentinels: Vec<InstanceConfig>, master: impl Into<String>) -> Self {
        SentinelConfig {
            sentinels,
            master: master.into(),
            db: 0,
            credentials: Credentials::default(),
            remap: Vec::new(),
        }
    }

    /// Not for use: connects to `reached` wherever the sentinels name
    /// `named` (both `host:port`). It exists so that a test can put a fault
    /// proxy between the client and the servers the sentinels name.
    #[doc(hidden)]
    pub fn with_address_map(mut self, map: impl IntoIterator<Item = (String, String)>) -> Self {
        self.remap.extend(map);
        self
    }

    /// Sets the primary's logical database (URL: `db`).
    pub fn with_db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Sets the primary's credentials (URL: `user`, `password`).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// `<master> via <sentinel>,<sentinel>,…`: the name of the primary in
    /// errors and logs (never credentials).
    pub fn label(&self) -> String {
        let sentinels: Vec<String> = self.sentinels.iter().map(InstanceConfig::label).collect();
        format!("{} via {}", self.master, sentinels.join(","))
    }

    /// What the backend's one instance is recorded as in its configuration:
    /// the master's name (no address: the sentinels give it), its database
    /// and credentials.
    pub(crate) fn primary(&self) -> InstanceConfig {
        InstanceConfig::new(self.master.clone(), 0)
            .with_db(self.db)
            .with_credentials(self.credentials.clone())
    }

    /// Checks the sentinel settings of `config` (called by
    /// [`RedisConfig::validate`]).
    pub(crate) fn check(&self, config: &RedisConfig) -> Result<()> {
        if config.redlock {
            return Err(LockError::invalid_config(
                "Sentinel serves one primary: it cannot be combined with redlock",
            ));
        }
        if self.sentinels.is_empty() {
            return Err(LockError::invalid_config("no sentinel configured"));
        }
        if self.master.is_empty() {
            return Err(LockError::invalid_config(
                "the name the sentinels monitor the primary under is empty",
            ));
        }
        if self.db < 0 {
            return Err(LockError::invalid_config(
                "the database must not be negative",
            ));
        }
        let first = &self.sentinels[0].credentials;
        if self.sentinels.iter().any(|s| &s.credentials != first) {
            return Err(LockError::invalid_config(
                "every sentinel must be given the same credentials",
            ));
        }
        let tls = self.sentinels.iter().any(|s| s.tls.is_some())
            || config.instances.iter().any(|i| i.tls.is_some());
        if tls {
            return Err(LockError::invalid_config(
                "TLS is not supported with Sentinel yet: use redis:// or rediss:// to one instance",
            ));
        }
        Ok(())
    }
}

/// Reads a `redis+sentinel://[user:pw@]s1:p1,s2:p2,…/<master>[?params]`
/// URL whose scheme `url` has already been checked.
pub(crate) fn config_from_url(mut url: BackendUrl) -> Result<RedisConfig> {
    let master = url.path().trim_start_matches('/').to_string();
    if master.is_empty() || master.contains('/') {
        return Err(url.error(
            "the path must be the name the sentinels monitor the primary under (`/<master-name>`)",
        ));
    }
    if TlsSettings::from_url(&mut url, false)?.is_some() {
        return Err(url.error(
            "TLS is not supported with Sentinel yet: use redis:// or rediss:// to one instance",
        ));
    }
    let sentinels = url
        .hosts()?
        .iter()
        .map(|h| {
            InstanceConfig::new(h.name.clone(), h.port).with_credentials(Credentials::of_host(h))
        })
        .collect();
    let db = url.number::<i64>("db")?.unwrap_or(0);
    let credentials = primary_credentials(&mut url)?;
    let sentinel = SentinelConfig::new(sentinels, master)
        .with_db(db)
        .with_credentials(credentials);
    RedisConfig::sentinel(sentinel).finish_from_url(&mut url)
}

/// The primary's credentials from the `user` (or `username`) and `password`
/// parameters: a password alone is the `default` user's.
fn primary_credentials(url: &mut BackendUrl) -> Result<Credentials> {
    let user = url.string_any(&["user", "username"])?;
    let password = url.string("password");
    match (user, password) {
        (Some(_), None) => Err(url.error("`user` needs a `password`")),
        (username, password) => Ok(Credentials { username, password }),
    }
}

/// The sentinels of one primary, asked for its address whenever the
/// instance connects.
pub(crate) struct Primary {
    /// The `redis` crate's Sentinel client: it keeps one connection per
    /// sentinel, so its lookups run one at a time.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// Test hook: the address reached instead of a named one.
    remap: Vec<(String, (String, u16))>,
}

impl fmt::Debug for Primary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primary").finish_non_exhaustive()
    }
}

impl Primary {
    /// The lookup `config` describes (no connection is made yet).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` naming the master and its sentinels, never a
    /// password.
    pub(crate) fn new(config: &SentinelConfig) -> Result<Self> {
        let bad = |e: RedisError| {
            LockError::invalid_config(format!("bad Sentinel settings for {}: {e}", config.label()))
        };
        let addrs = config
            .sentinels
            .iter()
            .map(|s| ConnectionAddr::Tcp(s.host.clone(), s.port));
        let mut builder =
            SentinelClientBuilder::new(addrs, &config.master, SentinelServerType::Master)
                .map_err(bad)?
                .set_client_to_redis_db(config.db)
                .set_client_to_redis_tcp_settings(tcp_settings())
                .set_client_to_sentinel_tcp_settings(tcp_settings());
        if let Some(sentinel) = config.sentinels.first() {
            let login = &sentinel.credentials;
            if let Some(user) = &login.username {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &login.password {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        if let Some(user) = &config.credentials.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &config.credentials.password {
            builder = builder.set_client_to_redis_password(password);
        }
        Ok(Primary {
            sentinels: tokio::sync::Mutex::new(builder.build().map_err(bad)?),
            remap: remap(config)?,
        })
    }

    /// A client of the server the sentinels name as the primary now, after
    /// checking it says it is one (`ROLE`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the `redis` crate keeps a sentinel connection only once
    /// it is made and checked.
    pub(crate) async fn client(&self) -> std::result::Result<redis::Client, RedisError> {
        let client = self.named().await?;
        let info = client.get_connection_info();
        let named = info.addr().to_string();
        match self.remap.iter().find(|(from, _)| *from == named) {
            Some((_, (host, port))) => {
                let reached = ConnectionAddr::Tcp(host.clone(), *port)
                    .into_connection_info()?
                    .set_redis_settings(info.redis_settings().clone())
                    .set_tcp_settings(tcp_settings());
                redis::Client::open(reached)
            }
            None => Ok(client),
        }
    }
}

impl Primary {
    /// The primary as the sentinels name it. Boxed: the `redis` crate's
    /// lookup future is too deeply nested for the compiler to check it is
    /// `Send` inside every caller's future.
    fn named(&self) -> BoxFuture<'_, std::result::Result<redis::Client, RedisError>> {
        Box::pin(async move { self.sentinels.lock().await.async_get_client().await })
    }
}

/// The address map's targets, each split into host and port.
fn remap(config: &SentinelConfig) -> Result<Vec<(String, (String, u16))>> {
    config
        .remap
        .iter()
        .map(|(named, reached)| {
            let (host, port) = reached
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    LockError::invalid_config(format!("`{reached}` is not host:port"))
                })?;
            Ok((named.clone(), (host, port)))
        })
        .collect()
}
