//! Cancellation: a dropped acquire — mid-wait, mid-attempt, at any moment —
//! leaves nothing held and nothing queued.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use rand::Rng;

use super::support::{
    acquire, fast_backoff, joined, long_ttl, must_acquire, must_release, opts, queued, unique_name,
    wait_until_queued,
};
use crate::harness::Harness;

/// Dropping an in-flight acquire leaves nothing held and nothing queued.
pub async fn cancelled_acquire_leaves_nothing_held(h: &dyn Harness) {
    const CASE: &str = "cancelled_acquire_leaves_nothing_held";
    let (a, b, c) = (h.client().await, h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("cancelled");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    // B waits, then gives up by dropping its future mid-wait.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        b.acquire(
            &name,
            &opts(ttl).with_wait(Wait::For(Duration::from_secs(20))),
        ),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "[{CASE}] B's acquire should still have been waiting, got {cancelled:?}"
    );
    must_release(CASE, &a, &lease).await;
    // Neither a zombie holder nor a zombie queue entry may stand in C's way.
    let o = opts(ttl).with_wait(Wait::For(h.waiter_liveness() + SETTLE_SLACK));
    let got = acquire(CASE, &c, &name, &o).await.unwrap_or_else(|| {
        panic!("[{CASE}] a cancelled acquire left the lock held or its queue stuck")
    });
    must_release(CASE, &c, &got).await;
    // And B's client is not stuck either.
    let lb = must_acquire(CASE, &b, &name, &opts(ttl)).await;
    must_release(CASE, &b, &lb).await;
}

/// Cancellations on a free lock: enough to catch a backend that leaks a
/// hold in a fraction of them.
const ON_FREE: usize = 100;
/// Cancellations on a held lock with waiters queued.
const ON_HELD: usize = 30;
/// Added to the waiter-liveness window for the round trips of a clean-up.
const SETTLE_SLACK: Duration = Duration::from_millis(500);

/// How long a clean-up may take to land: the harness's waiter-liveness
/// window plus round trips.
pub(crate) fn settle(h: &dyn Harness) -> Duration {
    h.waiter_liveness() + SETTLE_SLACK
}

/// Where an acquire is dropped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CancelPoint {
    /// After this many polls, or when `within` passed if that comes first
    /// (a waiting acquire is polled only when woken): one poll is right
    /// after the first requests went out, before any answer was read; more
    /// reach further into the attempt whatever its speed.
    Polls {
        /// Polls before the drop.
        polls: usize,
        /// The latest moment of the drop.
        within: Duration,
    },
    /// When this much time has passed (zero: after the first poll).
    After(Duration),
}

impl fmt::Display for CancelPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelPoint::Polls { polls, within } => {
                write!(f, "after {polls} poll(s) (or {within:?})")
            }
            CancelPoint::After(d) => write!(f, "after {d:?}"),
        }
    }
}

/// Every tenth point at once; of the others, half after a random number
/// of polls (often just one), half at a random moment within `span`.
pub(crate) fn cancel_point(i: usize, span: Duration) -> CancelPoint {
    let mut rng = rand::thread_rng();
    match i % 10 {
        0 => CancelPoint::After(Duration::ZERO),
        // Half of these right after the first poll: mid-attempt for a
        // backend whose attempt is one round trip.
        n if n % 2 == 1 => CancelPoint::Polls {
            polls: if rng.gen_bool(0.5) {
                1
            } else {
                rng.gen_range(2..=8)
            },
            within: span,
        },
        _ => CancelPoint::After(rng.gen_range(Duration::ZERO..=span)),
    }
}

/// Runs `fut` until `point`; `None` if it was dropped there unfinished.
pub(crate) async fn cancel_at<F: Future>(point: CancelPoint, fut: F) -> Option<F::Output> {
    match point {
        CancelPoint::After(d) => tokio::time::timeout(d, fut).await.ok(),
        CancelPoint::Polls { polls, within } => {
            let mut fut = std::pin::pin!(fut);
            let mut left = polls;
            let polled = std::future::poll_fn(move |cx| {
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                left -= 1;
                if left == 0 {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            });
            tokio::time::timeout(within, polled).await.ok().flatten()
        }
    }
}

/// The longest of a few uncontended acquires: the span of one attempt.
pub(crate) async fn attempt_span(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    o: &AcquireOptions,
) -> Duration {
    let mut longest = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let lease = must_acquire(case, c, name, o).await;
        longest = longest.max(started.elapsed());
        must_release(case, c, &lease).await;
    }
    longest.max(Duration::from_millis(1))
}

/// The lock must be free for a fresh client: tried at once, then — to let
/// clean-ups that are still in flight land — waited for up to `settle`.
pub(crate) async fn assert_free(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    settle: Duration,
    after: &str,
) {
    let ttl = long_ttl(&c.capabilities());
    let lease = match acquire(case, c, name, &opts(ttl)).await {
        Some(lease) => lease,
        None => {
            let o = opts(ttl)
                .with_wait(Wait::For(settle))
                .with_backoff(fast_backoff());
            acquire(case, c, name, &o).await.unwrap_or_else(|| {
                panic!("[{case}] {after}, the lock was still held {settle:?} later: a cancelled acquire leaked a hold or a queue place")
            })
        }
    };
    must_release(case, c, &lease).await;
}

