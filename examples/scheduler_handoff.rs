//! A scheduler takes a lock, hands it with the task to a worker process, and
//! the worker releases it when the task is done.
//!
//! ```text
//! cargo run --release --example scheduler_handoff
//! cargo run --release --example scheduler_handoff -- --backend redis://127.0.0.1:16379/0
//! ```
//!
//! The scheduler acquires `nightly-report`, detaches the guard (it stops
//! extending it and will not release it), exports the lease and starts a
//! worker process with it. The worker adopts the lease — its own client now
//! extends it — runs the task for longer than the lease's ttl, then releases
//! it. Meanwhile a second scheduler tries to schedule the same job and must
//! be refused. The example checks that:
//!
//! - the duplicate scheduling was refused while the worker held the lock,
//! - the worker ran under the fencing token the scheduler acquired,
//! - the worker kept the lock alive past the ttl it was taken with,
//! - the lock is free once the worker has released it,
//!
//! and exits non-zero otherwise. The backend must allow lease handoff
//! (`Capabilities::lease_handoff`).

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use distlock::{AcquireOptions, Lease, LockClient};
use support::{flags, last_value, run_self, target_file, Result};

const JOB: &str = "nightly-report";
const TTL: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scheduler_handoff: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scheduler_handoff: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = flags(&args, &["--backend", "--worker-lease"])?;
    let backend = f
        .get("--backend")
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}", target_file("handoff-locks.db").display()));
    match f.get("--worker-lease") {
        Some(lease) => worker(&backend, lease).await.map(|()| true),
        None => scheduler(&backend).await,
    }
}

/// Acquire, hand over, check.
async fn scheduler(url: &str) -> Result<bool> {
    println!("scheduler: backend {}", distlock::redact_url(url));
    let backend = distlock::connect(url).await?;
    if !backend.capabilities().lease_handoff {
        return Err(format!(
            "the {} backend cannot hand leases over",
            backend.backend_name()
        )
        .into());
    }
    let client = LockClient::with_defaults(backend.clone(), AcquireOptions::try_once(TTL));
    let guard = client
        .try_lock(JOB)
        .await?
        .ok_or("the job is already scheduled elsewhere")?;
    let token = guard.fencing_token();
    println!("scheduler: acquired `{JOB}` with fencing token {token}; handing it to a worker");
    let exported = guard.detach().export();

    // The worker runs in its own process; meanwhile try to schedule again.
    let worker = tokio::spawn(run_self(vec![vec![
        "--backend".into(),
        url.to_string(),
        "--worker-lease".into(),
        exported,
    ]]));
    tokio::time::sleep(TTL / 2).await;
    let rival =
        LockClient::with_defaults(distlock::connect(url).await?, AcquireOptions::try_once(TTL));
    let duplicate_refused = rival.try_lock(JOB).await?.is_none();
    println!(
        "scheduler: a second scheduling attempt while the worker runs: {}",
        if duplicate_refused {
            "refused"
        } else {
            "ACCEPTED (wrong)"
        }
    );

    let outputs = worker.await??;
    let worker_token = outputs
        .first()
        .and_then(|o| last_value(o, "worker token "))
        .ok_or("the worker reported no token")?;
    let held_for: u64 = outputs
        .first()
        .and_then(|o| last_value(o, "worker held ms "))
        .ok_or("the worker reported no hold time")?
        .parse()?;
    let same_token = worker_token == token.to_string();
    let outlived_ttl = Duration::from_millis(held_for) > TTL;
    let free_after = match rival.try_lock(JOB).await? {
        Some(g) => {
            g.release().await?;
            true
        }
        None => false,
    };
    println!("scheduler: worker ran under token {worker_token} (scheduler's: {token}), held the lock {held_for} ms (ttl {} ms)", TTL.as_millis());
    println!("scheduler: lock free after the worker released it: {free_after}");
    let ok = duplicate_refused && same_token && outlived_ttl && free_after;
    println!("handoff: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// Adopt the lease, work past its ttl, release.
async fn worker(url: &str, exported: &str) -> Result<()> {
    let lease = Lease::import(exported)?;
    let client = LockClient::new(distlock::connect(url).await?);
    let guard = client.adopt(lease)?;
    let start = Instant::now();
    // The task: longer than the ttl the scheduler took the lock with, so the
    // worker's own client must keep it alive.
    tokio::select! {
        _ = tokio::time::sleep(TTL * 2) => {}
        reason = guard.lost() => return Err(format!("lost the lock mid-task: {reason}").into()),
    }
    println!("worker token {}", guard.fencing_token());
    println!("worker held ms {}", start.elapsed().as_millis());
    guard.release().await?;
    Ok(())
}
