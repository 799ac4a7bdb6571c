//! Fair mode on one instance: waiters are served in arrival order, a
//! client that releases cannot jump the line by re-acquiring at once, and a
//! waiter that vanished holds up the line at most for its waiter-liveness
//! window.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};

fn name(case: &str) -> LockName {
    LockName::new(format!(
        "fairness/{case}/{}",
        distlock_core::OwnerToken::random()
    ))
    .unwrap()
}

/// Waits until the server's queue for `lock` holds `n` waiters.
async fn queue_reaches(client: &Arc<dyn DistributedLock>, lock: &LockName, n: usize) {
    for _ in 0..2000 {
        let status = client.status(lock).await.unwrap();
        if status.waiters == Some(n) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the queue never reached {n} waiters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_are_served_in_arrival_order() {
    let prefix = "fairness-order:";
    let holder = common::single(prefix).await;
    assert!(holder.capabilities().fifo, "single instance claims fifo");
    let lock = name("order");
    let ttl = Duration::from_secs(30);
    let first = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..5 {
        let client = common::single(prefix).await;
        let (mine, order) = (lock.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(30)));
            let lease = client.acquire(&mine, &o).await.unwrap().expect("served");
            order.lock().unwrap().push(i);
            client.release(&lease).await.unwrap();
        }));
        queue_reaches(&holder, &lock, i + 1).await;
    }
    holder.release(&first).await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_releasing_client_cannot_jump_the_queue() {
    let prefix = "fairness-jump:";
    let holder = common::single(prefix).await;
    let waiter = common::single(prefix).await;
    let lock = name("jump");
    let ttl = Duration::from_secs(30);
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");
    let waiting = {
        let (waiter, lock) = (waiter.clone(), lock.clone());
        tokio::spawn(async move {
            let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(30)));
            waiter.acquire(&lock, &o).await.unwrap().expect("served")
        })
    };
    queue_reaches(&holder, &lock, 1).await;
    holder.release(&lease).await.unwrap();
    // The lock may be free for a moment, but the waiter is first in line.
    let again = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "the releaser re-took the lock ahead of a waiter"
    );
    let got = waiting.await.unwrap();
    assert!(got.fencing_token() > lease.fencing_token());
    waiter.release(&got).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_that_gives_up_leaves_the_queue() {
    let prefix = "fairness-give-up:";
    let holder = common::single(prefix).await;
    let quitter = common::single(prefix).await;
    let lock = name("give-up");
    let ttl = Duration::from_secs(30);
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");
    let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_millis(200)));
    assert!(quitter.acquire(&lock, &o).await.unwrap().is_none());
    queue_reaches(&holder, &lock, 0).await;
    holder.release(&lease).await.unwrap();
    let again = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("nobody is waiting any more");
    holder.release(&again).await.unwrap();
}

/// A waiter that joined the queue and then vanished without leaving it
/// (as a frozen or killed process would, before its client's liveness
/// channel was up): an entry first in line, 300 ms to live, asking for a
/// 30 s hold. A live waiter queued behind it, waiting up to 5 s, gets the
/// lock (`Some`) or not (`None`) after the holder releases.
async fn behind_a_vanished_waiter(blind: bool) -> Option<()> {
    let prefix = "fairness-vanished:";
    let url = format!("{}&waiter_timeout=300ms", common::single_url(prefix));
    let connect = |url: String| async move {
        let config = distlock_redis::RedisConfig::from_url(&url).unwrap();
        if blind {
            distlock_redis::RedisBackend::from_config_blind_to_dead_waiters(config).await
        } else {
            distlock_redis::RedisBackend::from_config(config).await
        }
        .unwrap()
    };
    let holder = connect(url.clone()).await;
    let waiter = connect(url).await;
    let lock = name("vanished");
    let ttl = Duration::from_secs(30);
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");

    let tag = format!("{{{prefix}{lock}}}");
    common::plant_vanished_waiter(&common::instance_addrs()[0], &tag).await;

    let waiting = tokio::spawn(async move {
        let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(5)));
        waiter.acquire(&lock, &o).await.map(|l| (l, waiter))
    });
    holder.release(&lease).await.unwrap();
    let (got, waiter) = waiting.await.unwrap().unwrap();
    let got = got?;
    waiter.release(&got).await.unwrap();
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vanished_waiter_holds_up_the_line_at_most_for_its_window() {
    // The release hands it the lock (its process cannot be checked), but
    // only until its entry's deadline: the line moves on after that.
    assert!(
        behind_a_vanished_waiter(false).await.is_some(),
        "the line did not move on once the vanished waiter's entry expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_waiter_liveness_a_vanished_waiter_holds_up_the_line_for_its_ttl() {
    // The blind hand-over gives it the full 30 s: the live waiter's 5 s run
    // out first.
    assert!(behind_a_vanished_waiter(true).await.is_none());
}
