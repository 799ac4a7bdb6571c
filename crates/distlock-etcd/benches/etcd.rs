//! etcd backend benchmark: lock operations as ratios to the raw floor.
//!
//! The floor is what any etcd lock must pay at least: one put-if-absent
//! transaction plus one delete, through one client to the same member.
//! Measured against it:
//!
//! - uncontended `NoWait` acquire + release (1 Txn + 1 Txn);
//! - uncontended waiting acquire + release (the queueing Txn + 1 Txn);
//! - contended handoff: several clients taking turns on one lock, time per
//!   hold (release → watch event → one Range → next holder).
//!
//! Run against the cluster from `scripts/services.sh up`:
//! `cargo bench -p distlock-etcd --bench etcd`. Bounded: a fixed number of
//! operations per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_etcd::{EtcdBackend, EtcdConfig};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

const ROUNDS: usize = 1000;
const SLICES: usize = 10;
const CONTENDED_CLIENTS: usize = 4;
const CONTENDED_HOLDS_PER_CLIENT: usize = 250;

fn endpoints() -> Vec<String> {
    std::env::var("DISTLOCK_ETCD_ENDPOINTS")
        .unwrap_or_else(|_| {
            "http://127.0.0.1:12379,http://127.0.0.1:12381,http://127.0.0.1:12383".into()
        })
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

async fn backend(prefix: &str) -> EtcdBackend {
    EtcdBackend::from_config(
        EtcdConfig::new(endpoints())
            .with_prefix(prefix)
            .with_session_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap_or_else(|e| {
        panic!("cannot reach etcd ({e}); start the servers with scripts/services.sh up")
    })
}

fn per_op(total: Duration, ops: usize) -> Duration {
    total / u32::try_from(ops).unwrap_or(u32::MAX)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let prefix = format!("distlock-bench/{:08x}", rand::random::<u32>());
    // The backend sends everything to its active endpoint: the first one.
    let first = endpoints()[0].clone();
    let mut raw = etcd_client::Client::connect([first.as_str()], None)
        .await
        .expect("raw client");
    let floor_key = format!("{prefix}/floor");
    let lock = backend(&prefix).await;
    let name = LockName::new("bench/uncontended").unwrap();
    let no_wait = AcquireOptions::try_once(Duration::from_secs(30));
    let waiting =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(10)));
    let contended = LockName::new("bench/contended").unwrap();
    let mut clients = Vec::new();
    for _ in 0..CONTENDED_CLIENTS {
        clients.push(Arc::new(backend(&prefix).await));
    }

    // Warm up, then interleave the measurements in slices so that load from
    // elsewhere on the machine weighs on all of them alike.
    for _ in 0..50 {
        floor_round(&mut raw, &floor_key).await;
        acquire_release(&lock, &name, &no_wait).await;
    }
    let (mut floor, mut uncontended, mut uncontended_wait, mut handoff) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let per_slice = ROUNDS / SLICES;
    let holds_per_slice = CONTENDED_HOLDS_PER_CLIENT / SLICES;
    for _ in 0..SLICES {
        let start = Instant::now();
        for _ in 0..per_slice {
            floor_round(&mut raw, &floor_key).await;
        }
        floor += start.elapsed();

        let start = Instant::now();
        for _ in 0..per_slice {
            acquire_release(&lock, &name, &no_wait).await;
        }
        uncontended += start.elapsed();

        let start = Instant::now();
        for _ in 0..per_slice {
            acquire_release(&lock, &name, &waiting).await;
        }
        uncontended_wait += start.elapsed();

        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in &clients {
            let (c, name) = (c.clone(), contended.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..holds_per_slice {
                    acquire_release(&*c, &name, &waiting).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        handoff += start.elapsed();
    }
    let rounds = per_slice * SLICES;
    let holds = CONTENDED_CLIENTS * holds_per_slice * SLICES;
    let floor = per_op(floor, rounds);
    let uncontended = per_op(uncontended, rounds);
    let uncontended_wait = per_op(uncontended_wait, rounds);
    let handoff = per_op(handoff, holds);

    let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
    println!(
        "etcd benchmark (3-node cluster on loopback, {rounds} rounds, {SLICES} interleaved slices)"
    );
    println!(
        "  floor: put-if-absent txn + delete         {:>9.1} µs",
        micros(floor)
    );
    println!(
        "  uncontended acquire (NoWait) + release    {:>9.1} µs  = {:.2} x floor",
        micros(uncontended),
        ratio(uncontended)
    );
    println!(
        "  uncontended acquire (waiting) + release   {:>9.1} µs  = {:.2} x floor",
        micros(uncontended_wait),
        ratio(uncontended_wait)
    );
    println!(
        "  contended handoff ({CONTENDED_CLIENTS} clients, {holds} holds) {:>9.1} µs/hold = {:.2} x floor",
        micros(handoff),
        ratio(handoff)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn floor_round(raw: &mut etcd_client::Client, key: &str) {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, "x", None)]);
    let resp = raw.txn(txn).await.expect("floor txn");
    assert!(resp.succeeded(), "floor key was free");
    raw.delete(key, None).await.expect("floor delete");
}

async fn acquire_release(lock: &dyn DistributedLock, name: &LockName, opts: &AcquireOptions) {
    let lease = lock
        .acquire(name, opts)
        .await
        .expect("acquire")
        .expect("acquired within the wait");
    lock.release(&lease).await.expect("release");
}
