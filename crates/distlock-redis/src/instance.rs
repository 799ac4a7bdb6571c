//! One Redis server: a lazily (re)connecting multiplexed connection and the
//! scripts run on it, each call bounded by a timeout. The server is fixed,
//! or (Sentinel) the primary its sentinels name at each connect, or (Redis
//! Cluster) the primary of each call's slot, through the `redis` crate's
//! cluster connection.
//!
//! The connection is made on first use and dropped after an I/O error or a
//! timeout, so the next call reconnects: a server that is down costs a refused
//! connect (or at most the timeout), never a hang, and a restarted server is
//! picked up by the next call. With Sentinel, a `READONLY` reply (the server
//! was demoted to a replica: nothing was written) also drops the connection,
//! and the call is made once more on the primary the sentinels name now.
//!
//! The `redis` crate's `aio::ConnectionManager` does not replace this: it
//! reconnects only when the connection reports itself dropped (not after a
//! timeout, so a connection into a black hole, as in a network partition,
//! stays in use), retries its reconnects with back-off sleeps outside our
//! per-call bound, and its eager constructor fails for an instance that is
//! down (which Redlock tolerates at connect).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::sync::lock;
use distlock_core::tls::ensure_crypto_provider;
use distlock_core::{LockError, TlsSettings};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    FromRedisValue, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    ScriptInvocation, TlsCertificates, Value,
};

use crate::cluster::{ClusterConfig, Nodes};
use crate::config::InstanceConfig;
use crate::sentinel::{Primary, SentinelConfig};

/// Why a call to one instance failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer within the timeout.
    Timeout,
    /// The server refused our credentials, or one side refused the other's
    /// certificate: asking again will not help.
    Auth(RedisError),
    /// Anything else the client or server reported.
    Redis(RedisError),
    /// The write was made, but fewer replicas than asked acknowledged it
    /// within the replica timeout (`WAIT`).
    Unreplicated {
        /// How many replicas acknowledged it.
        acked: i64,
        /// How many were asked for.
        wanted: usize,
        /// How long `WAIT` waited.
        within: Duration,
    },
}

/// How many replicas must acknowledge a write, and how long `WAIT` waits
/// for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acks {
    pub(crate) replicas: usize,
    pub(crate) timeout: Duration,
}

impl CallError {
    fn from_redis(err: RedisError) -> Self {
        let auth = err.kind() == ErrorKind::AuthenticationFailed
            || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
            || is_tls_refusal(&err);
        if auth {
            CallError::Auth(err)
        } else {
            CallError::Redis(err)
        }
    }

    /// True for failures that say nothing about the lock (the server could
    /// not be asked, or is no primary now), as opposed to a server-side
    /// script error.
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            CallError::Timeout => true,
            CallError::Auth(_) | CallError::Unreplicated { .. } => false,
            CallError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                    || self.is_demoted()
                    || matches!(
                        e.kind(),
                        ErrorKind::MasterNameNotFoundBySentinel
                            | ErrorKind::NoValidReplicasFoundBySentinel
                    )
            }
        }
    }

    /// True when the server refused a write because it is a replica
    /// (`READONLY`): it was demoted, and the write was not made.
    pub(crate) fn is_demoted(&self) -> bool {
        matches!(self, CallError::Redis(e) if e.code() == Some("READONLY"))
    }

    /// A short description without secrets (Redis error texts never contain
    /// the credentials).
    pub(crate) fn describe(&self) -> String {
        match self {
            CallError::Timeout => "timed out".to_string(),
            CallError::Auth(e) if is_tls_refusal(e) => {
                format!("TLS refused (check `ca`, `cert` and `key`): {e}")
            }
            CallError::Auth(e) => {
                format!("authentication failed (check the password and ACL user): {e}")
            }
            CallError::Redis(e) => e.to_string(),
            CallError::Unreplicated {
                acked,
                wanted,
                within,
            } => format!(
                "only {acked} of the {wanted} replicas asked for acknowledged the write within {} ms (`WAIT`)",
                within.as_millis()
            ),
        }
    }

    /// True when the service cannot serve the request now (unreachable, or
    /// too few replicas), as opposed to an error reported by it.
    pub(crate) fn is_unavailable(&self) -> bool {
        self.is_unreachable() || matches!(self, CallError::Unreplicated { .. })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for CallError {}

/// True when TLS failed: a certificate was refused (by us or by the
/// server) or the handshake broke, as rustls reports it (inside the I/O
/// error redis keeps behind an `Arc`).
fn is_tls_refusal(err: &RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let Some(cause) = std::error::Error::source(err) else {
        return false;
    };
    let cause: &(dyn std::error::Error + 'static) = match cause.downcast_ref::<Shared>() {
        Some(shared) => &**shared,
        None => cause,
    };
    cause
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// The client of one instance: its address, database and credentials, over
/// TLS with the configured CA and client certificate when TLS is on.
///
/// # Errors
///
/// `InvalidConfig` naming the instance (and the file, for TLS files that
/// cannot be read), never the password or key.
fn client(config: &InstanceConfig) -> distlock_core::Result<redis::Client> {
    let bad = |what: &str, e: RedisError| {
        LockError::invalid_config(format!("{what} for redis {}: {e}", config.label()))
    };
    let info = connection_info(config).map_err(|e| bad("bad address", e))?;
    let Some(tls) = &config.tls else {
        return redis::Client::open(info).map_err(|e| bad("bad configuration", e));
    };
    ensure_crypto_provider();
    let certificates = certificates(tls)?;
    redis::Client::build_with_tls(info, certificates).map_err(|e| bad("bad TLS settings", e))
}

/// The TCP settings of every connection the backend makes: `TCP_NODELAY`,
/// so a request written while another is in flight on a multiplexed
/// connection goes out at once (without it, Nagle's algorithm holds it
/// back until the server acknowledges the earlier one, up to the server's
/// delayed-ACK time, tens of milliseconds).
pub(crate) fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// Address (TLS or not), database and credentials.
fn connection_info(config: &InstanceConfig) -> redis::RedisResult<ConnectionInfo> {
    let addr = match &config.tls {
        Some(tls) => ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: tls.accepts_invalid_certs(),
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(config.host.clone(), config.port),
    };
    let mut redis_info = RedisConnectionInfo::default().set_db(config.db);
    if let Some(user) = &config.credentials.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &config.credentials.password {
        redis_info = redis_info.set_password(password);
    }
    Ok(addr
        .into_connection_info()?
        .set_redis_settings(redis_info)
        .set_tcp_settings(tcp_settings()))
}

/// The CA and client certificate files, read and checked (the system roots
/// where no CA is given).
fn certificates(tls: &TlsSettings) -> distlock_core::Result<TlsCertificates> {
    let files = tls.load()?;
    Ok(TlsCertificates {
        client_tls: files.client_pem().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.as_bytes().to_vec(),
            client_key: key.as_bytes().to_vec(),
        }),
        root_cert: files.ca_pem().map(|ca| ca.as_bytes().to_vec()),
    })
}

