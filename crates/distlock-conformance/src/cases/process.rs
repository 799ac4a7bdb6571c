//! The cross-process case: a child process holding the lock is killed.

use std::time::{Duration, Instant};

use distlock_core::{LockName, Mode, Wait};
use tokio::process::{Child, Command};

use super::support::{
    long_ttl, must, must_acquire, must_release, opts, short_ttl, skip, unique_name,
};
use crate::harness::Harness;

const CASE: &str = "lease_expires_when_holder_is_killed";

/// Environment variable that turns a test process into the child holder of
/// [`lease_expires_when_holder_is_killed`].
pub const CHILD_ENV: &str = "DISTLOCK_CONFORMANCE_CHILD_LOCK";
/// Set beside [`CHILD_ENV`] when the child holds a permit of a two-permit
/// semaphore rather than the lock.
const CHILD_PERMIT_ENV: &str = "DISTLOCK_CONFORMANCE_CHILD_PERMIT";
/// The semaphore of [`permit_returns_when_holder_is_killed`].
const TWO_PERMITS: Mode = Mode::Permit { limit: 2 };
/// The line the child prints once it holds the lock.
const CHILD_MARK: &str = "DISTLOCK-CHILD-HOLDS";
/// How long the child may take to start and take the lock.
const CHILD_REPORTS_WITHIN: Duration = Duration::from_secs(60);

/// A child process takes the lock and is SIGKILLed; the lock frees within
/// the backend's liveness bound (ttl, or session timeout).
///
/// The case re-runs the current test binary as the child (`test_path` is the
/// test's path as libtest names it); in the child, the same function sees
/// [`CHILD_ENV`] and holds the lock until killed.
pub async fn lease_expires_when_holder_is_killed(h: &dyn Harness, test_path: &str) {
    killed_holder(h, test_path, Mode::Exclusive, CASE).await;
}

/// A child process takes one of two permits and is SIGKILLed while this
/// process holds the other; the child's permit returns within the
/// backend's liveness bound (ttl, or session timeout).
pub async fn permit_returns_when_holder_is_killed(h: &dyn Harness, test_path: &str) {
    const PERMIT_CASE: &str = "permit_returns_when_holder_is_killed";
    if std::env::var(CHILD_ENV).is_err() && !h.client().await.capabilities().semaphore {
        return skip(
            PERMIT_CASE,
            "backend serves no semaphores (semaphore = false)",
        );
    }
    killed_holder(h, test_path, TWO_PERMITS, PERMIT_CASE).await;
}

/// The parent's side of the killed-holder cases, in `mode`.
async fn killed_holder(h: &dyn Harness, test_path: &str, mode: Mode, case: &str) {
    if let Ok(lock) = std::env::var(CHILD_ENV) {
        return child_hold(h, &lock).await;
    }
    let b = h.client().await;
    let caps = b.capabilities();
    if !caps.cross_process {
        return skip(case, "backend is in-process only (cross_process = false)");
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("killed-holder");
    // With permits, this process holds one of the two for the whole case.
    let kept = match mode {
        Mode::Exclusive => None,
        _ => Some(must_acquire_as(&b, &name, mode, long_ttl(&caps)).await),
    };
    let mut child = spawn_child(test_path, &name, mode != Mode::Exclusive);
    let fence = child_fence(&mut child).await;
    match b.acquire_as(&name, mode, &opts(ttl)).await {
        Ok(None) => {}
        other => panic!("[{case}] with the child holding, a {mode} acquire gave {other:?}"),
    }
    must(case, "SIGKILL of the child holder", child.start_kill());
    let _ = child.wait().await;
    let killed_at = Instant::now();
    let bound = h.liveness_bound(ttl) + Duration::from_secs(3);
    let o = opts(ttl).with_wait(Wait::For(bound));
    let got = match b.acquire_as(&name, mode, &o).await {
        Ok(Some(got)) => got,
        other => panic!("[{case}] backend claims `cross_process` but the hold of a killed holder was not freed within {bound:?}: {other:?}"),
    };
    let took = killed_at.elapsed();
    assert!(
        !caps.fencing || got.fencing_token().get() > fence,
        "[{case}] backend claims `fencing` but got token {} after the killed holder's {fence}",
        got.fencing_token()
    );
    println!("[{case}] freed {took:?} after SIGKILL (bound {bound:?})");
    must_release(case, &b, &got).await;
    if let Some(kept) = kept {
        must_release(case, &b, &kept).await;
    }
}

/// A hold in `mode` that must be granted at once.
async fn must_acquire_as(
    c: &std::sync::Arc<dyn distlock_core::DistributedLock>,
    name: &LockName,
    mode: Mode,
    ttl: Duration,
) -> distlock_core::Lease {
    match c.acquire_as(name, mode, &opts(ttl)).await {
        Ok(Some(lease)) => lease,
        other => panic!("[{CASE}] a {mode} hold of a free `{name}` gave {other:?}"),
    }
}

/// Re-runs this test binary, only `test_path`, as the child holder.
fn spawn_child(test_path: &str, name: &LockName, permit: bool) -> Child {
    let exe = must(CASE, "path of the test binary", std::env::current_exe());
    let mut command = Command::new(exe);
    if permit {
        command.env(CHILD_PERMIT_ENV, "1");
    }
    let child = command
        .args([test_path, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name.as_str())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    must(CASE, "spawn of the child holder", child)
}

/// Reads the child's output until it reports the fencing token it holds.
async fn child_fence(child: &mut Child) -> u64 {
    use tokio::io::AsyncBufReadExt;
    let Some(stdout) = child.stdout.take() else {
        panic!("[{CASE}] the child's stdout was not captured");
    };
    let read = async {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // libtest may have printed `test … ... ` on the same line.
            if let Some((_, rest)) = line.split_once(CHILD_MARK) {
                return rest.trim().parse::<u64>().ok();
            }
        }
        None
    };
    match tokio::time::timeout(CHILD_REPORTS_WITHIN, read).await {
        Ok(Some(fence)) => fence,
        Ok(None) => panic!("[{CASE}] the child exited without reporting that it holds the lock"),
        Err(_) => panic!("[{CASE}] the child did not report within {CHILD_REPORTS_WITHIN:?}"),
    }
}

/// The child's part: take the lock, say so, hold it until killed.
async fn child_hold(h: &dyn Harness, lock: &str) {
    let c = h.client().await;
    let ttl = short_ttl(&c.capabilities());
    let name = must(CASE, "the child's lock name", LockName::new(lock));
    let lease = match std::env::var(CHILD_PERMIT_ENV) {
        Ok(_) => must_acquire_as(&c, &name, TWO_PERMITS, ttl).await,
        Err(_) => must_acquire(CASE, &c, &name, &opts(ttl)).await,
    };
    // Start on a fresh line: libtest may have printed the test's name.
    println!("\n{CHILD_MARK} {}", lease.fencing_token());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Hold until killed; never release.
    std::future::pending::<()>().await;
}
