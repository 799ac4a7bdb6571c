//! Readers, semaphore permits and upgrades on etcd: the queue rules the
//! shared suite checks, plus the handoffs only this backend's queue has
//! (permits released out of order, the first permit waiter's place handed
//! on, an upgrade's two entries).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    AcquireOptions, DistributedLock, Lease, LockError, LockName, LockStatus, Mode, Wait,
};
use distlock_etcd::EtcdBackend;
use tokio::task::JoinHandle;

const TTL: Duration = Duration::from_secs(30);

fn name(tag: &str) -> LockName {
    LockName::new(format!("modes/{tag}/{:016x}", rand::random::<u64>())).unwrap()
}

async fn clients(n: usize) -> Vec<Arc<EtcdBackend>> {
    let prefix = common::unique_prefix("modes");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(common::connect(common::config(&prefix)).await));
    }
    out
}

fn now() -> AcquireOptions {
    AcquireOptions::try_once(TTL)
}

fn waiting(secs: u64) -> AcquireOptions {
    now().with_wait(Wait::For(Duration::from_secs(secs)))
}

/// One try, without waiting.
async fn try_take(b: &EtcdBackend, n: &LockName, mode: Mode) -> Option<Lease> {
    b.acquire_as(n, mode, &now()).await.unwrap()
}

async fn take(b: &EtcdBackend, n: &LockName, mode: Mode) -> Lease {
    try_take(b, n, mode)
        .await
        .unwrap_or_else(|| panic!("{mode} should be free at once"))
}

fn queue(b: &Arc<EtcdBackend>, n: &LockName, mode: Mode) -> JoinHandle<Option<Lease>> {
    let (b, n) = (b.clone(), n.clone());
    tokio::spawn(async move { b.acquire_as(&n, mode, &waiting(20)).await.unwrap() })
}

/// Upgrades the reader `lease`, waiting up to 20 s, in a task.
fn queue_upgrade(b: &Arc<EtcdBackend>, lease: &Lease) -> JoinHandle<Option<Lease>> {
    let (b, lease) = (b.clone(), lease.clone());
    tokio::spawn(async move { b.upgrade(&lease, &waiting(20)).await.unwrap() })
}

