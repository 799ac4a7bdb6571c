//! Redis Cluster (`redis+cluster://`): the conformance suite on the
//! Redis Cluster scripts/services.sh runs (`redis-cluster` nodes 1..6), the
//! URL form, and the cluster itself: up, with three primaries and three
//! replicas, and every key one lock name uses hashing to one cluster slot
//! (its keys share a hash tag), for awkward names too: the keys are made by
//! locking on a standalone instance and their slots asked of the cluster.
//! Failovers, restarts and resharding are in `faults_cluster.rs`, a binary
//! of its own: they disturb the nodes these tests use, and `cargo test`
//! runs one test binary at a time.

mod cluster_set;
mod common;

use std::sync::Arc;
use std::time::Duration;

use cluster_set::{connection, info_field};
use distlock_conformance::{Harness, ProxiedClient};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, Mode, OwnerToken};
use distlock_redis::RedisConfig;

const SUITE_PREFIX: &str = "conformance-cluster:";

struct ClusterHarness;

#[distlock_core::async_trait]
impl Harness for ClusterHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        cluster_set::backend(SUITE_PREFIX).await
    }

    /// A client whose connections to every node pass through one fault
    /// proxy per node.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(cluster_set::proxied(SUITE_PREFIX).await)
    }
}

async fn cluster_harness() -> ClusterHarness {
    cluster_set::require_up().await;
    ClusterHarness
}

distlock_conformance::suite!(redis_cluster, cluster_harness());

fn cluster_nodes() -> Vec<String> {
    cluster_set::nodes()
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

fn name(case: &str) -> LockName {
    LockName::new(format!("cluster/{case}/{}", OwnerToken::random().to_hex())).unwrap()
}

#[test]
fn the_url_names_the_seeds_and_the_nodes_login() {
    let config = RedisConfig::from_url(
        "redis+cluster://app:app-pw@n1:7000,n2:7001,[::1]:7002?fair=false&prefix=p:&replicas=1",
    )
    .unwrap();
    let cluster = config.cluster.as_ref().expect("a cluster configuration");
    let seeds: Vec<String> = cluster.seeds.iter().map(|s| s.label()).collect();
    assert_eq!(seeds, ["n1:7000", "n2:7001", "[::1]:7002"]);
    assert_eq!(cluster.credentials.username.as_deref(), Some("app"));
    assert_eq!(cluster.credentials.password.as_deref(), Some("app-pw"));
    assert!(!config.fair && !config.redlock && config.sentinel.is_none());
    assert_eq!((config.prefix.as_str(), config.replicas), ("p:", 1));
    let shown = format!("{config:?}");
    assert!(!shown.contains("app-pw"), "{shown}");
    // A database path of 0 is accepted; fair mode is the default.
    let plain = RedisConfig::from_url("redis+cluster://n1:7000/0").unwrap();
    assert!(plain.fair);
}

#[test]
fn bad_cluster_urls_are_refused_clearly() {
    let refused = |url: &str, saying: &str| match RedisConfig::from_url(url) {
        Err(LockError::InvalidConfig { reason }) => {
            assert!(reason.contains(saying), "{url}: {reason}");
            assert!(!reason.contains("secret-pw"), "{url}: {reason}");
        }
        other => panic!("{url}: expected InvalidConfig, got {other:?}"),
    };
    refused("redis+cluster://:secret-pw@n1:7000/2", "database 0");
    refused("redis+cluster://n1:7000?tls=true", "TLS");
    refused(
        "redis+cluster://:secret-pw@n1:7000,:other@n2:7001",
        "same credentials",
    );
    refused("redis+cluster://n1:7000?color=red", "color");
    refused(
        "redis+cluster://n1:7000?min_instance_timeout=x",
        "min_instance_timeout",
    );
}

#[tokio::test]
async fn a_cluster_that_cannot_be_reached_is_unavailable_not_a_hang() {
    // Nothing listens on port 1.
    let url = "redis+cluster://127.0.0.1:1?timeout=500ms";
    match distlock_redis::RedisBackend::connect(url).await {
        Err(LockError::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn each_lock_lives_on_the_primary_of_its_slot() {
    cluster_set::require_up().await;
    let prefix = "cluster-placement:";
    let client = cluster_set::backend(prefix).await;
    let ttl = Duration::from_secs(10);
    let mut primaries = std::collections::BTreeSet::new();
    for i in 0..12 {
        let lock = name(&format!("placement-{i}"));
        let lease = client
            .acquire(&lock, &AcquireOptions::try_once(ttl))
            .await
            .unwrap()
            .expect("free lock");
        let key = format!("{{{prefix}{lock}}}:lock");
        let (primary, _) = cluster_set::owners_of(cluster_set::slot_of(&key).await).await;
        let mut on_primary = connection(&primary).await;
        let owner: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut on_primary)
            .await
            .unwrap();
        assert_eq!(
            owner.as_deref(),
            Some(lease.owner().to_hex().as_str()),
            "the hold of `{lock}` is not on its slot's primary {primary}"
        );
        primaries.insert(primary);
        client.release(&lease).await.unwrap();
    }
    assert!(
        primaries.len() > 1,
        "12 names all landed on one primary ({primaries:?}): the test cannot tell routing from luck"
    );
}
