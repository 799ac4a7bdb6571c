//! Redis Cluster: the one-instance backend on a cluster, each call routed to
//! the primary of its lock's slot.
//!
//! A `redis+cluster://` URL lists seed nodes. Every key of one lock shares a
//! hash tag, so every script of one lock runs on the one primary that serves
//! the lock's slot, with the scripts, queue and tokens of the one-instance
//! backend. The `redis` crate's cluster client (its `cluster-async` feature)
//! learns the slot map from the seeds, routes each call by its first key,
//! follows `MOVED` (a slot that moved for good: a failover or a finished
//! resharding) and `ASK` (a slot being migrated), and refreshes its map when
//! told to.
//!
//! What differs from one instance:
//!
//! - **Release notices** go on *sharded* channels: the scripts `SPUBLISH`
//!   and waiters `SSUBSCRIBE` on the lock's shard, through a second cluster
//!   connection (RESP3, messages pushed), so a notice never crosses the
//!   cluster bus. Classic `PUBLISH` would reach a subscriber on another
//!   node only over the bus, which under load delayed notices by up to
//!   ~100 ms (measured).
//! - **Waiter liveness**: `PUBSUB NUMSUB` only counts a node's own
//!   subscribers, so the queue cannot see that a waiter's process died; a
//!   dead waiter is dropped when its queue entry dies (`waiter_timeout`).
//! - **Batched extension**: a script's keys must share a slot, so each lease
//!   is extended by its own call (the calls of one batch go out together).

use std::collections::HashMap;
use std::fmt;

use distlock_core::{BackendUrl, LockError, Result, TlsSettings};
use redis::cluster::{ClusterClient, ClusterClientBuilder, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ProtocolVersion, PushInfo, RedisError};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Credentials, InstanceConfig, RedisConfig};
use crate::instance::tcp_settings;

/// The URL scheme of a Redis Cluster.
pub(crate) const SCHEME: &str = "redis+cluster";

/// The seed nodes of a Redis Cluster and how to log in to its nodes.
///
/// ```
/// use distlock_redis::{ClusterConfig, Credentials, InstanceConfig, RedisConfig};
/// let seeds = vec![
///     InstanceConfig::new("10.0.0.1", 6379),
///     InstanceConfig::new("10.0.0.2", 6379),
/// ];
/// let config = RedisConfig::cluster(
///     ClusterConfig::new(seeds).with_credentials(Credentials::new(Some("app"), "app-pw")),
/// );
/// assert!(config.validate().is_ok());
/// assert!(!format!("{config:?}").contains("app-pw"));
/// ```
/// Its `Debug` output shows no password: [`Credentials`] redacts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Nodes to learn the cluster's slot map from (any of its nodes; the
    /// rest are found). Their databases, credentials and TLS settings are
    /// not used.
    pub seeds: Vec<InstanceConfig>,
    /// The credentials every node accepts.
    pub credentials: Credentials,
    /// Test hook: `(named, reached)` pairs of `host:port` (see
    /// [`with_address_map`](Self::with_address_map)).
    remap: Vec<(String, String)>,
}

impl ClusterConfig {
    /// The cluster that `seeds` belong to, without credentials.
    pub fn new(seeds: Vec<InstanceConfig>) -> Self {
        ClusterConfig {
            seeds,
            credentials: Credentials::default(),
            remap: Vec::new(),
        }
    }

    /// Sets the credentials every node is logged in to with.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Not for use: connects to `reached` wherever the cluster names
    /// `named` (both `host:port`), seeds included. It exists so that a test
    /// can put a fault proxy between the client and every node.
    #[doc(hidden)]
    pub fn with_address_map(mut self, map: impl IntoIterator<Item = (String, String)>) -> Self {
        self.remap.extend(map);
        self
    }

    /// `cluster <seed>,<seed>,…`: the cluster's name in errors and logs
    /// (never credentials).
    pub fn label(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(InstanceConfig::label).collect();
        format!("cluster {}", seeds.join(","))
    }

    /// What the backend's one instance is recorded as in its configuration:
    /// the cluster (no address: the slot map gives one per lock) and its
    /// credentials.
    pub(crate) fn entry(&self) -> InstanceConfig {
        InstanceConfig::new("cluster", 0).with_credentials(self.credentials.clone())
    }

    /// Checks the cluster settings of `config` (called by
    /// [`RedisConfig::validate`]).
    pub(crate) fn check(&self, config: &RedisConfig) -> Result<()> {
        if config.redlock {
            return Err(LockError::invalid_config(
                "a Redis Cluster is one lock service: it cannot be combined with redlock",
            ));
        }
        if config.sentinel.is_some() {
            return Err(LockError::invalid_config(
                "a configuration is either a Redis Cluster or a Sentinel set, not both",
            ));
        }
        if self.seeds.is_empty() {
            return Err(LockError::invalid_config("no cluster seed node configured"));
        }
        let tls = self.seeds.iter().any(|s| s.tls.is_some())
            || config.instances.iter().any(|i| i.tls.is_some());
        if tls {
            return Err(LockError::invalid_config(
                "TLS is not supported with Redis Cluster yet: use redis:// or rediss:// to one instance",
            ));
        }
        if config.instances.iter().any(|i| i.db != 0) {
            return Err(LockError::invalid_config(
                "a Redis Cluster has only database 0",
            ));
        }
        Ok(())
    }
}

