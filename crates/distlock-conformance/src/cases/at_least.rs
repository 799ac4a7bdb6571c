//! Lock-at-least-for: a lock released before its minimum — by a release,
//! by a dropped guard, or by a process that released and exited — stays
//! held until the minimum has passed since it was acquired, kept by the
//! server; one released after its minimum is free at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, Capabilities, DistributedLock, FencingToken, Lease, LockClient, LockError,
    LockName, Wait,
};

use super::support::{
    acquire, fast_backoff, long_ttl, must, must_acquire, must_release, opts, skip, unique_name,
};
use crate::child::{report, told, ChildProcess};
use crate::harness::Harness;

/// The minimum of the in-process case.
const MINIMUM: Duration = Duration::from_secs(2);
/// The minimum of the cross-process case: the child's exit must fit well
/// inside it.
const PROCESS_MINIMUM: Duration = Duration::from_secs(3);
/// How long after its minimum a lock may take to be granted to a waiter.
const FREED_WITHIN: Duration = Duration::from_secs(5);

/// `minimum`, within what the backend accepts, and options carrying it.
fn with_minimum(caps: &Capabilities, minimum: Duration) -> AcquireOptions {
    let ttl = long_ttl(caps);
    opts(ttl).with_at_least(minimum.clamp(caps.min_ttl, ttl))
}

/// `name` must stay held until `until`, then be granted to `b`; the
/// grant's token rises above the released hold's `earlier`.
async fn assert_held_until(
    case: &str,
    b: &Arc<dyn DistributedLock>,
    (name, earlier): (&LockName, FencingToken),
    until: Instant,
    how: &str,
) {
    let caps = b.capabilities();
    let ttl = long_ttl(&caps);
    if Instant::now() < until {
        match b.acquire(name, &opts(ttl)).await {
            Ok(None) => {}
            Ok(Some(got)) => panic!(
                "[{case}] backend claims `at_least` but a lock {how} before its minimum was free at once (granted again {:?} before the minimum ended, token {})",
                until.saturating_duration_since(Instant::now()),
                got.fencing_token()
            ),
            Err(e) => panic!("[{case}] a try-acquire of `{name}` failed: {e}"),
        }
    }
    let bound = until.saturating_duration_since(Instant::now()) + FREED_WITHIN;
    let o = opts(ttl)
        .with_wait(Wait::For(bound))
        .with_backoff(fast_backoff());
    let Some(got) = acquire(case, b, name, &o).await else {
        panic!("[{case}] a lock {how} was not free within {FREED_WITHIN:?} after its minimum");
    };
    let at = Instant::now();
    assert!(
        at >= until,
        "[{case}] backend claims `at_least` but a lock {how} was granted again {:?} before its minimum ended",
        until - at
    );
    println!(
        "[{case}] a lock {how} was granted again {:?} after its minimum",
        at.saturating_duration_since(until)
    );
    assert!(
        !caps.fencing || got.fencing_token() > earlier,
        "[{case}] backend claims `fencing` but the next holder got token {} after {earlier}",
        got.fencing_token()
    );
    must_release(case, b, &got).await;
}

/// The minimum a lease carries.
fn until(case: &str, lease: &Lease) -> Instant {
    lease.hold_until().unwrap_or_else(|| {
        panic!("[{case}] a lease acquired with a minimum does not say until when it is held")
    })
}

/// A lock acquired with a minimum and released (or its guard dropped) at
/// once stays held until the minimum has passed since the acquire, then
/// goes to a waiter; one released after its minimum is free at once. A
/// minimum over the ttl is `InvalidOptions`; without `at_least`, any
/// minimum is `Unsupported`.
pub async fn released_lock_is_held_at_least_for_its_minimum(h: &dyn Harness) {
    const CASE: &str = "released_lock_is_held_at_least_for_its_minimum";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let name = unique_name("at-least");
    let o = with_minimum(&caps, MINIMUM);
    if !caps.at_least {
        let r = a.acquire(&name, &o).await;
        assert!(
            matches!(r, Err(LockError::Unsupported { .. })),
            "[{CASE}] backend does not claim `at_least` but an acquire with a minimum gave {r:?} instead of Unsupported"
        );
        return skip(CASE, "backend keeps no minimum (at_least = false)");
    }
    let over = o.with_at_least(o.ttl + Duration::from_millis(1));
    let r = a.acquire(&name, &over).await;
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "[{CASE}] a minimum over the ttl gave {r:?}, not InvalidOptions"
    );
    let lease = must_acquire(CASE, &a, &name, &o).await;
    must_release(CASE, &a, &lease).await;
    let held = (&name, lease.fencing_token());
    assert_held_until(CASE, &b, held, until(CASE, &lease), "released").await;
    let guard = must(
        CASE,
        "a guard",
        LockClient::new(a.clone()).lock_with(&name, &o).await,
    );
    let lease = guard.lease();
    drop(guard);
    let held = (&name, lease.fencing_token());
    assert_held_until(
        CASE,
        &b,
        held,
        until(CASE, &lease),
        "whose guard was dropped",
    )
    .await;
    released_after_the_minimum(CASE, &a, &b, &name).await;
}

