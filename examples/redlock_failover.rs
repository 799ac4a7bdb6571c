//! Redlock over five independent Redis instances, surviving the loss of two.
//!
//! ```text
//! scripts/services.sh up          # five Redis instances on 16379..16383
//! cargo run --release --example redlock_failover --features redis
//! ```
//!
//! Each instance sits behind a fault proxy so the example can take instances
//! away and give them back without touching the servers. Four clients
//! contend for one lock in each phase while every hold is recorded and
//! checked for overlaps and fencing tokens that fail to increase:
//!
//! 1. all five instances up;
//! 2. two instances gone (connections reset): a majority of three remains, the
//!    lock keeps working;
//! 3. three instances gone: no majority, so acquiring must fail with
//!    `Unavailable` within its wait, never succeed;
//! 4. all instances back: the lock works again.
//!
//! Exits non-zero if any phase breaks its promise. The instances come from
//! `DISTLOCK_REDIS_URLS` (comma-separated `redis://host:port` URLs), defaulting
//! to the ones `scripts/services.sh` starts.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distlock::{AcquireOptions, LockError, LockName, Wait};
use distlock_conformance::{FaultProxy, History, Hold, ProxyMode};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEFAULT_URLS: &str = "redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381,redis://127.0.0.1:16382,redis://127.0.0.1:16383";
const CLIENTS: usize = 4;
const ROUNDS: usize = 50;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redlock_failover: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("redlock_failover: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool> {
    let urls = std::env::var("DISTLOCK_REDIS_URLS").unwrap_or_else(|_| DEFAULT_URLS.into());
    let mut proxies = Vec::new();
    for url in urls.split(',') {
        let addr: SocketAddr = url
            .trim()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("`{url}` is not redis://host:port: {e}"))?;
        proxies.push(FaultProxy::start(addr).await?);
    }
    if proxies.len() != 5 {
        return Err(format!("expected 5 instances, got {}", proxies.len()).into());
    }
    let redlock = format!(
        "redlock://{}",
        proxies
            .iter()
            .map(|p| p.addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let name = LockName::new(format!("examples/redlock/{}", std::process::id()))?;
    println!(
        "redlock_failover: {CLIENTS} clients × {ROUNDS} acquisitions per phase over 5 instances"
    );

    let mut ok = contend("all 5 instances up", &redlock, &name).await?;

    proxies[0].set_mode(ProxyMode::Reset);
    proxies[1].set_mode(ProxyMode::Reset);
    ok &= contend("2 of 5 instances gone", &redlock, &name).await?;

    proxies[2].set_mode(ProxyMode::Reset);
    ok &= no_majority(&redlock, &name).await?;

    for p in &proxies {
        p.set_mode(ProxyMode::Pass);
    }
    ok &= contend("all instances back", &redlock, &name).await?;
    println!("redlock_failover: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// Four clients take the lock `ROUNDS` times each; checks the history.
async fn contend(phase: &str, url: &str, name: &LockName) -> Result<bool> {
    let history = History::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let backend = distlock::connect(url).await?;
        let (name, history) = (name.clone(), history.clone());
        tasks.push(tokio::spawn(async move {
            let opts = AcquireOptions::new(Duration::from_secs(5))
                .with_wait(Wait::For(Duration::from_secs(30)));
            for _ in 0..ROUNDS {
                let lease = backend
                    .acquire(&name, &opts)
                    .await?
                    .ok_or("no lock within 30 s")?;
                let held_from = Instant::now();
                tokio::task::yield_now().await;
                history.record(Hold {
                    client: id,
                    fencing: lease.fencing_token().get(),
                    start: held_from,
                    end: Instant::now(),
                });
                backend.release(&lease).await?;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let verdict = history.check();
    println!(
        "{phase:<24} {} holds in {:.1?}, {}",
        history.len(),
        start.elapsed(),
        match &verdict {
            Ok(()) => "no overlaps, fencing tokens increasing".to_string(),
            Err(e) => e.clone(),
        }
    );
    Ok(verdict.is_ok() && history.len() == CLIENTS * ROUNDS)
}

/// With three of five instances gone, acquiring must fail within its wait.
async fn no_majority(url: &str, name: &LockName) -> Result<bool> {
    let backend = distlock::connect(url).await?;
    let wait = Duration::from_secs(2);
    let opts = AcquireOptions::new(Duration::from_secs(5)).with_wait(Wait::For(wait));
    let start = Instant::now();
    let outcome = backend.acquire(name, &opts).await;
    let took = start.elapsed();
    let in_time = took < wait + Duration::from_secs(1);
    let ok = match &outcome {
        Err(LockError::Unavailable { .. }) => in_time,
        _ => false,
    };
    println!(
        "{:<24} acquire answered in {took:.1?}: {}",
        "3 of 5 instances gone",
        match outcome {
            Ok(Some(_)) => "ACQUIRED without a majority (wrong)".to_string(),
            Ok(None) => "not acquired, but not reported as unavailable".to_string(),
            Err(e) => e.to_string(),
        }
    );
    Ok(ok)
}