/// Cancels acquires on a free lock at random moments, checking after each
/// that the lock is free.
async fn cancel_on_a_free_lock(case: &str, h: &dyn Harness, name: &LockName) {
    let (b, checker) = (h.client().await, h.client().await);
    let ttl = long_ttl(&b.capabilities());
    let span = attempt_span(case, &b, name, &opts(ttl)).await * 2;
    let mut cancelled = 0;
    for i in 0..ON_FREE {
        let at = cancel_point(i, span);
        // Half try once, half would wait.
        let o = match i % 2 {
            0 => opts(ttl),
            _ => opts(ttl)
                .with_wait(Wait::For(settle(h)))
                .with_backoff(fast_backoff()),
        };
        match cancel_at(at, b.acquire(name, &o)).await {
            Some(Ok(Some(lease))) => must_release(case, &b, &lease).await,
            // Held by the clean-up of an earlier cancellation: checked below.
            Some(Ok(None)) => {}
            Some(Err(e)) => panic!("[{case}] acquire {i} on a free lock failed: {e}"),
            None => cancelled += 1,
        }
        let after = format!("after acquire {i} of {ON_FREE} on a free lock was cancelled {at}");
        assert_free(case, &checker, name, settle(h), &after).await;
    }
    println!("[{case}] {cancelled} of {ON_FREE} acquires on a free lock cancelled (attempts take up to {:?})", span / 2);
}

/// A waiter that notes when it got the lock, then releases it.
fn queued_waiter(
    case: &'static str,
    c: Arc<dyn DistributedLock>,
    name: LockName,
    ttl: Duration,
) -> tokio::task::JoinHandle<Instant> {
    tokio::spawn(async move {
        let o = opts(ttl)
            .with_wait(Wait::For(Duration::from_secs(60)))
            .with_backoff(fast_backoff());
        let lease = must_acquire(case, &c, &name, &o).await;
        let at = Instant::now();
        must_release(case, &c, &lease).await;
        at
    })
}

/// Waits until `status` (where it shows waiters) counts exactly `expected`
/// waiters again once the cancelled ones are gone.
async fn assert_queue_settles(
    case: &'static str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    expected: usize,
    settle: Duration,
) {
    let deadline = Instant::now() + settle;
    loop {
        let Some(seen) = queued(case, c, name).await else {
            return;
        };
        if seen == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "[{case}] {seen} waiters queued {settle:?} after the cancellations, but only {expected} are waiting: cancelled acquires left queue entries"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Cancels waiting acquires on a held lock while two waiters are queued,
/// then checks the queue hands the lock on: to the two, to a third that
/// queued after the cancellations, and to a fresh client.
async fn cancel_on_a_held_lock(case: &'static str, h: &dyn Harness, name: &LockName) {
    let (holder, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&holder.capabilities());
    let span = attempt_span(case, &b, name, &opts(ttl)).await * 2 + Duration::from_millis(20);
    let lease = must_acquire(case, &holder, name, &opts(ttl)).await;
    let mut waiters = Vec::new();
    for number in 1..=2 {
        waiters.push(queued_waiter(case, h.client().await, name.clone(), ttl));
        wait_until_queued(case, &holder, name, number).await;
    }
    for i in 0..ON_HELD {
        let at = cancel_point(i, span);
        let o = opts(ttl)
            .with_wait(Wait::For(Duration::from_secs(30)))
            .with_backoff(fast_backoff());
        match cancel_at(at, acquire(case, &b, name, &o)).await {
            Some(Some(l)) => panic!(
                "[{case}] acquired a held lock (fencing {})",
                l.fencing_token()
            ),
            Some(None) => {
                panic!("[{case}] a 30 s wait on a held lock ended without the lock {at}")
            }
            None => {}
        }
    }
    assert_queue_settles(case, &holder, name, 2, settle(h)).await;
    waiters.push(queued_waiter(case, h.client().await, name.clone(), ttl));
    wait_until_queued(case, &holder, name, 3).await;
    let released_at = Instant::now();
    must_release(case, &holder, &lease).await;
    let bound = settle(h) + Duration::from_secs(2);
    let all = futures::future::join_all(waiters);
    let Ok(done) = tokio::time::timeout(bound, all).await else {
        panic!("[{case}] the waiters queued around {ON_HELD} cancelled acquires did not all get the lock within {bound:?} of its release: cancelled acquires left the queue stuck");
    };
    for at in done {
        let at = joined(case, at);
        assert!(at >= released_at, "[{case}] a waiter got a held lock");
    }
    let fresh = h.client().await;
    assert_free(
        case,
        &fresh,
        name,
        settle(h),
        "once the waiters were served",
    )
    .await;
    let lb = must_acquire(case, &b, name, &opts(ttl)).await;
    must_release(case, &b, &lb).await;
}

/// Acquires cancelled at random points — at once (after the first poll),
/// after a random number of polls (mid-attempt, whatever the backend's
/// speed), after a random fraction of an attempt's time, mid-wait — on a
/// free lock and on a held lock with waiters
/// queued, leave nothing held and nothing queued: afterwards a fresh client
/// takes the lock at once (allowing clean-ups still in flight the
/// harness's waiter-liveness window), and the queue hands it on.
pub async fn cancelled_acquires_at_random_points_leave_nothing_held(h: &dyn Harness) {
    const CASE: &str = "cancelled_acquires_at_random_points_leave_nothing_held";
    let name = unique_name("random-cancel");
    cancel_on_a_free_lock(CASE, h, &name).await;
    cancel_on_a_held_lock(CASE, h, &name).await;
}
