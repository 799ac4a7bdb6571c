//! Waiting: the wait is honoured, a release hands the lock to a waiter
//! (promptly where notification is claimed, in arrival order where FIFO is
//! claimed), and under contention nobody overlaps and nobody starves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::{Backoff, DistributedLock, Lease, LockName, Wait};

use super::support::{
    acquire, assert_fenced_after, assert_history, clients, joined, long_ttl, must_acquire,
    must_release, opts, short_ttl, skip, unique_name, wait_until_queued,
};
use crate::harness::Harness;
use crate::workload::Contention;

/// A bounded wait on a held lock returns `None` after the wait, not early and
/// not much late.
pub async fn wait_timeout_is_honoured(h: &dyn Harness) {
    const CASE: &str = "wait_timeout_is_honoured";
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("wait-timeout");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let wait = Duration::from_millis(700);
    let start = Instant::now();
    let got = match b
        .acquire(&name, &opts(ttl).with_wait(Wait::For(wait)))
        .await
    {
        Ok(got) => got,
        Err(e) => panic!("[{CASE}] acquire with a wait: {e}"),
    };
    let took = start.elapsed();
    assert!(got.is_none(), "[{CASE}] acquired a lock that was held");
    assert!(
        took >= wait,
        "[{CASE}] gave up early: after {took:?}, wait was {wait:?}"
    );
    assert!(
        took < wait + Duration::from_millis(1500),
        "[{CASE}] gave up much too late: after {took:?}, wait was {wait:?}"
    );
    must_release(CASE, &a, &lease).await;
}

/// A waiter gets the lock once the holder releases it.
pub async fn waiter_acquires_after_release(h: &dyn Harness) {
    const CASE: &str = "waiter_acquires_after_release";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let ttl = long_ttl(&caps);
    let name = unique_name("waiter");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let waiter = {
        let (b, name) = (b.clone(), name.clone());
        let o = opts(ttl).with_wait(Wait::For(Duration::from_secs(20)));
        tokio::spawn(async move { acquire(CASE, &b, &name, &o).await })
    };
    // Let the waiter start waiting; the assertion holds either way.
    wait_until_queued(CASE, &a, &name, 1).await;
    let released_at = Instant::now();
    must_release(CASE, &a, &lease).await;
    let got = joined(CASE, waiter.await).unwrap_or_else(|| {
        panic!("[{CASE}] the waiter did not get the lock within its wait after the release")
    });
    assert!(
        released_at.elapsed() < ttl / 2,
        "[{CASE}] the waiter only got the lock near the holder's ttl, not on release"
    );
    assert_fenced_after(CASE, &caps, &got, &lease);
    must_release(CASE, &b, &got).await;
}

/// A waiter granted the lock after waiting longer than its ttl gets a live
/// lease: its validity counts from the grant, not from when it began to
/// wait.
pub async fn lease_granted_after_a_long_wait_is_live(h: &dyn Harness) {
    const CASE: &str = "lease_granted_after_a_long_wait_is_live";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let ttl = short_ttl(&caps);
    let name = unique_name("long-wait");
    let lease = must_acquire(CASE, &a, &name, &opts(long_ttl(&caps))).await;
    let waiter = {
        let (b, name) = (b.clone(), name.clone());
        let o = opts(ttl).with_wait(Wait::For(Duration::from_secs(30)));
        tokio::spawn(async move { acquire(CASE, &b, &name, &o).await })
    };
    wait_until_queued(CASE, &a, &name, 1).await;
    // The scenario, not a synchronisation: the holder keeps the lock for
    // longer than the waiter's ttl.
    tokio::time::sleep(ttl * 2).await;
    must_release(CASE, &a, &lease).await;
    let got = joined(CASE, waiter.await).unwrap_or_else(|| {
        panic!("[{CASE}] the waiter did not get the lock within its wait after the release")
    });
    let left = got.valid_until().saturating_duration_since(Instant::now());
    assert!(
        !left.is_zero(),
        "[{CASE}] the lease was already expired when it was granted: its validity \
         counted from the start of the wait, not from the grant"
    );
    if let Err(e) = b.extend(&got, ttl).await {
        panic!("[{CASE}] the lease granted after a long wait could not be extended: {e}");
    }
    must_release(CASE, &b, &got).await;
}