/// What a client built elsewhere says of its server, for errors, logs and
/// `Debug`: its label (`host:port`, or the socket's path) and the instance
/// settings with its address and database (its credentials and TLS stay
/// inside the client).
pub(crate) fn described(client: &redis::Client) -> (String, InstanceConfig) {
    let info = client.get_connection_info();
    let label = info.addr().to_string();
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            (host.clone(), *port)
        }
        _ => (label.clone(), 0),
    };
    let config = InstanceConfig::new(host, port).with_db(info.redis_settings().db());
    (label, config)
}

/// Which server an instance reaches.
enum Origin {
    /// Always this one.
    Fixed(redis::Client),
    /// The primary the sentinels name at each connect.
    Sentinel(Primary),
    /// The primary of each call's slot in a Redis Cluster (boxed: the
    /// cluster client's settings are large).
    Cluster(Box<Nodes>),
}

/// A connection: to one server, or to a cluster (routing each call by its
/// first key to the primary of that key's slot).
#[derive(Clone)]
enum Conn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// `WAIT` for `replicas` replicas, `millis` at most, on the connection
    /// the writes to `key` went on (in a cluster: the primary of its slot).
    async fn wait(&mut self, key: &str, replicas: usize, millis: u64) -> redis::RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(millis);
        match self {
            Conn::Server(c) => wait.query_async(c).await,
            Conn::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let answer = c.route_command(wait, to).await?;
                Ok(i64::from_redis_value(answer)?)
            }
        }
    }
}

/// A connection slot for one server.
pub(crate) struct Instance {
    pub(crate) label: String,
    origin: Origin,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("addr", &self.label)
            .finish()
    }
}

impl Instance {
    /// The instance `config` describes (no connection is made yet).
    pub(crate) fn new(config: &InstanceConfig) -> distlock_core::Result<Arc<Self>> {
        Ok(Self::with_client(config.label(), client(config)?))
    }

    /// The instance a client built elsewhere reaches (the application's:
    /// its address, database, credentials and TLS), named `label` in errors
    /// and logs.
    pub(crate) fn with_client(label: String, client: redis::Client) -> Arc<Self> {
        Self::with_origin(label, Origin::Fixed(client))
    }

    /// The primary `config`'s sentinels name, asked again at every connect
    /// (no connection is made yet).
    pub(crate) fn following(config: &SentinelConfig) -> distlock_core::Result<Arc<Self>> {
        Ok(Self::with_origin(
            config.label(),
            Origin::Sentinel(Primary::new(config)?),
        ))
    }

    /// The cluster `config`'s seeds belong to, each call routed to the
    /// primary of its slot (no connection is made yet).
    pub(crate) fn cluster(config: &ClusterConfig) -> distlock_core::Result<Arc<Self>> {
        Ok(Self::with_origin(
            config.label(),
            Origin::Cluster(Box::new(Nodes::new(config)?)),
        ))
    }

