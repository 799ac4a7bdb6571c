//! Redis backend benchmark: ratios measured in one run against the real
//! servers from `scripts/services.sh`.
//!
//! 1. Uncontended acquire + release on one instance vs the raw floor
//!    (`SET NX PX` + compare-and-delete `EVAL` through the same client crate).
//! 2. Redlock over five instances vs one instance (acquire + release).
//! 3. Eight clients contending with zero hold time: median time from one
//!    release returning to the next holder's acquire returning, vs one raw
//!    round trip (`PING`); with the waiters' queue (the default) and without.
//!
//! Run: `cargo bench -p distlock-redis --bench redis`.

use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_redis::{RedisBackend, RedlockBackend};

const DEFAULT_URLS: &str = "redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381,redis://127.0.0.1:16382,redis://127.0.0.1:16383";

const ROUNDS: usize = 9;
const OPS_PER_ROUND: usize = 400;

fn addrs() -> Vec<String> {
    std::env::var("DISTLOCK_REDIS_URLS")
        .unwrap_or_else(|_| DEFAULT_URLS.to_string())
        .split(',')
        .map(|u| {
            let rest = u.trim().split_once("://").map(|(_, r)| r).unwrap_or(u);
            rest.split(['/', '?']).next().unwrap_or(rest).to_string()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Mean microseconds per acquire + release over one round.
async fn lock_round(backend: &dyn DistributedLock, name: &LockName) -> f64 {
    let opts = AcquireOptions::try_once(Duration::from_secs(30));
    let start = Instant::now();
    for _ in 0..OPS_PER_ROUND {
        let lease = backend
            .acquire(name, &opts)
            .await
            .expect("acquire")
            .expect("uncontended");
        backend.release(&lease).await.expect("release");
    }
    micros(start.elapsed()) / OPS_PER_ROUND as f64
}

/// Mean microseconds per raw SET NX PX + compare-and-delete EVAL.
async fn raw_round(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> f64 {
    let cad = redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    );
    let start = Instant::now();
    for i in 0..OPS_PER_ROUND {
        let token = format!("{i:032x}");
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(conn)
            .await
            .expect("SET");
        assert!(set.is_some(), "raw key was held");
        let deleted: i64 = cad
            .key(key)
            .arg(&token)
            .invoke_async(conn)
            .await
            .expect("EVAL");
        assert_eq!(deleted, 1);
    }
    micros(start.elapsed()) / OPS_PER_ROUND as f64
}

/// Mean microseconds per raw SET NX PX + compare-and-delete EVAL sent to all
/// instances in parallel: the machine's floor for a five-instance round pair.
async fn raw_parallel_round(conns: &mut [redis::aio::MultiplexedConnection], key: &str) -> f64 {
    let cad = redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    );
    let start = Instant::now();
    for i in 0..OPS_PER_ROUND {
        let token = format!("{i:032x}");
        let sets = futures::future::join_all(conns.iter().cloned().map(|mut c| {
            let token = token.clone();
            async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(30_000)
                    .query_async::<Option<String>>(&mut c)
                    .await
            }
        }))
        .await;
        assert!(sets.iter().all(|r| matches!(r, Ok(Some(_)))));
        let dels = futures::future::join_all(conns.iter().cloned().map(|mut c| {
            let (cad, token) = (&cad, token.clone());
            async move { cad.key(key).arg(&token).invoke_async::<i64>(&mut c).await }
        }))
        .await;
        assert!(dels.iter().all(|r| matches!(r, Ok(1))));
    }
    micros(start.elapsed()) / OPS_PER_ROUND as f64
}

/// Mean microseconds per acquire + release running the backend's own scripts
/// directly on a raw connection: the server-side cost of the design
/// (fencing `INCR`, release `PUBLISH`, queue check) without any client code.
async fn scripts_round(conn: &mut redis::aio::MultiplexedConnection, tag: &str) -> f64 {
    let acquire = redis::Script::new(&with_libraries(include_str!(
        "../src/scripts/fair_acquire.lua"
    )));
    let release = redis::Script::new(&with_libraries(include_str!("../src/scripts/release.lua")));
    let keys = ["lock", "fence", "queue", "waiters", "released", "holders"]
        .map(|k| format!("{{{tag}}}:{k}"));
    let start = Instant::now();
    for i in 0..OPS_PER_ROUND {
        let token = format!("{i:032x}");
        let got: Vec<i64> = acquire
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .key(&keys[3])
            .key(&keys[5])
            .key(&keys[4])
            .arg(&token)
            .arg(30_000)
            .arg("0")
            .arg(2000)
            .arg("x")
            .invoke_async(conn)
            .await
            .expect("acquire script");
        assert_eq!(got.first(), Some(&1));
        let released: i64 = release
            .key(&keys[0])
            .key(&keys[4])
            .key(&keys[2])
            .key(&keys[3])
            .key(&keys[1])
            .key(&keys[5])
            .key(&keys[0])
            .arg(&token)
            .arg("")
            .invoke_async(conn)
            .await
            .expect("release script");
        assert_eq!(released, 1);
    }
    micros(start.elapsed()) / OPS_PER_ROUND as f64
}

/// A script's source with its `-- @include lib/…` lines replaced by the
/// libraries, as the backend loads it.
fn with_libraries(source: &str) -> String {
    source
        .replace(
            "-- @include lib/holds.lua",
            include_str!("../src/scripts/lib/holds.lua"),
        )
        .replace(
            "-- @include lib/queue.lua",
            include_str!("../src/scripts/lib/queue.lua"),
        )
}

/// Median microseconds of one PING.
async fn ping_median(conn: &mut redis::aio::MultiplexedConnection, n: usize) -> f64 {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let _: String = redis::cmd("PING").query_async(conn).await.expect("PING");
        samples.push(micros(start.elapsed()));
    }
    median(samples)
}

