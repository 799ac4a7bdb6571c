//! Semaphores: at most `limit` holders of a name at once, permits handed
//! out in order where the backend queues, counts that must agree, and the
//! same cancellation and liveness promises as the mutex.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockClient, LockError, LockName, Mode, Wait};

use super::cancel::{attempt_span, cancel_at, cancel_point, settle};
use super::modes::{
    acquire_in, assert_fencing_order, contend, most_at_once, must_acquire_in, must_wait_in,
};
use super::support::{
    clients, fast_backoff, long_ttl, must_release, opts, short_ttl, skip, unique_name,
};
use crate::harness::Harness;

/// Permits of the semaphores in these cases.
const PERMITS: u32 = 3;
/// Contending clients.
const CLIENTS: usize = 8;
/// Rounds per client.
const ROUNDS: usize = 6;

fn permits(n: u32) -> Mode {
    Mode::Permit { limit: n }
}

/// Eight clients contend for three permits: never more than three hold at
/// once, more than one does at some moment (it is a semaphore, not a
/// mutex), and fencing tokens rise over every grant.
pub async fn permits_are_never_exceeded(h: &dyn Harness) {
    const CASE: &str = "permits_are_never_exceeded";
    let all = clients(h, CLIENTS).await;
    let caps = all[0].capabilities();
    if !caps.semaphore {
        return skip(CASE, "backend serves no semaphores (semaphore = false)");
    }
    let name = unique_name("permits");
    let ttl = long_ttl(&caps);
    let hold = Duration::from_millis(15);
    let holds = contend(CASE, all, &name, ttl, ROUNDS, hold, |_, _| permits(PERMITS)).await;
    let most = most_at_once(&holds, |_| true);
    assert!(
        most <= PERMITS as usize,
        "[{CASE}] {most} clients held `{name}` at once, with {PERMITS} permits"
    );
    assert!(
        most >= 2,
        "[{CASE}] with {CLIENTS} clients on {PERMITS} permits, never two held at once: the semaphore behaves as a mutex"
    );
    if caps.fencing {
        assert_fencing_order(CASE, &holds);
    }
    println!("[{CASE}] {} holds, at most {most} at once", holds.len());
}

/// Every client of a name must declare the same permit count: another
/// count is refused at once with `PermitMismatch`, and zero permits are
/// refused before anything is sent.
pub async fn permit_counts_must_agree(h: &dyn Harness) {
    const CASE: &str = "permit_counts_must_agree";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.semaphore {
        return skip(CASE, "backend serves no semaphores (semaphore = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("permit-count");
    let held = must_acquire_in(CASE, &a, &name, permits(2), &opts(ttl)).await;
    let wait = Duration::from_secs(5);
    let started = Instant::now();
    let r = b
        .acquire_as(&name, permits(3), &opts(ttl).with_wait(Wait::For(wait)))
        .await;
    match r {
        Err(LockError::PermitMismatch {
            declared: 2,
            requested: 3,
            ..
        }) => {}
        other => panic!(
            "[{CASE}] a 3-permit request on a name held with 2 permits gave {other:?}, not PermitMismatch"
        ),
    }
    assert!(
        started.elapsed() < wait,
        "[{CASE}] the mismatched request waited out its wait before it was refused"
    );
    // The same count is served beside it.
    let second = must_acquire_in(CASE, &b, &name, permits(2), &opts(ttl)).await;
    must_release(CASE, &a, &held).await;
    must_release(CASE, &b, &second).await;
    // Zero permits: refused by the layer and by the client API.
    let r = a.acquire_as(&name, permits(0), &opts(ttl)).await;
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "[{CASE}] a zero-permit acquire gave {r:?}, not InvalidOptions"
    );
    let r = LockClient::new(a.clone()).semaphore(name.clone(), 0);
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "[{CASE}] `semaphore(name, 0)` gave {r:?}, not InvalidOptions"
    );
    // Once nobody holds it, another count may be used.
    let fresh = must_acquire_in(CASE, &b, &name, permits(3), &opts(ttl)).await;
    must_release(CASE, &b, &fresh).await;
}

/// A holder that stops extending (crashed, paused) gives its permit back
/// when its ttl ends — not before.
pub async fn abandoned_permit_returns_after_ttl(h: &dyn Harness) {
    const CASE: &str = "abandoned_permit_returns_after_ttl";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.semaphore {
        return skip(CASE, "backend serves no semaphores (semaphore = false)");
    }
    if !caps.ttl_expiry {
        return skip(
            CASE,
            "liveness is a session: permit_returns_when_holder_is_killed covers it",
        );
    }
    let (short, long) = (short_ttl(&caps), long_ttl(&caps));
    let name = unique_name("abandoned-permit");
    let kept = must_acquire_in(CASE, &a, &name, permits(2), &opts(long)).await;
    let abandoned = must_acquire_in(CASE, &a, &name, permits(2), &opts(short)).await;
    must_wait_in(CASE, &b, &name, permits(2), long, "both permits are held").await;
    let bound = short + Duration::from_secs(5);
    let o = opts(long).with_wait(Wait::For(bound));
    let got = acquire_in(CASE, &b, &name, permits(2), &o)
        .await
        .unwrap_or_else(|| {
            panic!("[{CASE}] backend claims `ttl_expiry` but an abandoned permit with a ttl of {short:?} did not return within {bound:?}")
        });
    let at = Instant::now();
    assert!(
        at >= abandoned.valid_until(),
        "[{CASE}] a permit was granted {:?} before the abandoned one's validity ended",
        abandoned.valid_until() - at
    );
    if caps.fencing {
        assert!(
            got.fencing_token() > abandoned.fencing_token(),
            "[{CASE}] backend claims `fencing` but the returned permit's token {} is not above {}",
            got.fencing_token(),
            abandoned.fencing_token()
        );
    }
    must_release(CASE, &a, &kept).await;
    must_release(CASE, &b, &got).await;
}

