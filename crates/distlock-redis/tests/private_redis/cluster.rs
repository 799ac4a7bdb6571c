//! A throw-away Redis Cluster of a test's own: private servers with
//! `cluster-enabled yes` (no persistence; `nodes.conf` in each scratch
//! directory, so a restarted node rejoins with its slots), joined with
//! `CLUSTER MEET`, the slots split evenly among the primaries, each primary
//! with its replicas. The shared cluster of `scripts/services.sh` is never
//! touched.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::PrivateRedis;

/// How long the cluster may take to agree on its state.
const SETTLE: Duration = Duration::from_secs(60);
const SLOTS: usize = 16384;

/// A private cluster: `nodes[..primaries]` were made primaries, the rest
/// replicas (replica `j` of primary `i` is `nodes[primaries + i * per + j]`).
pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
    pub primaries: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A connection to `addr`.
pub async fn conn(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the private cluster node {addr}: {e}"))
}

/// `CLUSTER <args>` on `addr`.
pub async fn cluster_cmd<T: redis::FromRedisValue>(
    addr: &str,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = conn(addr).await;
    let mut cmd = redis::cmd("CLUSTER");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query_async(&mut c).await
}

/// One `field:value` line of `CLUSTER INFO` on `addr`.
pub async fn info(addr: &str, field: &str) -> Option<String> {
    let text: String = cluster_cmd(addr, &["INFO"]).await.ok()?;
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{field}:"))
            .map(str::to_string)
    })
}

impl PrivateCluster {
    /// Starts `primaries` primaries with `replicas` replicas each
    /// (`--cluster-node-timeout 1000`, so a failover takes seconds).
    pub async fn start(primaries: usize, replicas: usize) -> Self {
        let total = primaries * (1 + replicas);
        let nodes: Vec<PrivateRedis> = (0..total)
            .map(|_| {
                let bus = free_port().to_string();
                PrivateRedis::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let cluster = PrivateCluster { nodes, primaries };
        let first = cluster.nodes[0].addr();
        for i in 0..primaries {
            let (lo, hi) = (i * SLOTS / primaries, (i + 1) * SLOTS / primaries - 1);
            let _: () = cluster_cmd(
                &cluster.nodes[i].addr(),
                &["ADDSLOTSRANGE", &lo.to_string(), &hi.to_string()],
            )
            .await
            .unwrap();
        }
        let bus0: String = redis::cmd("CONFIG")
            .arg("GET")
            .arg("cluster-port")
            .query_async::<Vec<String>>(&mut conn(&first).await)
            .await
            .unwrap()
            .pop()
            .unwrap();
        let port0 = cluster.nodes[0].port().to_string();
        for node in &cluster.nodes[1..] {
            let _: () = cluster_cmd(&node.addr(), &["MEET", "127.0.0.1", &port0, &bus0])
                .await
                .unwrap();
        }
        cluster.settle(|| async { cluster.knows_all().await }).await;
        for i in 0..primaries {
            let id = cluster.id(i).await;
            for j in 0..replicas {
                let replica = &cluster.nodes[primaries + i * replicas + j];
                let _: () = cluster_cmd(&replica.addr(), &["REPLICATE", &id])
                    .await
                    .unwrap();
            }
        }
        cluster.wait_ok().await;
        cluster
    }

    /// The `redis+cluster://` URL (every node a seed) with `params`.
    pub fn url(&self, params: &str) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(PrivateRedis::addr).collect();
        format!("redis+cluster://{}?{params}", addrs.join(","))
    }

    /// The node id of `nodes[i]`.
    pub async fn id(&self, i: usize) -> String {
        cluster_cmd(&self.nodes[i].addr(), &["MYID"]).await.unwrap()
    }

    async fn knows_all(&self) -> bool {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            if info(&node.addr(), "cluster_known_nodes").await != Some(self.nodes.len().to_string())
            {
                return false;
            }
        }
        true
    }

    /// Waits until every running node says the cluster is ok and knows
    /// every node, and every replica is in sync with its primary.
    pub async fn wait_ok(&self) {
        self.settle(|| async {
            for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
                if info(&node.addr(), "cluster_state").await.as_deref() != Some("ok") {
                    return false;
                }
                let role: Vec<redis::Value> = match redis::cmd("ROLE")
                    .query_async(&mut conn(&node.addr()).await)
                    .await
                {
                    Ok(r) => r,
                    Err(_) => return false,
                };
                // A replica: ["slave", host, port, state, offset].
                if let Some(redis::Value::BulkString(state)) = role.get(3) {
                    if state != b"connected" {
                        return false;
                    }
                }
            }
            self.knows_all().await
        })
        .await;
    }

    /// Polls `ready` (a cluster has no event for "settled") every 50 ms,
    /// failing after a minute.
    pub async fn settle<F, Fut>(&self, ready: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + SETTLE;
        while !ready().await {
            assert!(
                Instant::now() < deadline,
                "the private cluster did not settle within {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index in `nodes` of the node at `addr`.
    pub fn index_of(&self, addr: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not a node of the private cluster"))
    }

    /// The slot `key` hashes to.
    pub async fn slot_of(&self, key: &str) -> u16 {
        cluster_cmd(&self.nodes[0].addr(), &["KEYSLOT", key])
            .await
            .unwrap()
    }

    /// The index in `nodes` of the primary serving `slot` now, as the
    /// running node `asked` says.
    pub async fn primary_of(&self, slot: u16, asked: usize) -> usize {
        let ranges: Vec<redis::Value> = cluster_cmd(&self.nodes[asked].addr(), &["SLOTS"])
            .await
            .unwrap();
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            if (*lo..=*hi).contains(&i64::from(slot)) {
                if let Some(redis::Value::Array(node)) = parts.get(2) {
                    if let Some(redis::Value::Int(port)) = node.get(1) {
                        return self.index_of(&format!("127.0.0.1:{port}"));
                    }
                }
            }
        }
        panic!("no primary serves slot {slot}");
    }
}
