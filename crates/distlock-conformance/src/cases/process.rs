//! The cross-process case: a child process holding the lock is killed.

use std::time::{Duration, Instant};

use distlock_core::{LockName, Mode, Wait};

use super::support::{
    long_ttl, must, must_acquire, must_release, opts, short_ttl, skip, unique_name,
};
use crate::child::{report, ChildProcess};
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
async fn killed_holder(h: &dyn Harness, test_path: &str, mode: Mode, case: &'static str) {
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
    let mut env = vec![(CHILD_ENV, name.as_str())];
    if mode != Mode::Exclusive {
        env.push((CHILD_PERMIT_ENV, "1"));
    }
    let mut child = ChildProcess::spawn(case, test_path, &env, false);
    let fence = child.number(CHILD_MARK).await;
    match b.acquire_as(&name, mode, &opts(ttl)).await {
        Ok(None) => {}
        other => panic!("[{case}] with the child holding, a {mode} acquire gave {other:?}"),
    }
    child.kill().await;
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

/// The child's part: take the lock, say so, hold it until killed.
async fn child_hold(h: &dyn Harness, lock: &str) {
    let c = h.client().await;
    let ttl = short_ttl(&c.capabilities());
    let name = must(CASE, "the child's lock name", LockName::new(lock));
    let lease = match std::env::var(CHILD_PERMIT_ENV) {
        Ok(_) => must_acquire_as(&c, &name, TWO_PERMITS, ttl).await,
        Err(_) => must_acquire(CASE, &c, &name, &opts(ttl)).await,
    };
    report(CHILD_MARK, lease.fencing_token());
    // Hold until killed; never release.
    std::future::pending::<()>().await;
}