/// Backends that claim notification wake a waiter promptly on release, even
/// when its backoff policy would make a polling loop sleep for seconds.
pub async fn wake_up_follows_release_promptly(h: &dyn Harness) {
    const CASE: &str = "wake_up_follows_release_promptly";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.wait_notification {
        return skip(CASE, "backend polls (wait_notification = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("wake-up");
    let slow_polling = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        factor: 1.0,
    };
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
        let waiter = {
            let (b, name) = (b.clone(), name.clone());
            let o = opts(ttl)
                .with_wait(Wait::For(Duration::from_secs(20)))
                .with_backoff(slow_polling);
            tokio::spawn(async move {
                let got = must_acquire(CASE, &b, &name, &o).await;
                (Instant::now(), got)
            })
        };
        // Past its first attempt, so that only a notification wakes it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let released_at = Instant::now();
        must_release(CASE, &a, &lease).await;
        let (acquired_at, got) = joined(CASE, waiter.await);
        worst = worst.max(acquired_at.saturating_duration_since(released_at));
        must_release(CASE, &b, &got).await;
    }
    assert!(
        worst < Duration::from_millis(750),
        "[{CASE}] backend claims `wait_notification` but a waiter took {worst:?} after the release to acquire"
    );
}

/// How many waiters line up in [`waiters_are_served_in_arrival_order`].
const FIFO_WAITERS: usize = 4;

/// One waiter of the FIFO case: waits, notes its number (1-based) in
/// `served` while it holds the lock, releases.
fn fifo_waiter(
    c: Arc<dyn DistributedLock>,
    name: LockName,
    number: usize,
    ttl: Duration,
    served: Arc<Mutex<Vec<usize>>>,
) -> tokio::task::JoinHandle<()> {
    const CASE: &str = "waiters_are_served_in_arrival_order";
    tokio::spawn(async move {
        let o = opts(ttl).with_wait(Wait::For(Duration::from_secs(60)));
        let lease: Lease = must_acquire(CASE, &c, &name, &o).await;
        distlock_core::sync::lock(&served).push(number);
        must_release(CASE, &c, &lease).await;
    })
}

/// The first waiter served before one that arrived earlier, if any:
/// `(served, skipped)`.
fn first_overtaker(served: &[usize]) -> Option<(usize, usize)> {
    let mut waiting: Vec<usize> = (1..=FIFO_WAITERS).collect();
    for &number in served {
        let first = *waiting.first()?;
        if number != first {
            return Some((number, first));
        }
        waiting.remove(0);
    }
    None
}

/// Backends that claim FIFO serve waiters in the order they started
/// waiting: one holder, waiters queued one after the other (each only once
/// the previous one visibly waits), a release, and the grants in order.
pub async fn waiters_are_served_in_arrival_order(h: &dyn Harness) {
    const CASE: &str = "waiters_are_served_in_arrival_order";
    let holder = h.client().await;
    let caps = holder.capabilities();
    if !caps.fifo {
        return skip(CASE, "backend does not claim fifo");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("fifo");
    let lease = must_acquire(CASE, &holder, &name, &opts(ttl)).await;
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for number in 1..=FIFO_WAITERS {
        let c = h.client().await;
        waiters.push(fifo_waiter(c, name.clone(), number, ttl, served.clone()));
        wait_until_queued(CASE, &holder, &name, number).await;
    }
    must_release(CASE, &holder, &lease).await;
    for w in waiters {
        joined(CASE, w.await);
    }
    let served = distlock_core::sync::lock(&served).clone();
    if let Some((number, skipped)) = first_overtaker(&served) {
        panic!(
            "[{CASE}] backend claims `fifo` but granted waiter {number} before waiter {skipped} (grant order {served:?})"
        );
    }
}

/// Many clients, many acquisitions, one name: no two holds overlap, tokens
/// increase, and every client gets its turns (no starvation).
pub async fn mutual_exclusion_under_contention(h: &dyn Harness) {
    const CASE: &str = "mutual_exclusion_under_contention";
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 125;
    let clients = clients(h, CLIENTS).await;
    let caps = clients[0].capabilities();
    let ttl = long_ttl(&caps);
    let outcome = Contention::new(unique_name("contention"))
        .with_context(CASE)
        .with_options(opts(ttl).with_wait(Wait::For(Duration::from_secs(60))))
        .run(clients, ROUNDS)
        .await;
    assert_eq!(
        outcome.history.len(),
        CLIENTS * ROUNDS,
        "[{CASE}] {outcome}"
    );
    assert_history(CASE, &caps, &outcome.history);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_waiter_served_out_of_turn() {
        assert_eq!(first_overtaker(&[1, 2, 3, 4]), None);
        assert_eq!(first_overtaker(&[1, 3, 2, 4]), Some((3, 2)));
        assert_eq!(first_overtaker(&[4, 3, 2, 1]), Some((4, 1)));
    }
}
