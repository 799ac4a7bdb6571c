//! What the lock recipe costs compared to the raw ZooKeeper operations it is
//! made of, through the same client and session.
//!
//! Run against the test ensemble (`scripts/services.sh up`):
//!
//! ```text
//! cargo bench -p distlock-zookeeper --bench zookeeper
//! ```
//!
//! Reports, per operation, the median and mean latency and the ratio of the
//! mean to one raw `create` + `delete` of an ephemeral node:
//! - uncontended acquire + release (2 + 1 round trips);
//! - contended handoff: clients take turns on one name; the time per
//!   acquisition while everyone queues is what one handoff costs (the
//!   holder's delete, the watch event, the waiter's list).

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_zookeeper::zookeeper_client as zk;
use distlock_zookeeper::{ZkBackend, ZkConfig};

const ITERATIONS: usize = 400;
const WARMUP: usize = 40;
const HANDOFF_CLIENTS: usize = 4;
const HANDOFFS: usize = 800;

fn hosts() -> Vec<String> {
    std::env::var("DISTLOCK_ZK_HOSTS")
        .unwrap_or_else(|_| "127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183".to_string())
        .split(',')
        .map(str::to_string)
        .collect()
}

struct Stats {
    median: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        median: samples[samples.len() / 2],
        mean: total / samples.len() as u32,
    }
}

async fn connect(root: &str) -> ZkBackend {
    let config = ZkConfig::new(hosts())
        .with_prefix(root)
        .expect("prefix")
        .with_session_timeout(Duration::from_secs(10));
    ZkBackend::from_config(config).await.unwrap_or_else(|e| {
        panic!("cannot reach the ensemble ({e}): start the servers with scripts/services.sh up")
    })
}

/// One raw `create` (ephemeral) + `delete`, the baseline.
async fn raw_create_delete(zk: &zk::Client, dir: &str, n: usize) -> Duration {
    let path = format!("{dir}/raw-{n}");
    let mode = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let start = Instant::now();
    zk.create(&path, &[], &mode).await.expect("create");
    zk.delete(&path, None).await.expect("delete");
    start.elapsed()
}

async fn acquire_release(b: &ZkBackend, name: &LockName) -> Duration {
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let start = Instant::now();
    let lease = b
        .acquire(name, &opts)
        .await
        .expect("acquire")
        .expect("free");
    b.release(&lease).await.expect("release");
    start.elapsed()
}

/// Clients take turns on one name; returns the time per acquisition.
async fn handoffs(root: &str) -> Duration {
    let name = LockName::new("bench/handoff").expect("name");
    let mut clients = Vec::new();
    for _ in 0..HANDOFF_CLIENTS {
        clients.push(Arc::new(connect(root).await));
    }
    let per_client = HANDOFFS / HANDOFF_CLIENTS;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let opts = AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::Forever);
            for _ in 0..per_client {
                let lease = c
                    .acquire(&name, &opts)
                    .await
                    .expect("acquire")
                    .expect("acquired");
                c.release(&lease).await.expect("release");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    start.elapsed() / (per_client * HANDOFF_CLIENTS) as u32
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let root = format!("/distlock-bench-{:016x}", rand::random::<u64>());
        let backend = connect(&root).await;
        let zk = backend.zk_client();
        let raw_dir = format!("{root}/raw");
        zk.mkdir(
            &raw_dir,
            &zk::CreateMode::Container.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .expect("mkdir");
        let name = LockName::new("bench/uncontended").expect("name");

        for n in 0..WARMUP {
            raw_create_delete(&zk, &raw_dir, n).await;
            acquire_release(&backend, &name).await;
        }
        // Interleave the two so load from elsewhere hits both alike.
        let mut raw = Vec::with_capacity(ITERATIONS);
        let mut lock = Vec::with_capacity(ITERATIONS);
        for n in 0..ITERATIONS {
            raw.push(raw_create_delete(&zk, &raw_dir, n).await);
            lock.push(acquire_release(&backend, &name).await);
        }
        let raw = stats(raw);
        let lock = stats(lock);
        let handoff = handoffs(&root).await;
        let ratio = |d: Duration| d.as_secs_f64() / raw.mean.as_secs_f64();

        println!("zookeeper backend, 3-node ensemble on loopback");
        println!(
            "{:<44} {:>10} {:>10} {:>8}",
            "operation", "median", "mean", "ratio"
        );
        println!(
            "{:<44} {:>10.2?} {:>10.2?} {:>8.2}",
            "raw create + delete (ephemeral node)", raw.median, raw.mean, 1.0
        );
        println!(
            "{:<44} {:>10.2?} {:>10.2?} {:>8.2}",
            "uncontended acquire + release",
            lock.median,
            lock.mean,
            ratio(lock.mean)
        );
        println!(
            "{:<44} {:>10} {:>10.2?} {:>8.2}",
            format!("contended handoff ({HANDOFF_CLIENTS} clients, per acquisition)"),
            "-",
            handoff,
            ratio(handoff)
        );
    });
}
