//! The Redis Cluster scripts/services.sh runs (`redis-cluster` nodes 1..6)
//! is up, and every key one lock name uses hashes to one cluster slot (its
//! keys share a hash tag), for awkward names too: the keys are made by
//! locking on a standalone instance and their slots asked of the cluster.

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, LockName, Mode, OwnerToken};

const DEFAULT_CLUSTER_NODES: &str =
    "127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003,127.0.0.1:17004,127.0.0.1:17005,127.0.0.1:17006";

fn cluster_nodes() -> Vec<String> {
    std::env::var("DISTLOCK_REDIS_CLUSTER_NODES")
        .unwrap_or_else(|_| DEFAULT_CLUSTER_NODES.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

async fn connection(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap_or_else(|e| panic!("`{addr}`: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "redis-cluster node {addr} is not reachable: {e}; {}",
                common::START_SERVERS
            )
        })
}

/// One `field:value` line of `CLUSTER INFO`.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{field}:"))
            .map(str::to_string)
    })
}

#[tokio::test]
async fn the_cluster_is_up_with_three_primaries_and_three_replicas() {
    let nodes = cluster_nodes();
    assert_eq!(
        nodes.len(),
        6,
        "DISTLOCK_REDIS_CLUSTER_NODES must list 6 nodes"
    );
    for node in &nodes {
        let mut conn = connection(node).await;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CLUSTER INFO on {node}: {e}"));
        assert_eq!(
            info_field(&info, "cluster_state").as_deref(),
            Some("ok"),
            "{node}: {info}"
        );
        assert_eq!(
            info_field(&info, "cluster_known_nodes").as_deref(),
            Some("6"),
            "{node}"
        );
        assert_eq!(
            info_field(&info, "cluster_size").as_deref(),
            Some("3"),
            "{node}"
        );
        assert_eq!(
            info_field(&info, "cluster_slots_assigned").as_deref(),
            Some("16384"),
            "{node}"
        );
    }
}

/// The keys under `prefix` on the standalone instance behind `conn`.
async fn keys_under(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[tokio::test]
async fn every_key_of_one_lock_hashes_to_one_cluster_slot() {
    let standalone = common::instance_addrs()[0].clone();
    common::require_all_up(std::slice::from_ref(&standalone)).await;
    let mut on_cluster = connection(&cluster_nodes()[0]).await;
    let mut on_standalone = connection(&standalone).await;
    let ttl = Duration::from_secs(30);
    for awkward in ["plain", "a{b}c", "}{", "{", "%7B", "x}"] {
        let tag = OwnerToken::random().to_hex();
        let prefix = format!("cluster-slots-{tag}:");
        let client = common::single(&prefix).await;
        let name = LockName::new(format!("slots/{awkward}")).unwrap();
        // The writer's keys (its hold, the fencing counter), then a reader's
        // (the holders set), held while the keys are read.
        let writer = client
            .acquire(&name, &AcquireOptions::try_once(ttl))
            .await
            .unwrap()
            .expect("free lock");
        client.release(&writer).await.unwrap();
        let reader = client
            .acquire_as(&name, Mode::Shared, &AcquireOptions::try_once(ttl))
            .await
            .unwrap()
            .expect("no writer");
        let keys = keys_under(&mut on_standalone, &prefix).await;
        assert!(keys.len() >= 2, "{awkward}: only {keys:?}");
        let mut slots = Vec::new();
        for key in &keys {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut on_cluster)
                .await
                .unwrap();
            slots.push(slot);
        }
        slots.dedup();
        assert_eq!(
            slots.len(),
            1,
            "{awkward}: keys {keys:?} hash to slots {slots:?}"
        );
        client.release(&reader).await.unwrap();
    }
}