/// Permit acquires cancelled at random points, while every permit is held
/// and on a free semaphore, leave nothing held and nothing queued: the
/// queued waiters get their permits when the holders leave, and then a
/// fresh client takes every permit.
pub async fn cancelled_permit_acquires_leave_nothing_held(h: &dyn Harness) {
    const CASE: &str = "cancelled_permit_acquires_leave_nothing_held";
    let caps = h.client().await.capabilities();
    if !caps.semaphore {
        return skip(CASE, "backend serves no semaphores (semaphore = false)");
    }
    let name = unique_name("cancel-permit");
    cancel_while_full(CASE, h, &name).await;
    for i in 0..20 {
        cancel_free(CASE, h, &name, i).await;
    }
    assert_all_permits_free(CASE, h, &name).await;
}

/// Both permits held, a waiter queued: cancelled acquires must not keep
/// the waiter (or a fresh client after it) from its permit.
async fn cancel_while_full(case: &'static str, h: &dyn Harness, name: &LockName) {
    let (holder, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&holder.capabilities());
    let span = attempt_span(case, &b, name, &opts(ttl)).await * 2 + Duration::from_millis(20);
    let held = [
        must_acquire_in(case, &holder, name, permits(2), &opts(ttl)).await,
        must_acquire_in(case, &holder, name, permits(2), &opts(ttl)).await,
    ];
    let waiter = spawn_waiter(case, h.client().await, name.clone(), ttl);
    for i in 0..20 {
        let o = opts(ttl)
            .with_wait(Wait::For(Duration::from_secs(30)))
            .with_backoff(fast_backoff());
        if let Some(r) = cancel_at(cancel_point(i, span), b.acquire_as(name, permits(2), &o)).await
        {
            panic!(
                "[{case}] a permit acquire on a full semaphore ended with {r:?} instead of waiting"
            );
        }
    }
    for lease in &held {
        must_release(case, &holder, lease).await;
    }
    let bound = settle(h) + Duration::from_secs(2);
    match tokio::time::timeout(bound, waiter).await {
        Ok(done) => super::support::joined(case, done),
        Err(_) => panic!("[{case}] the waiter queued behind cancelled permit acquires got no permit within {bound:?} of the release"),
    }
}

/// A waiter that takes a permit within a minute and gives it back.
fn spawn_waiter(
    case: &'static str,
    c: Arc<dyn DistributedLock>,
    name: LockName,
    ttl: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let o = opts(ttl)
            .with_wait(Wait::For(Duration::from_secs(60)))
            .with_backoff(fast_backoff());
        let lease = must_acquire_in(case, &c, &name, permits(2), &o).await;
        must_release(case, &c, &lease).await;
    })
}

/// One acquire on a free semaphore, cancelled at a random point.
async fn cancel_free(case: &'static str, h: &dyn Harness, name: &LockName, i: usize) {
    let b = h.client().await;
    let ttl = long_ttl(&b.capabilities());
    let span = Duration::from_millis(30);
    let o: AcquireOptions = opts(ttl);
    if let Some(Some(lease)) = cancel_at(cancel_point(i, span), b.acquire_as(name, permits(2), &o))
        .await
        .map(|r| r.unwrap_or_else(|e| panic!("[{case}] permit acquire failed: {e}")))
    {
        must_release(case, &b, &lease).await;
    }
}

/// A fresh client takes both permits (allowing clean-ups in flight to
/// land) and a third is refused.
async fn assert_all_permits_free(case: &'static str, h: &dyn Harness, name: &LockName) {
    let c = h.client().await;
    let ttl = long_ttl(&c.capabilities());
    let o = opts(ttl)
        .with_wait(Wait::For(settle(h)))
        .with_backoff(fast_backoff());
    let mut held = Vec::new();
    for n in 1..=2 {
        match acquire_in(case, &c, name, permits(2), &o).await {
            Some(lease) => held.push(lease),
            None => panic!("[{case}] after the cancellations, permit {n} of 2 stayed taken for {:?}: a cancelled acquire leaked a permit", settle(h)),
        }
    }
    must_wait_in(case, &c, name, permits(2), ttl, "both permits are held").await;
    for lease in &held {
        must_release(case, &c, lease).await;
    }
}