/// Released once its minimum has passed, a lock is free at once.
async fn released_after_the_minimum(
    case: &str,
    a: &Arc<dyn DistributedLock>,
    b: &Arc<dyn DistributedLock>,
    name: &LockName,
) {
    let o = with_minimum(&a.capabilities(), Duration::from_millis(100));
    let lease = must_acquire(case, a, name, &o).await;
    tokio::time::sleep_until(until(case, &lease).into()).await;
    must_release(case, a, &lease).await;
    let ttl = o.ttl;
    match b.acquire(name, &opts(ttl)).await {
        Ok(Some(got)) => must_release(case, b, &got).await,
        other => panic!(
            "[{case}] a lock released after its minimum had passed was not free at once: {other:?}"
        ),
    }
}

/// Environment variable that turns a test process into the child of
/// [`lock_is_held_at_least_after_its_holder_exits`] (its value: the lock).
const CHILD_AT_LEAST_ENV: &str = "DISTLOCK_CONFORMANCE_CHILD_AT_LEAST";
/// The child is up and waits to be told to go.
const READY_MARK: &str = "DISTLOCK-CHILD-READY";
/// The child took the lock and released it (its token follows).
const RELEASED_MARK: &str = "DISTLOCK-CHILD-RELEASED";

/// A child process, once told to go, takes the lock with a minimum,
/// releases it at once and exits: the lock stays held — no process keeps
/// it — until the minimum has passed since the parent said go.
pub async fn lock_is_held_at_least_after_its_holder_exits(h: &dyn Harness, test_path: &str) {
    const CASE: &str = "lock_is_held_at_least_after_its_holder_exits";
    if let Ok(name) = std::env::var(CHILD_AT_LEAST_ENV) {
        return child_releases_early(h, &name).await;
    }
    let b = h.client().await;
    let caps = b.capabilities();
    if !caps.cross_process {
        return skip(CASE, "backend is in-process only (cross_process = false)");
    }
    if !caps.at_least {
        return skip(CASE, "backend keeps no minimum (at_least = false)");
    }
    let name = unique_name("at-least-exit");
    let env = [(CHILD_AT_LEAST_ENV, name.as_str())];
    let mut child = ChildProcess::spawn(CASE, test_path, &env, true);
    child.mark(READY_MARK).await;
    // The child's lease is granted after this: its minimum ends after `until`.
    let until = Instant::now()
        + with_minimum(&caps, PROCESS_MINIMUM)
            .at_least
            .unwrap_or_default();
    child.tell("go").await;
    let token = child.number(RELEASED_MARK).await;
    child.exited().await;
    if Instant::now() >= until {
        println!("[{CASE}] the child took until past its minimum to exit: only the grant time is checked");
    }
    let held = (&name, FencingToken(token));
    let how = "released by a process that then exited";
    assert_held_until(CASE, &b, held, until, how).await;
}

/// The child's part: wait for the word, take the lock with a minimum,
/// release it, say so, exit.
async fn child_releases_early(h: &dyn Harness, name: &str) {
    const CASE: &str = "lock_is_held_at_least_after_its_holder_exits";
    let c = h.client().await;
    let name = must(CASE, "the child's lock name", LockName::new(name));
    report(READY_MARK, "-");
    told(CASE).await;
    let o = with_minimum(&c.capabilities(), PROCESS_MINIMUM);
    let lease = must_acquire(CASE, &c, &name, &o).await;
    must_release(CASE, &c, &lease).await;
    report(RELEASED_MARK, lease.fencing_token());
}