/// Eight clients, zero hold time: the median gap from a release returning to
/// the next acquire returning (signed: a waiter may get the lock before the
/// releaser has read its own reply).
async fn handoff_median(url: &str, name: &LockName) -> (f64, Vec<usize>) {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 150;
    let mut tasks = Vec::new();
    let epoch = Instant::now();
    for id in 0..CLIENTS {
        let backend = RedisBackend::connect(url).await.expect("connect");
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let opts = AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::Forever);
            let mut events = Vec::with_capacity(PER_CLIENT);
            for _ in 0..PER_CLIENT {
                let lease = backend
                    .acquire(&name, &opts)
                    .await
                    .expect("acquire")
                    .expect("forever");
                let acquired = epoch.elapsed();
                backend.release(&lease).await.expect("release");
                let released = epoch.elapsed();
                events.push((acquired, released, id));
            }
            events
        }));
    }
    let mut events = Vec::new();
    for t in tasks {
        events.extend(t.await.expect("client task"));
    }
    events.sort_by_key(|e| e.0);
    let mut gaps = Vec::new();
    for pair in events.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        gaps.push((next.0.as_secs_f64() - prev.1.as_secs_f64()) * 1e6);
    }
    // Longest run of consecutive holds by one client (fairness indicator).
    let mut runs = vec![0usize; CLIENTS];
    let mut current = (usize::MAX, 0usize);
    for e in &events {
        current = if e.2 == current.0 {
            (e.2, current.1 + 1)
        } else {
            (e.2, 1)
        };
        runs[e.2] = runs[e.2].max(current.1);
    }
    (median(gaps), runs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let addrs = addrs();
    let tag = distlock_core::OwnerToken::random().to_hex();
    let single_url = format!("redis://{}?prefix=bench:", addrs[0]);
    let redlock_url = format!("redlock://{}?prefix=bench:", addrs.join(","));
    let single = RedisBackend::connect(&single_url)
        .await
        .expect("start the servers with scripts/services.sh up");
    let unfair_single = RedisBackend::connect(&format!("{single_url}&fair=false"))
        .await
        .expect("start the servers with scripts/services.sh up");
    let redlock = RedlockBackend::connect(&redlock_url)
        .await
        .expect("start the servers with scripts/services.sh up");
    let client = redis::Client::open(format!("redis://{}", addrs[0]).as_str()).expect("client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");

    let mut raw_all = Vec::new();
    for a in &addrs {
        let c = redis::Client::open(format!("redis://{a}").as_str()).expect("client");
        raw_all.push(
            c.get_multiplexed_async_connection()
                .await
                .expect("raw connection"),
        );
    }

    let single_name = LockName::new(format!("bench/single/{tag}")).expect("name");
    let redlock_name = LockName::new(format!("bench/redlock/{tag}")).expect("name");
    let raw_key = format!("bench:raw:{tag}");

    // Warm up connections and script caches.
    lock_round(&single, &single_name).await;
    lock_round(&unfair_single, &single_name).await;
    lock_round(&redlock, &redlock_name).await;
    raw_round(&mut raw, &raw_key).await;
    raw_parallel_round(&mut raw_all, &raw_key).await;

    // Interleave the three so drift in machine load hits all alike.
    let (mut s, mut r, mut l, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut u, mut q) = (Vec::new(), Vec::new());
    let script_tag = format!("bench:scripts:{tag}");
    for _ in 0..ROUNDS {
        r.push(raw_round(&mut raw, &raw_key).await);
        p.push(raw_parallel_round(&mut raw_all, &raw_key).await);
        s.push(lock_round(&single, &single_name).await);
        u.push(lock_round(&unfair_single, &single_name).await);
        q.push(scripts_round(&mut raw, &script_tag).await);
        l.push(lock_round(&redlock, &redlock_name).await);
    }
    let (raw_us, single_us, redlock_us) = (median(r), median(s), median(l));
    let raw5_us = median(p);
    let plain_us = median(u);
    let scripts_us = median(q);

    let ping_us = ping_median(&mut raw, 2000).await;
    let handoff_name = LockName::new(format!("bench/handoff/{tag}")).expect("name");
    let (handoff_us, runs) = handoff_median(&single_url, &handoff_name).await;
    let unfair_url = format!("{single_url}&fair=false");
    let unfair_name = LockName::new(format!("bench/handoff-unfair/{tag}")).expect("name");
    let (unfair_us, unfair_runs) = handoff_median(&unfair_url, &unfair_name).await;

    println!("distlock-redis benchmark (medians; loopback)");
    println!("  raw SET NX PX + EVAL compare-and-delete  {raw_us:8.1} µs");
    println!("  single-instance acquire + release        {single_us:8.1} µs   ratio {:.2}x (target <= 1.15x)", single_us / raw_us);
    println!(
        "  same, fair=false (no queue check)         {plain_us:8.1} µs   ratio {:.2}x",
        plain_us / raw_us
    );
    println!(
        "  its two scripts alone, raw connection     {scripts_us:8.1} µs   ratio {:.2}x (server-side cost of fencing + wake-up)",
        scripts_us / raw_us
    );
    println!("  redlock (5 instances) acquire + release  {redlock_us:8.1} µs   ratio {:.2}x vs single (target <= 1.5x)", redlock_us / single_us);
    println!("  raw floor over 5 instances in parallel  {raw5_us:8.1} µs   ratio {:.2}x vs raw single (the machine's own 5-vs-1 cost)", raw5_us / raw_us);
    println!("  raw PING round trip                      {ping_us:8.1} µs");
    println!("  8 clients, zero hold: release -> next acquire {handoff_us:8.1} µs   ratio {:.2}x vs PING (target < 2x)", handoff_us / ping_us);
    println!("  longest run of consecutive holds per client: {runs:?}");
    println!(
        "  same without the waiters' queue (fair=false) {unfair_us:8.1} µs   ratio {:.2}x vs PING",
        unfair_us / ping_us
    );
    println!("  longest run of consecutive holds per client: {unfair_runs:?}");
}
