//! The Sentinel set scripts/services.sh runs (`redis-sentinel` nodes 1..3
//! are the data nodes, 4..6 the sentinels): where it is, clients of its
//! primary, and what the sentinels say.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::ProxiedClient;
use distlock_core::DistributedLock;
use distlock_redis::{RedisBackend, RedisConfig, SentinelConfig};
use futures::StreamExt;

pub const DEFAULT_SENTINELS: &str = "127.0.0.1:26391,127.0.0.1:26392,127.0.0.1:26393";
pub const DEFAULT_MASTER: &str = "distlock";
pub const DEFAULT_DATA: &str = "127.0.0.1:16391,127.0.0.1:16392,127.0.0.1:16393";
pub const START_SERVERS: &str = "start the servers with scripts/services.sh up";

/// The `scripts/services.sh` service name of the Sentinel set.
pub const SERVICE: &str = "redis-sentinel";

fn list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

/// `host:port` of each sentinel.
pub fn sentinels() -> Vec<String> {
    list("DISTLOCK_REDIS_SENTINELS", DEFAULT_SENTINELS)
}

/// The name the sentinels monitor the primary under.
pub fn master() -> String {
    std::env::var("DISTLOCK_REDIS_SENTINEL_MASTER").unwrap_or_else(|_| DEFAULT_MASTER.to_string())
}

/// `host:port` of each data node, in node order (node 1 first).
pub fn data_nodes() -> Vec<String> {
    list("DISTLOCK_REDIS_SENTINEL_DATA", DEFAULT_DATA)
}

/// The `redis+sentinel://` URL of the primary, with `params` appended.
pub fn url(params: &str) -> String {
    format!(
        "redis+sentinel://{}/{}?{params}",
        sentinels().join(","),
        master()
    )
}

/// A client of the primary, found through the sentinels.
pub async fn backend(prefix: &str) -> Arc<dyn DistributedLock> {
    crate::common::connected(&url(&format!("prefix={prefix}")), "the primary of").await
}

/// The sentinels' part of a configuration by hand.
pub fn sentinel_config() -> SentinelConfig {
    let sentinels = crate::common::instance_configs(&sentinels());
    SentinelConfig::new(sentinels, master())
}

/// A client that reaches every data node through its own fault proxy (the
/// sentinels are asked directly; the servers they name are reached through
/// the proxies).
pub async fn proxied(prefix: &str) -> ProxiedClient {
    let nodes = data_nodes();
    let proxies = crate::common::proxies_for(&nodes).await;
    let map = nodes.into_iter().zip(crate::common::proxy_addrs(&proxies));
    let config = RedisConfig::sentinel(sentinel_config().with_address_map(map)).with_prefix(prefix);
    let backend = RedisBackend::from_config(config).await.unwrap_or_else(|e| {
        panic!("cannot reach the primary through proxies: {e}; {START_SERVERS}")
    });
    ProxiedClient {
        client: Arc::new(backend),
        proxies,
    }
}

/// Fails (never skips) when a sentinel or a data node does not answer.
pub async fn require_up() {
    for addr in sentinels().iter().chain(data_nodes().iter()) {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            panic!("redis-sentinel node {addr} is not reachable; {START_SERVERS}");
        }
    }
}

/// A plain connection to `addr` (a sentinel or a data node).
pub async fn connection(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap_or_else(|e| panic!("`{addr}`: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot reach {addr}: {e}; {START_SERVERS}"))
}

/// The primary's `host:port` as the first sentinel that answers names it.
pub async fn primary() -> String {
    for sentinel in sentinels() {
        let Ok(client) = redis::Client::open(format!("redis://{sentinel}")) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let answer: redis::RedisResult<Option<(String, String)>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master())
            .query_async(&mut conn)
            .await;
        if let Ok(Some((host, port))) = answer {
            return format!("{host}:{port}");
        }
    }
    panic!(
        "no sentinel names a primary for `{}`; {START_SERVERS}",
        master()
    );
}

/// The node number (1..=3) of the data node at `addr`.
pub fn node_of(addr: &str) -> usize {
    data_nodes()
        .iter()
        .position(|a| a == addr)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{addr} is none of the data nodes {:?}", data_nodes()))
}

/// A subscription to the first sentinel's `+switch-master` events (one per
/// failover: `<master> <old ip> <old port> <new ip> <new port>`).
pub struct Switches {
    /// Kept so the subscription lives as long as the stream.
    _sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
}

impl Switches {
    /// Subscribes on the first sentinel (before the failover is caused).
    pub async fn watch() -> Self {
        let sentinel = &sentinels()[0];
        let mut pubsub = redis::Client::open(format!("redis://{sentinel}"))
            .unwrap_or_else(|e| panic!("`{sentinel}`: {e}"))
            .get_async_pubsub()
            .await
            .unwrap_or_else(|e| panic!("cannot reach sentinel {sentinel}: {e}; {START_SERVERS}"));
        pubsub
            .subscribe("+switch-master")
            .await
            .unwrap_or_else(|e| panic!("SUBSCRIBE on {sentinel}: {e}"));
        let (sink, stream) = pubsub.split();
        Switches {
            _sink: sink,
            stream,
        }
    }

    /// The new primary's `host:port` of the next switch of our master,
    /// within `within`.
    pub async fn next(&mut self, within: Duration) -> String {
        let wanted = master();
        let wait = async {
            while let Some(msg) = self.stream.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                let parts: Vec<&str> = payload.split_whitespace().collect();
                if let [name, _, _, ip, port] = parts[..] {
                    if name == wanted {
                        return format!("{ip}:{port}");
                    }
                }
            }
            panic!("the sentinel's pub/sub connection closed");
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("no failover of `{wanted}` within {within:?}"))
    }
}
