//! Fair Redlock over three independent instances: waiters are served in
//! arrival order, a client that releases cannot jump the line, a request
//! that reaches some instances late keeps its place there (the queues order
//! waiters by their tickets, not by when each instance saw them), a try
//! without waiting does not queue, a waiter that gives up leaves every
//! queue, and a waiter that vanished holds up the line at most for its
//! waiter-liveness window.
//!
//! Two purpose-broken backends fail what they lack: queues ordered by each
//! instance's arrival (no tickets), and hand-overs blind to dead waiters.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_conformance::ProxyMode;
use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_redis::{RedisConfig, RedlockBackend};

const TTL: Duration = Duration::from_secs(30);

fn name(case: &str) -> LockName {
    LockName::new(format!(
        "redlock-fairness/{case}/{}",
        distlock_core::OwnerToken::random()
    ))
    .unwrap()
}

/// The first three of the five instances.
fn three() -> Vec<String> {
    common::instance_addrs()[..3].to_vec()
}

/// Per-instance timeouts far above any stall of a loaded test machine, so
/// that every grant lands on all three instances (these tests read each
/// instance's queue).
const PATIENT: &str = "&min_instance_timeout=5s&max_instance_timeout=10s";

/// A shipped Redlock client over `addrs` with [`PATIENT`] timeouts.
async fn patient(addrs: &[String], prefix: &str) -> Arc<dyn DistributedLock> {
    redlock_with(addrs, prefix, PATIENT, RedlockBackend::from_config).await
}

fn waiting(wait: Duration) -> AcquireOptions {
    AcquireOptions::new(TTL).with_wait(Wait::For(wait))
}

/// A Redlock client over `addrs` built by `build` from the URL with `extra`
/// parameters.
async fn redlock_with<B, F>(
    addrs: &[String],
    prefix: &str,
    extra: &str,
    build: B,
) -> Arc<dyn DistributedLock>
where
    B: FnOnce(RedisConfig) -> F,
    F: Future<Output = distlock_core::Result<RedlockBackend>>,
{
    let url = format!("{}{extra}", common::redlock_url(addrs, prefix));
    let config = RedisConfig::from_url(&url).unwrap();
    Arc::new(build(config).await.unwrap())
}

/// Reads each instance's queue of a lock on its own, through one-instance
/// clients with the same prefix (the same keys).
struct Queues {
    instances: Vec<(String, Arc<dyn DistributedLock>)>,
}

impl Queues {
    async fn of(addrs: &[String], prefix: &str) -> Self {
        let mut instances = Vec::new();
        for addr in addrs {
            instances.push((addr.clone(), common::single_at(addr, prefix).await));
        }
        Queues { instances }
    }

    /// How many waiters the queue of `lock` holds on each instance.
    async fn lengths(&self, lock: &LockName) -> Vec<usize> {
        let mut lengths = Vec::new();
        for (_, single) in &self.instances {
            lengths.push(single.status(lock).await.unwrap().waiters.unwrap());
        }
        lengths
    }