/// Polls the status of `n` until `done` says so; fails after 10 s with
/// `what` and the last status.
async fn until_status(
    b: &EtcdBackend,
    n: &LockName,
    what: &str,
    done: impl Fn(&LockStatus) -> bool,
) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = b.status(n).await.unwrap();
        if done(&s) {
            return;
        }
        assert!(std::time::Instant::now() < until, "{what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `waiters` entries wait on `n`.
async fn until_waiting(b: &EtcdBackend, n: &LockName, waiters: usize) {
    let what = format!("never {waiters} waiting");
    until_status(b, n, &what, |s| s.waiters == Some(waiters)).await;
}

/// Waits until nothing is held or queued on `n`.
async fn until_empty(b: &EtcdBackend, n: &LockName) {
    until_status(b, n, "entries left behind", |s| {
        !s.held && s.waiters == Some(0)
    })
    .await;
}

/// The lease a queued acquire (or upgrade) got, within 5 s.
async fn granted(task: JoinHandle<Option<Lease>>) -> Lease {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("granted promptly")
        .unwrap()
        .expect("granted, not timed out")
}

/// Releases `leases`, the `i`-th through client `i % 2` (the client that
/// took it).
async fn release_alternating(c: &[Arc<EtcdBackend>], leases: &[Lease]) {
    for (i, l) in leases.iter().enumerate() {
        c[i % 2].release(l).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_and_a_waiting_writer_holds_later_readers_back() {
    let c = clients(2).await;
    let n = name("rw");
    let r1 = take(&c[0], &n, Mode::Shared).await;
    let r2 = take(&c[1], &n, Mode::Shared).await;
    assert_ne!(
        r1.fencing_token(),
        r2.fencing_token(),
        "readers together get distinct tokens"
    );
    assert!(
        try_take(&c[0], &n, Mode::Exclusive).await.is_none(),
        "no writer beside readers"
    );
    let writer = queue(&c[0], &n, Mode::Exclusive);
    until_waiting(&c[0], &n, 1).await;
    assert!(
        try_take(&c[1], &n, Mode::Shared).await.is_none(),
        "a reader arriving while a writer waits does not overtake it"
    );
    let late_reader = queue(&c[1], &n, Mode::Shared);
    until_waiting(&c[0], &n, 2).await;
    c[0].release(&r1).await.unwrap();
    c[1].release(&r2).await.unwrap();
    let w = granted(writer).await;
    assert!(w.fencing_token() > r2.fencing_token());
    assert!(
        !late_reader.is_finished(),
        "the late reader waits for the writer"
    );
    c[0].release(&w).await.unwrap();
    let r3 = granted(late_reader).await;
    assert!(r3.fencing_token() > w.fencing_token());
    c[1].release(&r3).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_behind_one_writer_all_go_when_it_leaves() {
    let c = clients(2).await;
    let n = name("readers-wake");
    let w = take(&c[0], &n, Mode::Exclusive).await;
    let readers: Vec<_> = (0..4).map(|i| queue(&c[i % 2], &n, Mode::Shared)).collect();
    until_waiting(&c[0], &n, 4).await;
    c[0].release(&w).await.unwrap();
    let mut held = Vec::new();
    for r in readers {
        held.push(granted(r).await);
    }
    let status = c[0].status(&n).await.unwrap();
    assert_eq!(
        status.waiters,
        Some(0),
        "four readers hold together: {status:?}"
    );
    release_alternating(&c, &held).await;
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_released_out_of_order_let_the_waiters_in_one_by_one() {
    let c = clients(2).await;
    let n = name("permits-order");
    let three = Mode::Permit { limit: 3 };
    let mut holders = Vec::new();
    for i in 0..3 {
        holders.push(take(&c[i % 2], &n, three).await);
    }
    assert!(try_take(&c[0], &n, three).await.is_none());
    // The try that did not fit took its key back.
    until_waiting(&c[0], &n, 0).await;
    let mut waiters = Vec::new();
    for i in 0..3 {
        waiters.push(queue(&c[i % 2], &n, three));
        until_waiting(&c[0], &n, i + 1).await;
    }
    // The middle holder leaves first: the first waiter (watching every
    // permit) goes; the second, watching the first, learns it was granted.
    c[1].release(&holders[1]).await.unwrap();
    let w0 = granted(waiters.remove(0)).await;
    until_waiting(&c[0], &n, 2).await;
    c[0].release(&holders[2]).await.unwrap();
    let w1 = granted(waiters.remove(0)).await;
    c[0].release(&holders[0]).await.unwrap();
    let w2 = granted(waiters.remove(0)).await;
    let tokens = [&w0, &w1, &w2].map(|l| l.fencing_token());
    assert!(
        tokens.windows(2).all(|t| t[0] < t[1]),
        "permits granted in order: {tokens:?}"
    );
    release_alternating(&c, &[w0, w1, w2]).await;
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_never_exceed_the_count_under_contention() {
    let c = clients(3).await;
    let n = name("permits-contended");
    let limit = 3;
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (b, n, inside, most) = (c[t % 3].clone(), n.clone(), inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..6 {
                let l = b
                    .acquire_as(&n, Mode::Permit { limit }, &waiting(30))
                    .await
                    .unwrap()
                    .expect("a permit within the wait");
                let now_in = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_in, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5 + rand::random::<u64>() % 20)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                tokens.push(l.fencing_token());
                b.release(&l).await.unwrap();
            }
            tokens
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= limit as usize, "{most} permits held at once");
    assert!(most > 1, "permits never overlapped");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 48, "every grant has its own token");
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_of_another_count_are_refused_waiting_or_not() {
    let c = clients(2).await;
    let n = name("mismatch");
    let p = take(&c[0], &n, Mode::Permit { limit: 2 }).await;
    for opts in [now(), waiting(5)] {
        let err = c[1]
            .acquire_as(&n, Mode::Permit { limit: 5 }, &opts)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LockError::PermitMismatch {
                    declared: 2,
                    requested: 5,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // Also behind a writer that waits: the permit holders are still there.
    let writer = queue(&c[0], &n, Mode::Exclusive);
    until_waiting(&c[0], &n, 1).await;
    let err = c[1]
        .acquire_as(&n, Mode::Permit { limit: 1 }, &now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::PermitMismatch { declared: 2, .. }),
        "{err:?}"
    );
    c[0].release(&p).await.unwrap();
    let w = granted(writer).await;
    c[0].release(&w).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tries_that_do_not_fit_leave_nothing() {
    let c = clients(2).await;
    let n = name("tries");
    let w = take(&c[0], &n, Mode::Exclusive).await;
    for mode in [Mode::Shared, Mode::Permit { limit: 4 }, Mode::Exclusive] {
        assert!(try_take(&c[1], &n, mode).await.is_none());
    }
    until_waiting(&c[0], &n, 0).await;
    c[0].release(&w).await.unwrap();
    let one = Mode::Permit { limit: 1 };
    let p = take(&c[0], &n, one).await;
    assert!(try_take(&c[1], &n, one).await.is_none());
    until_waiting(&c[0], &n, 0).await;
    c[0].release(&p).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_of_every_mode_leave_nothing() {
    let c = clients(2).await;
    let n = name("cancel");
    let w = take(&c[0], &n, Mode::Exclusive).await;
    for round in 0..30u64 {
        let mode = match round % 3 {
            0 => Mode::Shared,
            1 => Mode::Permit { limit: 2 },
            _ => Mode::Exclusive,
        };
        let cut = Duration::from_micros((round * 397) % 9000);
        let _ = tokio::time::timeout(cut, c[1].acquire_as(&n, mode, &waiting(20))).await;
    }
    c[0].release(&w).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_waits_for_the_other_readers_and_holds_newcomers_back() {
    let c = clients(2).await;
    let n = name("upgrade");
    let mine = take(&c[0], &n, Mode::Shared).await;
    let other = take(&c[1], &n, Mode::Shared).await;
    let upgrading = queue_upgrade(&c[0], &mine);
    until_waiting(&c[0], &n, 1).await;
    assert!(
        try_take(&c[1], &n, Mode::Shared).await.is_none(),
        "a reader arriving while an upgrade waits queues behind it"
    );
    let late_reader = queue(&c[1], &n, Mode::Shared);
    until_waiting(&c[0], &n, 2).await;
    c[1].release(&other).await.unwrap();
    let up = granted(upgrading).await;
    assert_eq!(up.mode(), Mode::Exclusive);
    assert!(up.fencing_token() > other.fencing_token());
    let status = c[0].status(&n).await.unwrap();
    assert_eq!(
        status.waiters,
        Some(1),
        "the upgraded pair is one holder: {status:?}"
    );
    assert!(c[0].extend(&up, TTL).await.is_ok());
    assert!(!late_reader.is_finished());
    c[0].release(&up).await.unwrap();
    assert!(
        c[0].extend(&mine, TTL).await.unwrap_err().is_not_held(),
        "the read entry went with the upgraded lease"
    );
    let r = granted(late_reader).await;
    assert!(r.fencing_token() > up.fencing_token());
    c[1].release(&r).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_times_out_or_is_cancelled_keeps_the_read_lock() {
    let c = clients(2).await;
    let n = name("upgrade-gives-up");
    let mine = take(&c[0], &n, Mode::Shared).await;
    let other = take(&c[1], &n, Mode::Shared).await;
    let opts = now().with_wait(Wait::For(Duration::from_millis(300)));
    assert!(c[0].upgrade(&mine, &opts).await.unwrap().is_none());
    let _ =
        tokio::time::timeout(Duration::from_millis(50), c[0].upgrade(&mine, &waiting(20))).await;
    until_waiting(&c[0], &n, 0).await;
    assert!(
        c[0].extend(&mine, TTL).await.is_ok(),
        "the read lock is still held"
    );
    let third = try_take(&c[1], &n, Mode::Shared)
        .await
        .expect("readers are let in again");
    c[1].release(&other).await.unwrap();
    let up = c[0].upgrade(&mine, &now()).await.unwrap();
    assert!(up.is_none(), "the third reader still holds");
    c[1].release(&third).await.unwrap();
    c[0].release(&mine).await.unwrap();
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_released_read_lock_is_not_held() {
    let c = clients(1).await;
    let n = name("upgrade-released");
    let r = take(&c[0], &n, Mode::Shared).await;
    c[0].release(&r).await.unwrap();
    let err = c[0].upgrade(&r, &waiting(1)).await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    until_empty(&c[0], &n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_waits_for_a_writer_queued_before_it_to_give_up() {
    let c = clients(2).await;
    let n = name("upgrade-behind-writer");
    let mine = take(&c[0], &n, Mode::Shared).await;
    let other = take(&c[1], &n, Mode::Shared).await;
    // A writer queued behind both read locks before the upgrade began: the
    // upgrade cannot jump it (its token would come out of order), so it
    // waits until that writer gives up.
    let writer = {
        let (b, n) = (c[1].clone(), n.clone());
        let o = now().with_wait(Wait::For(Duration::from_millis(1500)));
        tokio::spawn(async move { b.acquire(&n, &o).await.unwrap() })
    };
    until_waiting(&c[0], &n, 1).await;
    let upgrading = queue_upgrade(&c[0], &mine);
    until_waiting(&c[0], &n, 2).await;
    c[1].release(&other).await.unwrap();
    assert!(
        writer.await.unwrap().is_none(),
        "the writer cannot pass the read lock that is being upgraded"
    );
    // Upgraded once the writer gave up.
    let up = granted(upgrading).await;
    assert!(up.fencing_token() > other.fencing_token());
    c[0].release(&up).await.unwrap();
    until_empty(&c[0], &n).await;
}
