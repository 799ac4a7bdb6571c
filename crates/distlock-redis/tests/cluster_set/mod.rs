//! The Redis Cluster scripts/services.sh runs (`redis-cluster` nodes 1..6:
//! three primaries and a replica of each): where it is, clients of it, and
//! what its nodes say.
#![allow(dead_code)]

use std::sync::Arc;

use distlock_conformance::ProxiedClient;
use distlock_core::DistributedLock;
use distlock_redis::{ClusterConfig, RedisBackend, RedisConfig};

pub const DEFAULT_NODES: &str = "127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003,127.0.0.1:17004,127.0.0.1:17005,127.0.0.1:17006";
pub const START_SERVERS: &str = "start the servers with scripts/services.sh up";
/// The `scripts/services.sh` service name of the cluster.
pub const SERVICE: &str = "redis-cluster";

/// `host:port` of each node, in node order (node 1 first).
pub fn nodes() -> Vec<String> {
    std::env::var("DISTLOCK_REDIS_CLUSTER_NODES")
        .unwrap_or_else(|_| DEFAULT_NODES.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

/// The `redis+cluster://` URL of the cluster (every node a seed), with
/// `params` appended.
pub fn url(params: &str) -> String {
    format!("redis+cluster://{}?{params}", nodes().join(","))
}

/// A client of the cluster.
pub async fn backend(prefix: &str) -> Arc<dyn DistributedLock> {
    backend_with(&format!("prefix={prefix}")).await
}

/// A client of the cluster with the URL parameters `params`.
pub async fn backend_with(params: &str) -> Arc<dyn DistributedLock> {
    crate::common::connected(&url(params), "the cluster").await
}

/// The seeds' part of a configuration by hand.
pub fn cluster_config() -> ClusterConfig {
    let seeds = crate::common::instance_configs(&nodes());
    ClusterConfig::new(seeds)
}

/// A client that reaches every node through its own fault proxy (the
/// cluster names the nodes by their own addresses; the client maps each to
/// its proxy).
pub async fn proxied(prefix: &str) -> ProxiedClient {
    let nodes = nodes();
    let proxies = crate::common::proxies_for(&nodes).await;
    let map = nodes.into_iter().zip(crate::common::proxy_addrs(&proxies));
    let config = RedisConfig::cluster(cluster_config().with_address_map(map)).with_prefix(prefix);
    let backend = RedisBackend::from_config(config).await.unwrap_or_else(|e| {
        panic!("cannot reach the cluster through proxies: {e}; {START_SERVERS}")
    });
    ProxiedClient {
        client: Arc::new(backend),
        proxies,
    }
}

/// Fails (never skips) when a node does not answer.
pub async fn require_up() {
    for addr in nodes() {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            panic!("redis-cluster node {addr} is not reachable; {START_SERVERS}");
        }
    }
}

/// A plain connection to the node at `addr`.
pub async fn connection(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap_or_else(|e| panic!("`{addr}`: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!("redis-cluster node {addr} is not reachable: {e}; {START_SERVERS}")
        })
}

/// One `field:value` line of `CLUSTER INFO`.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{field}:"))
            .map(str::to_string)
    })
}

/// The node number (1..=6) of the node at `addr`.
pub fn node_of(addr: &str) -> usize {
    nodes()
        .iter()
        .position(|a| a == addr)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{addr} is none of the cluster's nodes {:?}", nodes()))
}

/// The slot `key` hashes to, as a node computes it.
pub async fn slot_of(key: &str) -> u16 {
    for node in nodes() {
        let Ok(client) = redis::Client::open(format!("redis://{node}")) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        if let Ok(slot) = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async::<u16>(&mut conn)
            .await
        {
            return slot;
        }
    }
    panic!("no cluster node answers CLUSTER KEYSLOT; {START_SERVERS}");
}

/// `(primary, replicas)` of `slot`, as the first node that answers
/// `CLUSTER SHARDS`-like `CLUSTER SLOTS` says (`host:port` each).
pub async fn owners_of(slot: u16) -> (String, Vec<String>) {
    for node in nodes() {
        let Ok(client) = redis::Client::open(format!("redis://{node}")) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let Ok(ranges) = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
        else {
            continue;
        };
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let number = |v: &redis::Value| match v {
                redis::Value::Int(n) => Some(*n),
                _ => None,
            };
            let (Some(lo), Some(hi)) = (
                parts.first().and_then(number),
                parts.get(1).and_then(number),
            ) else {
                continue;
            };
            if !(lo..=hi).contains(&i64::from(slot)) {
                continue;
            }
            let addrs: Vec<String> = parts[2..]
                .iter()
                .filter_map(|n| match n {
                    redis::Value::Array(f) => match (f.first(), f.get(1)) {
                        (Some(redis::Value::BulkString(h)), Some(redis::Value::Int(p))) => {
                            Some(format!("{}:{p}", String::from_utf8_lossy(h)))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            if let Some((primary, replicas)) = addrs.split_first() {
                return (primary.clone(), replicas.to_vec());
            }
        }
    }
    panic!("no cluster node names the owners of slot {slot}; {START_SERVERS}");
}
