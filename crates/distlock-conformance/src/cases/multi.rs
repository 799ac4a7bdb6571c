//! Multi-name locks: all or nothing, in one global order (no deadlock when
//! two clients take overlapping sets in opposite orders), and nothing left
//! held by a failed or cancelled attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{lock_order, DistributedLock, Lease, LockError, LockName, Wait};

use super::cancel::{assert_free, attempt_span, cancel_at, cancel_point, settle};
use super::support::{
    assert_fenced_after, child_name, clients, fast_backoff, joined, long_ttl, must_acquire,
    must_be_held, must_release, opts, queued, unique_name,
};
use crate::harness::Harness;

/// Rounds of the opposite-orders case.
const ROUNDS: usize = 20;
/// How long each client of a round may take to get both names: far more
/// than the round needs, far less than a deadlock lasts (until the wait
/// ends).
const ROUND_BOUND: Duration = Duration::from_secs(15);
/// The pause that stands in for "both clients wait" where `status` shows
/// no waiters.
const STAGGER: Duration = Duration::from_millis(150);
/// Cancellations of the cancellation case.
const CANCELLATIONS: usize = 30;

/// `count` names below a fresh base: `<base>/a`, `<base>/b`, …
fn names(case: &str, base: &str, count: u8) -> Vec<LockName> {
    let base = unique_name(base);
    (0..count)
        .map(|i| child_name(case, &base, &char::from(b'a' + i).to_string()))
        .collect()
}

/// A multi-name acquire that must not fail.
async fn acquire_many(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    names: &[LockName],
    wait: Wait,
) -> Option<Vec<Lease>> {
    let o = opts(long_ttl(&c.capabilities()))
        .with_wait(wait)
        .with_backoff(fast_backoff());
    match c.clone().acquire_many(names, &o).await {
        Ok(got) => got,
        Err(e) => panic!("[{case}] a multi-name acquire of {names:?} failed: {e}"),
    }
}

/// Releases every lease.
async fn release_all(case: &str, c: &Arc<dyn DistributedLock>, leases: &[Lease]) {
    for lease in leases {
        must_release(case, c, lease).await;
    }
}