/// Reads a `redis+cluster://[user:pw@]h1:p1,h2:p2,…[/][?params]` URL whose
/// scheme `url` has already been checked.
pub(crate) fn config_from_url(mut url: BackendUrl) -> Result<RedisConfig> {
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() && path != "0" {
        return Err(url.error("a Redis Cluster has only database 0: leave the path empty"));
    }
    if TlsSettings::from_url(&mut url, false)?.is_some() {
        return Err(url.error(
            "TLS is not supported with Redis Cluster yet: use redis:// or rediss:// to one instance",
        ));
    }
    let hosts = url.hosts()?;
    let logins: Vec<Credentials> = hosts.iter().map(Credentials::of_host).collect();
    let credentials = logins
        .iter()
        .find(|c| **c != Credentials::default())
        .cloned()
        .unwrap_or_default();
    if logins
        .iter()
        .any(|c| *c != Credentials::default() && *c != credentials)
    {
        return Err(url.error(
            "every node of a Redis Cluster takes the same credentials: give them once, before the first host",
        ));
    }
    let seeds = hosts
        .iter()
        .map(|h| InstanceConfig::new(h.name.clone(), h.port))
        .collect();
    let cluster = ClusterConfig::new(seeds).with_credentials(credentials);
    RedisConfig::cluster(cluster).finish_from_url(&mut url)
}

/// The cluster as the instance reaches it: the `redis` crate's cluster
/// client for the scripts, and what it takes to make the subscribers'
/// connection (a client of its own, since it pushes messages).
pub(crate) struct Nodes {
    client: ClusterClient,
    seeds: Vec<ConnectionAddr>,
    credentials: Credentials,
    remap: HashMap<NodeAddress, NodeAddress>,
}

impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nodes")
            .field("seeds", &self.seeds)
            .finish_non_exhaustive()
    }
}

impl Nodes {
    /// The clients `config` describes (no connection is made yet).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` naming the cluster's seeds, never a password.
    pub(crate) fn new(config: &ClusterConfig) -> Result<Self> {
        let bad = |e: RedisError| {
            LockError::invalid_config(format!("bad cluster settings for {}: {e}", config.label()))
        };
        let seeds: Vec<ConnectionAddr> = config
            .seeds
            .iter()
            .map(|s| ConnectionAddr::Tcp(s.host.clone(), s.port))
            .collect();
        let remap = remap(config)?;
        let client = builder(&seeds, &config.credentials, &remap)
            .build()
            .map_err(bad)?;
        Ok(Nodes {
            client,
            seeds,
            credentials: config.credentials.clone(),
            remap,
        })
    }

    /// A new connection to the cluster: the slot map is asked of the seeds
    /// (the first that answers), and each node is connected on first use.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a connect that was dropped.
    pub(crate) async fn connect(&self) -> std::result::Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    /// A new connection for sharded subscriptions (RESP3): each
    /// `SSUBSCRIBE` goes to the shard of its channel, and the messages, and
    /// the notice of a lost node connection, are pushed to `pushes`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a connect that was dropped.
    pub(crate) async fn subscriber(
        &self,
        pushes: UnboundedSender<PushInfo>,
    ) -> std::result::Result<ClusterConnection, RedisError> {
        builder(&self.seeds, &self.credentials, &self.remap)
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes)
            .build()?
            .get_async_connection()
            .await
    }
}

/// A cluster client's settings: the seeds, credentials, address map and
/// `TCP_NODELAY`.
fn builder(
    seeds: &[ConnectionAddr],
    login: &Credentials,
    remap: &HashMap<NodeAddress, NodeAddress>,
) -> ClusterClientBuilder {
    let mut builder = ClusterClient::builder(seeds.to_vec()).tcp_settings(tcp_settings());
    if let Some(user) = &login.username {
        builder = builder.username(user);
    }
    if let Some(password) = &login.password {
        builder = builder.password(password);
    }
    if !remap.is_empty() {
        builder = builder.node_address_map(remap.clone());
    }
    builder
}

/// The address map, as the cluster client takes it.
fn remap(config: &ClusterConfig) -> Result<HashMap<NodeAddress, NodeAddress>> {
    let parse = |s: &str| {
        s.parse::<NodeAddress>()
            .map_err(|_| LockError::invalid_config(format!("`{s}` is not host:port")))
    };
    config
        .remap
        .iter()
        .map(|(named, reached)| Ok((parse(named)?, parse(reached)?)))
        .collect()
}
