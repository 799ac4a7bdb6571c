//! Fair mode on one instance: waiters are served in arrival order, and a
//! client that releases cannot jump the line by re-acquiring at once.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vanished_waiter_holds_up_the_line_at_most_for_its_ttl() {
    let prefix = "fairness-vanished:";
    let url = format!("{}&queue_ttl=300ms", common::single_url(prefix));
    let holder = distlock_redis::RedisBackend::connect(&url).await.unwrap();
    let waiter = distlock_redis::RedisBackend::connect(&url).await.unwrap();
    let lock = name("vanished");
    let ttl = Duration::from_secs(30);
    let lease = holder
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");

    // A waiter that joined the queue and then vanished without leaving it
    // (as a killed process would): an entry first in line, 300 ms to live,
    // asking for a 1 s ttl. The release hands it the lock (it cannot tell a
    // vanished waiter from a live one), so the line moves on after that ttl,
    // as for a holder that vanished.
    let client = redis::Client::open(format!("redis://{}", common::instance_addrs()[0])).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let tag = format!("{{{prefix}{lock}}}");
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    let ghost = "0".repeat(32);
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(format!("{tag}:queue"))
        .arg(0)
        .arg(&ghost)
        .ignore()
        .cmd("HSET")
        .arg(format!("{tag}:waiters"))
        .arg(&ghost)
        .arg(format!("{}:1000", now_ms + 300))
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{tag}:queue"))
        .arg(5000)
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{tag}:waiters"))
        .arg(5000)
        .ignore()
        .query_async(&mut raw)
        .await
        .unwrap();

    let waiting = tokio::spawn(async move {
        let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(5)));
        waiter.acquire(&lock, &o).await.map(|l| (l, waiter))
    });
    holder.release(&lease).await.unwrap();
    let (got, waiter) = waiting.await.unwrap().unwrap();
    let got = got.expect("the line moves on once the vanished waiter's entry expires");
    waiter.release(&got).await.unwrap();
}
