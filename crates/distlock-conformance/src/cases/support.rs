//! What the cases share: names, ttls, and assertions whose panics start
//! with the case's name (`[case] …`), so a failure points at the case and
//! the promise it checks, not into a helper.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, Backoff, Capabilities, DistributedLock, Lease, LockError, LockName, Wait,
};
use rand::Rng;

use crate::harness::Harness;
use crate::history::{History, Violation};

/// A fresh, unique lock name for one case run.
pub fn unique_name(case: &str) -> LockName {
    let tag: u64 = rand::thread_rng().gen();
    match LockName::new(format!("conformance/{case}/{tag:016x}")) {
        Ok(name) => name,
        Err(e) => panic!("[{case}] the suite built an invalid lock name: {e}"),
    }
}

/// A name below `base`, for cases that take several locks.
pub(crate) fn child_name(case: &str, base: &LockName, child: &str) -> LockName {
    match LockName::new(format!("{base}/{child}")) {
        Ok(name) => name,
        Err(e) => panic!("[{case}] the suite built an invalid lock name: {e}"),
    }
}

/// A long ttl for cases where expiry must not interfere, within the
/// backend's bounds.
pub(crate) fn long_ttl(caps: &Capabilities) -> Duration {
    Duration::from_secs(30).clamp(caps.min_ttl, caps.max_ttl)
}

/// A short ttl for cases that wait for expiry.
pub(crate) fn short_ttl(caps: &Capabilities) -> Duration {
    Duration::from_millis(1500).clamp(caps.min_ttl, caps.max_ttl)
}

/// Options that try once, with `ttl`.
pub(crate) fn opts(ttl: Duration) -> AcquireOptions {
    AcquireOptions::try_once(ttl)
}

/// Quick polling, for waits that should end as soon as the lock frees.
pub(crate) fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(20),
        factor: 2.0,
    }
}

/// Prints why a case does not apply to this backend.
pub(crate) fn skip(case: &str, why: &str) {
    println!("[{case}] not applicable: {why}");
}

/// `n` new clients of the service.
pub(crate) async fn clients(h: &dyn Harness, n: usize) -> Vec<Arc<dyn DistributedLock>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(h.client().await);
    }
    all
}

/// The value of `result`, or a panic naming the case and `what` failed.
#[track_caller]
pub(crate) fn must<T, E: std::fmt::Display>(case: &str, what: &str, result: Result<T, E>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("[{case}] {what}: {e}"),
    }
}

/// An acquire that must not fail; `None` when the lock was held throughout
/// the wait.
///
/// # Panics
///
/// On an error, and when an acquire with a wait came back without the lock
/// well before the wait ended: the backend does not honour `Wait`.
pub(crate) async fn acquire(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    o: &AcquireOptions,
) -> Option<Lease> {
    let started = Instant::now();
    let got = match c.acquire(name, o).await {
        Ok(got) => got,
        Err(e) => panic!("[{case}] acquire of `{name}` failed: {e}"),
    };
    if got.is_none() {
        let took = started.elapsed();
        if let Wait::For(wait) = o.wait {
            assert!(
                took + Duration::from_millis(5) >= wait,
                "[{case}] an acquire of `{name}` with a wait of {wait:?} came back without the lock after only {took:?}: the backend does not honour `Wait`"
            );
        }
    }
    got
}

/// An acquire that must take the lock.
pub(crate) async fn must_acquire(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    o: &AcquireOptions,
) -> Lease {
    match acquire(case, c, name, o).await {
        Some(lease) => lease,
        None => panic!(
            "[{case}] expected to acquire `{name}` (wait {:?}), but it stayed held",
            o.wait
        ),
    }
}

/// A try-acquire that must find the lock held by someone else.
pub(crate) async fn must_be_held(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    ttl: Duration,
) {
    match c.acquire(name, &opts(ttl)).await {
        Ok(None) => {}
        Ok(Some(l)) => panic!(
            "[{case}] `{name}` should be held by another client, but was acquired again (fencing {})",
            l.fencing_token()
        ),
        Err(e) => panic!(
            "[{case}] try-acquire of held `{name}` errored instead of returning None: {e}"
        ),
    }
}

/// A release that must succeed.
pub(crate) async fn must_release(case: &str, c: &Arc<dyn DistributedLock>, lease: &Lease) {
    if let Err(e) = c.release(lease).await {
        panic!(
            "[{case}] release of a held lease of `{}` failed: {e}",
            lease.name()
        );
    }
}

/// `result` must be `NotHeld`; `what` says what was attempted.
#[track_caller]
pub(crate) fn assert_not_held(
    case: &str,
    result: distlock_core::Result<impl std::fmt::Debug>,
    what: &str,
) {
    match result {
        Err(LockError::NotHeld { .. }) => {}
        other => panic!("[{case}] {what}: expected NotHeld, got {other:?}"),
    }
}

/// A later holder's token must exceed an earlier one's, if the backend
/// claims `fencing`.
#[track_caller]
pub(crate) fn assert_fenced_after(case: &str, caps: &Capabilities, later: &Lease, earlier: &Lease) {
    assert!(
        !caps.fencing || later.fencing_token() > earlier.fencing_token(),
        "[{case}] backend claims `fencing` but a later holder of `{}` got token {} after {}",
        later.name(),
        later.fencing_token(),
        earlier.fencing_token()
    );
}

/// Checks a history for overlaps, and for tokens that fail to increase if
/// the backend claims `fencing`.
#[track_caller]
pub(crate) fn assert_history(case: &str, caps: &Capabilities, history: &History) {
    // Overlaps first: they are the worse news.
    let (overlaps, fencing): (Vec<Violation>, Vec<Violation>) = history
        .violations()
        .into_iter()
        .partition(|v| matches!(v, Violation::Overlap { .. }));
    let fencing = fencing.into_iter().filter(|_| caps.fencing);
    let found: Vec<String> = overlaps
        .into_iter()
        .chain(fencing)
        .take(5)
        .map(|v| match v {
            Violation::Overlap { .. } => v.to_string(),
            _ => format!("backend claims `fencing` but {v}"),
        })
        .collect();
    assert!(
        found.is_empty(),
        "[{case}] violations in {} holds: {}",
        history.len(),
        found.join("; ")
    );
}

/// How long `status` may take to show a waiter that started waiting.
const QUEUE_VISIBLE_WITHIN: Duration = Duration::from_secs(5);
/// The pause between waiters when `status` cannot show the queue.
const STAGGER: Duration = Duration::from_millis(150);

/// Waits until `status` shows at least `expected` waiters on `name`; for
/// backends whose status has no waiter count, pauses briefly instead.
pub(crate) async fn wait_until_queued(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    expected: usize,
) {
    let deadline = Instant::now() + QUEUE_VISIBLE_WITHIN;
    loop {
        let Some(seen) = queued(case, c, name).await else {
            tokio::time::sleep(STAGGER).await;
            return;
        };
        if seen >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "[{case}] waiter {expected} never showed in `status().waiters` (still {seen} after {QUEUE_VISIBLE_WITHIN:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The number of waiters `status` shows on `name`, if it shows them.
pub(crate) async fn queued(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
) -> Option<usize> {
    match c.status(name).await {
        Ok(status) => status.waiters,
        Err(LockError::Unsupported { .. }) => None,
        Err(e) => panic!("[{case}] status of `{name}` failed: {e}"),
    }
}

/// Re-raises a spawned task's panic with its own message.
pub(crate) fn joined<T>(case: &str, joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("[{case}] a task of the case was cancelled: {e}"),
    }
}