    fn with_origin(label: String, origin: Origin) -> Arc<Self> {
        Arc::new(Instance {
            label,
            origin,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// A client of the server: the fixed one, or the primary the sentinels
    /// name now (one lookup: a round trip to the sentinels, and a `ROLE`
    /// on the server they name). A cluster has no one server (an error;
    /// see [`nodes`](Self::nodes)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a lookup that was dropped.
    pub(crate) async fn client(&self) -> Result<redis::Client, CallError> {
        match &self.origin {
            Origin::Fixed(client) => Ok(client.clone()),
            Origin::Sentinel(primary) => primary.client().await.map_err(CallError::from_redis),
            Origin::Cluster(_) => Err(CallError::Redis(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no one server",
            )))),
        }
    }

    /// The cluster this instance stands for, if it is one.
    pub(crate) fn nodes(&self) -> Option<&Nodes> {
        match &self.origin {
            Origin::Cluster(nodes) => Some(nodes),
            Origin::Fixed(_) | Origin::Sentinel(_) => None,
        }
    }

    /// True when the server is looked up through sentinels.
    fn follows_sentinels(&self) -> bool {
        matches!(self.origin, Origin::Sentinel(_))
    }

    async fn connection(&self) -> Result<Conn, CallError> {
        if let Some(conn) = lock(&self.conn).clone() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = lock(&self.conn).clone() {
            return Ok(conn);
        }
        let conn = match &self.origin {
            Origin::Cluster(nodes) => {
                Conn::Cluster(nodes.connect().await.map_err(CallError::from_redis)?)
            }
            Origin::Fixed(_) | Origin::Sentinel(_) => {
                // Our callers bound the whole call (connect included) by
                // their timeout.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(None)
                    .set_response_timeout(None);
                let conn = self
                    .client()
                    .await?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(CallError::from_redis)?;
                Conn::Server(conn)
            }
        };
        *lock(&self.conn) = Some(conn.clone());
        Ok(conn)
    }

    fn forget_connection(&self) {
        lock(&self.conn).take();
    }

    /// Runs a script (EVALSHA, falling back to EVAL when the server does not
    /// know it yet): one round trip, two the first time after a restart.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.bounded(timeout, move || async move {
            let mut conn = self.connection().await?;
            invocation
                .invoke_async::<T>(&mut conn)
                .await
                .map_err(CallError::from_redis)
        })
        .await
    }

    /// Runs a script and then, with `acks` and when `wrote(&reply)` says
    /// the script wrote what must survive (a grant, an extension), `WAIT`s
    /// on the same connection (in a cluster: to the primary of `key`'s
    /// slot, the script's first key) until `acks.replicas` replicas
    /// acknowledged every write sent on it so far, at most `acks.timeout`:
    /// one more round trip. `Unreplicated` when fewer did (the write stands on the primary:
    /// the caller undoes it). Without `acks`, [`invoke`](Self::invoke).
    pub(crate) async fn invoke_acked<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        key: &str,
        acks: Option<Acks>,
        wrote: impl Fn(&T) -> bool,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let Some(acks) = acks else {
            return self.invoke(invocation, timeout).await;
        };
        let wrote = &wrote;
        self.bounded(timeout + acks.timeout, move || async move {
            let mut conn = self.connection().await?;
            let reply: T = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(CallError::from_redis)?;
            if !wrote(&reply) {
                return Ok(reply);
            }
            let millis = u64::try_from(acks.timeout.as_millis()).unwrap_or(u64::MAX);
            let acked = conn
                .wait(key, acks.replicas, millis.max(1))
                .await
                .map_err(CallError::from_redis)?;
            if usize::try_from(acked).unwrap_or(0) < acks.replicas {
                return Err(CallError::Unreplicated {
                    acked,
                    wanted: acks.replicas,
                    within: acks.timeout,
                });
            }
            Ok(reply)
        })
        .await
    }

    /// Runs a plain command (used by `connect` to check credentials).
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.bounded(timeout, move || async move {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(CallError::from_redis)
        })
        .await
    }

    /// Bounds `call` (connect included) by `timeout`; forgets the connection
    /// after a failure that says it is broken, so the next call reconnects.
    /// With Sentinel, a call refused with `READONLY` (nothing was written)
    /// is made once more, within the same bound, on the primary the
    /// sentinels name now.
    async fn bounded<T, F>(&self, timeout: Duration, call: impl Fn() -> F) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, CallError>>,
    {
        let attempts = async {
            match call().await {
                Err(e) if e.is_demoted() && self.follows_sentinels() => {
                    tracing::debug!(instance = %self.label, "distlock.redis.primary_demoted");
                    self.forget_connection();
                    call().await
                }
                other => other,
            }
        };
        let result = match tokio::time::timeout(timeout, attempts).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        };
        if let Err(e) = &result {
            // A refused certificate may surface after the handshake, on a
            // connection that is now closed.
            let tls_refused = matches!(e, CallError::Auth(r) if is_tls_refusal(r));
            if e.is_unreachable() || tls_refused {
                self.forget_connection();
            }
        }
        result
    }
}