/// Waits until `status` shows at least `expected` waiters over `names`
/// together; pauses briefly where it shows none.
async fn wait_until_waiting(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    names: &[LockName],
    expected: usize,
) {
    let deadline = Instant::now() + ROUND_BOUND;
    loop {
        let mut seen = 0;
        for name in names {
            let Some(n) = queued(case, c, name).await else {
                return tokio::time::sleep(STAGGER).await;
            };
            seen += n;
        }
        if seen >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "[{case}] {expected} waiters never showed on {names:?} (still {seen})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client that takes `names` (in the order given) within the round's
/// bound, and gives them back at once.
fn take_and_give_back(
    case: &'static str,
    c: Arc<dyn DistributedLock>,
    names: Vec<LockName>,
) -> tokio::task::JoinHandle<Option<Vec<Lease>>> {
    tokio::spawn(async move {
        let got = acquire_many(case, &c, &names, Wait::For(ROUND_BOUND)).await;
        if let Some(leases) = &got {
            release_all(case, &c, leases).await;
        }
        got
    })
}

/// Two clients take {a, b} and {b, a}, round after round, both waiting
/// while a third client holds both names and then freeing them at once: a
/// multi-name lock taken in the caller's order deadlocks (each holds the
/// name the other waits for until the wait ends); taken in one global
/// order, both get both names every round.
pub async fn multi_locks_in_opposite_orders_do_not_deadlock(h: &dyn Harness) {
    const CASE: &str = "multi_locks_in_opposite_orders_do_not_deadlock";
    let c = clients(h, 3).await;
    let ttl = long_ttl(&c[0].capabilities());
    let ab = names(CASE, "opposite-orders", 2);
    let ba: Vec<LockName> = ab.iter().rev().cloned().collect();
    let once = opts(ttl);
    for round in 0..ROUNDS {
        let held: Vec<Lease> =
            futures::future::join_all(ab.iter().map(|n| must_acquire(CASE, &c[0], n, &once))).await;
        let first = take_and_give_back(CASE, c[1].clone(), ab.clone());
        let second = take_and_give_back(CASE, c[2].clone(), ba.clone());
        wait_until_waiting(CASE, &c[0], &ab, 2).await;
        futures::future::join_all(held.iter().map(|l| must_release(CASE, &c[0], l))).await;
        for (who, task) in [("{a, b}", first), ("{b, a}", second)] {
            if joined(CASE, task.await).is_none() {
                panic!("[{CASE}] round {round}: the client taking {who} did not get both names within {ROUND_BOUND:?}: the names are not taken in one global order (two clients taking them in opposite orders deadlocked)");
            }
        }
    }
}

/// A multi-name acquire is all or nothing: with one name held by a third
/// party it gets none (tried once, or waited for) and leaves the others
/// free; once free it gets every name once, in the global order, each
/// held, each token above the earlier holder's; an empty set is refused.
pub async fn multi_lock_is_all_or_nothing(h: &dyn Harness) {
    const CASE: &str = "multi_lock_is_all_or_nothing";
    let c = clients(h, 3).await;
    let caps = c[0].capabilities();
    let ttl = long_ttl(&caps);
    let abc = names(CASE, "all-or-nothing", 3);
    let asked = vec![
        abc[2].clone(),
        abc[0].clone(),
        abc[1].clone(),
        abc[0].clone(),
    ];
    let blocker = must_acquire(CASE, &c[2], &abc[1], &opts(ttl)).await;
    for wait in [Wait::NoWait, Wait::For(Duration::from_millis(300))] {
        if let Some(got) = acquire_many(CASE, &c[0], &asked, wait).await {
            panic!(
                "[{CASE}] a multi-name acquire with `{}` held by another client got {got:?}",
                abc[1]
            );
        }
        for free in [&abc[0], &abc[2]] {
            let lease = match c[1].acquire(free, &opts(ttl)).await {
                Ok(Some(lease)) => lease,
                other => panic!("[{CASE}] after a multi-name acquire failed ({wait:?}), `{free}` was not free: {other:?}: it kept a name although it did not get them all"),
            };
            must_release(CASE, &c[1], &lease).await;
        }
    }
    must_release(CASE, &c[2], &blocker).await;
    let Some(got) = acquire_many(CASE, &c[0], &asked, Wait::NoWait).await else {
        panic!("[{CASE}] a multi-name acquire of free names got nothing");
    };
    let taken: Vec<LockName> = got.iter().map(|l| l.name().clone()).collect();
    assert_eq!(
        taken,
        lock_order(&asked),
        "[{CASE}] the leases are not one per name, in the global order"
    );
    for lease in &got {
        must_be_held(CASE, &c[1], lease.name(), ttl).await;
    }
    assert_fenced_after(CASE, &caps, &got[1], &blocker);
    release_all(CASE, &c[0], &got).await;
    for name in &abc {
        let lease = must_acquire(CASE, &c[1], name, &opts(ttl)).await;
        must_release(CASE, &c[1], &lease).await;
    }
    let r = c[0].clone().acquire_many(&[], &opts(ttl)).await;
    assert!(
        matches!(r, Err(LockError::InvalidName { .. })),
        "[{CASE}] a multi-name acquire of no names gave {r:?}, not InvalidName"
    );
}

/// Multi-name acquires dropped at random points — with every name free,
/// or with the last held elsewhere so the acquire waits holding the others
/// — leave nothing held: afterwards every name is free (clean-ups still in
/// flight allowed the harness's waiter-liveness window).
pub async fn cancelled_multi_locks_leave_nothing_held(h: &dyn Harness) {
    const CASE: &str = "cancelled_multi_locks_leave_nothing_held";
    let c = clients(h, 3).await;
    let ttl = long_ttl(&c[0].capabilities());
    let abc = names(CASE, "multi-cancel", 3);
    let span = attempt_span(CASE, &c[0], &abc[0], &opts(ttl)).await * 6 + Duration::from_millis(20);
    let mut cancelled = 0;
    for i in 0..CANCELLATIONS {
        let blocker = match i % 2 {
            0 => None,
            _ => Some(must_acquire(CASE, &c[2], &abc[2], &opts(ttl)).await),
        };
        let o = opts(ttl)
            .with_wait(Wait::For(Duration::from_secs(30)))
            .with_backoff(fast_backoff());
        match cancel_at(cancel_point(i, span), c[0].clone().acquire_many(&abc, &o)).await {
            Some(Ok(Some(leases))) if blocker.is_none() => release_all(CASE, &c[0], &leases).await,
            Some(other) => panic!("[{CASE}] multi-name acquire {i} ended with {other:?}"),
            None => cancelled += 1,
        }
        if let Some(blocker) = blocker {
            must_release(CASE, &c[2], &blocker).await;
        }
        let after = format!("after multi-name acquire {i} was cancelled");
        for name in &abc {
            assert_free(CASE, &c[1], name, settle(h), &after).await;
        }
    }
    println!("[{CASE}] {cancelled} of {CANCELLATIONS} multi-name acquires cancelled");
}