    /// Waits until the queue of `lock` on the instances `which` (indexes)
    /// holds `n` waiters on each.
    async fn reach(&self, which: std::ops::Range<usize>, lock: &LockName, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lengths = self.lengths(lock).await;
            if lengths[which.clone()].iter().all(|l| *l == n) {
                return;
            }
            let addrs: Vec<&String> = self.instances.iter().map(|(a, _)| a).collect();
            assert!(
                Instant::now() < deadline,
                "the queues on {addrs:?} never reached {n} waiters on {which:?}: {lengths:?}"
            );
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_are_served_in_arrival_order_across_three_instances() {
    let (addrs, prefix) = (three(), "redlock-fair-order:");
    let queues = Queues::of(&addrs, prefix).await;
    let holder = patient(&addrs, prefix).await;
    assert!(holder.capabilities().fifo, "fair Redlock claims fifo");
    let lock = name("order");
    let first = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("free");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..5 {
        let client = patient(&addrs, prefix).await;
        let (mine, order) = (lock.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let lease = client
                .acquire(&mine, &waiting(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("served");
            order.lock().unwrap().push(i);
            client.release(&lease).await.unwrap();
        }));
        queues.reach(0..3, &lock, i + 1).await;
    }
    holder.release(&first).await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_releasing_client_cannot_jump_the_line() {
    let (addrs, prefix) = (three(), "redlock-fair-jump:");
    let queues = Queues::of(&addrs, prefix).await;
    let holder = patient(&addrs, prefix).await;
    let waiter = patient(&addrs, prefix).await;
    let lock = name("jump");
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("free");
    let queued = {
        let (waiter, lock) = (waiter.clone(), lock.clone());
        tokio::spawn(async move {
            let o = waiting(Duration::from_secs(30));
            waiter.acquire(&lock, &o).await.unwrap().expect("served")
        })
    };
    queues.reach(0..3, &lock, 1).await;
    holder.release(&lease).await.unwrap();
    let again = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "the releaser re-took the lock ahead of a waiter"
    );
    let got = queued.await.unwrap();
    assert!(got.fencing_token() > lease.fencing_token());
    waiter.release(&got).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_try_does_not_queue_and_a_waiter_that_gives_up_leaves_every_queue() {
    let (addrs, prefix) = (three(), "redlock-fair-leave:");
    let queues = Queues::of(&addrs, prefix).await;
    let holder = patient(&addrs, prefix).await;
    let other = patient(&addrs, prefix).await;
    let lock = name("leave");
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("free");
    let tried = other.acquire(&lock, &AcquireOptions::try_once(TTL)).await;
    assert!(tried.unwrap().is_none());
    assert_eq!(queues.lengths(&lock).await, [0, 0, 0]);
    let gave_up = other
        .acquire(&lock, &waiting(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(gave_up.is_none());
    // The clean-up of the abandoned acquire runs in the background.
    queues.reach(0..3, &lock, 0).await;
    holder.release(&lease).await.unwrap();
    let again = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("nobody is waiting any more");
    holder.release(&again).await.unwrap();
}

/// Waiter X asks first, but its requests reach two of the three instances
/// only after those of waiter Y (X's connections to them are held back by
/// fault proxies until Y is queued there). Then the holder releases.
async fn late_requests(by_arrival: bool) -> Late {
    let (addrs, prefix) = (three(), "redlock-fair-late:");
    let connect = |addrs: Vec<String>, extra: &'static str| async move {
        if by_arrival {
            redlock_with(
                &addrs,
                prefix,
                extra,
                RedlockBackend::from_config_queued_by_arrival,
            )
            .await
        } else {
            redlock_with(&addrs, prefix, extra, RedlockBackend::from_config).await
        }
    };
    // Entries that outlive X's held-back first attempt, which refreshes
    // nothing until it is answered.
    const LONG_LIFE: &str = "&waiter_timeout=20s&min_instance_timeout=5s&max_instance_timeout=10s";
    let queues = Queues::of(&addrs, prefix).await;
    let holder = connect(addrs.clone(), LONG_LIFE).await;
    let lock = name("late");
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("free");
    let proxies = common::proxies_for(&addrs).await;
    // Each call of X may wait up to 5 s for its held-back reply.
    let x = connect(common::proxy_addrs(&proxies), LONG_LIFE).await;
    let y = connect(addrs.clone(), LONG_LIFE).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let serve = |client: Arc<dyn DistributedLock>, who: &'static str| {
        let (lock, order) = (lock.clone(), order.clone());
        tokio::spawn(async move {
            let lease = client
                .acquire(&lock, &waiting(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("served");
            order.lock().unwrap().push(who);
            client.release(&lease).await.unwrap();
        })
    };
    proxies[1].set_mode(ProxyMode::Blackhole);
    proxies[2].set_mode(ProxyMode::Blackhole);
    let x_waits = serve(x, "x");
    queues.reach(0..1, &lock, 1).await;
    let y_waits = serve(y, "y");
    queues.reach(1..3, &lock, 1).await;
    queues.reach(0..1, &lock, 2).await;
    proxies[1].set_mode(ProxyMode::Pass);
    proxies[2].set_mode(ProxyMode::Pass);
    queues.reach(0..3, &lock, 2).await;
    let heads = first_in_line(&addrs, &format!("{{{prefix}{lock}}}:queue")).await;
    holder.release(&lease).await.unwrap();
    x_waits.await.unwrap();
    y_waits.await.unwrap();
    let order = order.lock().unwrap().clone();
    Late { heads, order }
}

/// What [`late_requests`] saw.
struct Late {
    /// The first in line on each instance once both waited everywhere
    /// (X is first on the first instance, which it reached first).
    heads: Vec<String>,
    /// Who was served, in order.
    order: Vec<&'static str>,
}

/// The first owner token of the queue `key` on each of `addrs`.
async fn first_in_line(addrs: &[String], key: &str) -> Vec<String> {
    let mut heads = Vec::new();
    for addr in addrs {
        let client = redis::Client::open(format!("redis://{addr}")).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let head: Vec<String> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(0)
            .query_async(&mut raw)
            .await
            .unwrap();
        heads.push(head.concat());
    }
    heads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_whose_requests_reach_instances_late_keeps_its_place() {
    let late = late_requests(false).await;
    assert!(
        late.heads.iter().all(|h| *h == late.heads[0]),
        "the instances disagree on who is first: {:?}",
        late.heads
    );
    assert_eq!(
        late.order,
        ["x", "y"],
        "the waiter that asked first was not served first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_by_arrival_a_waiter_whose_requests_reach_instances_late_loses_its_place() {
    // Two of three instances saw Y first and put it first: a quorum that
    // would hand Y the lock ahead of X (both are still served).
    let late = late_requests(true).await;
    assert_eq!(late.heads[1], late.heads[2]);
    assert_ne!(late.heads[0], late.heads[1], "{:?}", late.heads);
    assert_eq!(late.order.len(), 2);
}

/// A waiter that joined every queue and then vanished without leaving
/// (as a frozen process would, before its client's liveness channel was
/// up): entries first in line, 300 ms to live, asking for a 30 s hold. A
/// live waiter queued behind it, waiting up to 5 s, gets the lock (true)
/// or not (false) after the holder releases.
async fn behind_a_vanished_waiter(blind: bool) -> bool {
    let (addrs, prefix) = (three(), "redlock-fair-vanished:");
    let extra = "&waiter_timeout=300ms&min_instance_timeout=5s&max_instance_timeout=10s";
    let connect = || async {
        if blind {
            redlock_with(
                &addrs,
                prefix,
                extra,
                RedlockBackend::from_config_blind_to_dead_waiters,
            )
            .await
        } else {
            redlock_with(&addrs, prefix, extra, RedlockBackend::from_config).await
        }
    };
    let holder = connect().await;
    let waiter = connect().await;
    let lock = name("vanished");
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .expect("free");
    for addr in &addrs {
        common::plant_vanished_waiter(addr, &format!("{{{prefix}{lock}}}")).await;
    }
    let waiting = tokio::spawn(async move {
        let got = waiter
            .acquire(&lock, &waiting(Duration::from_secs(5)))
            .await;
        (got.unwrap(), waiter)
    });
    holder.release(&lease).await.unwrap();
    let (got, waiter) = waiting.await.unwrap();
    match got {
        Some(lease) => {
            waiter.release(&lease).await.unwrap();
            true
        }
        None => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vanished_waiter_holds_up_the_line_at_most_for_its_window() {
    assert!(
        behind_a_vanished_waiter(false).await,
        "the line did not move on once the vanished waiter's entries expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_waiter_liveness_a_vanished_waiter_holds_up_the_line_for_its_ttl() {
    // The blind hand-overs give it the full 30 s on every instance: the
    // live waiter's 5 s run out first.
    assert!(!behind_a_vanished_waiter(true).await);
}
