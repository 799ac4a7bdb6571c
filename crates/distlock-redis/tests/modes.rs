//! Readers, writers, semaphores and upgrades on both backends, beyond the
//! conformance suite: the scripts' compatibility rule is the core's, the
//! queue admits in order (several readers at once), counts are checked
//! against queued requests, one extend call carries every mode, Redlock
//! permits are slots, and an upgrade that is given up keeps the read lock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    AcquireOptions, DistributedLock, Fit, Lease, LockError, LockName, Mode, OwnerToken, Wait,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const HOLDS_LIB: &str = include_str!("../src/scripts/lib/holds.lua");
const TTL: Duration = Duration::from_secs(30);

fn name(case: &str) -> LockName {
    LockName::new(format!("modes/{case}/{}", OwnerToken::random())).unwrap()
}

fn once() -> AcquireOptions {
    AcquireOptions::try_once(TTL)
}

fn waiting() -> AcquireOptions {
    AcquireOptions::new(TTL).with_wait(Wait::For(Duration::from_secs(30)))
}

fn permits(limit: u32) -> Mode {
    Mode::Permit { limit }
}

async fn raw(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn must_get(c: &Arc<dyn DistributedLock>, n: &LockName, mode: Mode) -> Lease {
    c.acquire_as(n, mode, &once())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("a {mode} hold of `{n}` was refused"))
}

async fn must_wait(c: &Arc<dyn DistributedLock>, n: &LockName, mode: Mode) {
    let got = c.acquire_as(n, mode, &once()).await.unwrap();
    assert!(got.is_none(), "a {mode} hold of `{n}` was granted: {got:?}");
}

async fn release_all<'a>(
    c: &Arc<dyn DistributedLock>,
    leases: impl IntoIterator<Item = &'a Lease>,
) {
    for l in leases {
        c.release(l).await.unwrap();
    }
}

/// Upgrades the reader `lease` in a task, waiting up to 30 s.
fn upgrade_waiting(
    c: &Arc<dyn DistributedLock>,
    lease: &Lease,
) -> JoinHandle<distlock_core::Result<Option<Lease>>> {
    let (c, lease) = (c.clone(), lease.clone());
    tokio::spawn(async move { c.upgrade(&lease, &waiting()).await })
}

/// Adds 1000 to the fencing counter `fence` on the instance at `addr`.
async fn raise_fence(addr: &str, fence: &str) {
    let _: i64 = redis::cmd("INCRBY")
        .arg(fence)
        .arg(1000)
        .query_async(&mut raw(addr).await)
        .await
        .unwrap();
}

/// Waits until the server's queue for `n` holds `count` waiters.
async fn queue_reaches(c: &Arc<dyn DistributedLock>, n: &LockName, count: usize) {
    for _ in 0..5000 {
        if c.status(n).await.unwrap().waiters == Some(count) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the queue of `{n}` never reached {count} waiters");
}

/// A waiter that reports its lease and holds it until told to release.
struct Queued {
    granted: mpsc::UnboundedReceiver<Lease>,
    release: oneshot::Sender<()>,
    done: JoinHandle<()>,
}

fn queue_up(c: Arc<dyn DistributedLock>, n: &LockName, mode: Mode) -> Queued {
    let (tx, granted) = mpsc::unbounded_channel();
    let (release, released) = oneshot::channel();
    let n = n.clone();
    let done = tokio::spawn(async move {
        let lease = c.acquire_as(&n, mode, &waiting()).await.unwrap().unwrap();
        tx.send(lease.clone()).unwrap();
        let _ = released.await;
        c.release(&lease).await.unwrap();
    });
    Queued {
        granted,
        release,
        done,
    }
}

/// Queues a `mode` request for `n` on a connection of its own (keys under
/// `prefix`), and waits until `c` sees `waiters` in the queue, it the last.
async fn queue_as(
    prefix: &str,
    c: &Arc<dyn DistributedLock>,
    n: &LockName,
    mode: Mode,
    waiters: usize,
) -> Queued {
    let queued = queue_up(common::single(prefix).await, n, mode);
    queue_reaches(c, n, waiters).await;
    queued
}

impl Queued {
    async fn lease(&mut self) -> Lease {
        tokio::time::timeout(Duration::from_secs(10), self.granted.recv())
            .await
            .expect("granted within 10 s")
            .expect("a lease")
    }

    fn has_lease(&mut self) -> bool {
        !self.granted.is_empty()
    }

    async fn release(self) {
        let _ = self.release.send(());
        self.done.await.unwrap();
    }
}

#[tokio::test]
async fn the_scripts_apply_the_cores_compatibility_rule() {
    let mut conn = raw(&common::instance_addrs()[0]).await;
    let modes = [
        Mode::Exclusive,
        Mode::Shared,
        permits(1),
        permits(2),
        permits(3),
    ];
    let code = |m: Mode| match m {
        Mode::Exclusive => "x".to_string(),
        Mode::Shared => "s".to_string(),
        Mode::Permit { limit } => format!("p{limit}"),
        other => panic!("unexpected mode {other}"),
    };
    let mut args = Vec::new();
    let mut expected = Vec::new();
    for request in modes {
        for held in modes {
            for count in 0..4usize {
                if held == Mode::Exclusive && count > 1 {
                    continue;
                }
                args.extend([code(request), code(held), count.to_string()]);
                expected.push(match request.fits(vec![held; count]) {
                    Fit::Fits => "fits",
                    Fit::Waits => "waits",
                    Fit::Mismatch { .. } => "mismatch",
                });
            }
        }
    }
    let script = redis::Script::new(&format!(
        "{HOLDS_LIB}\nlocal out = {{}}\nfor i = 1, #ARGV, 3 do\n  out[#out + 1] = fits(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]))\nend\nreturn out"
    ));
    let mut invocation = script.prepare_invoke();
    for a in &args {
        invocation.arg(a);
    }
    let got: Vec<String> = invocation.invoke_async(&mut conn).await.unwrap();
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        let case = &args[i * 3..i * 3 + 3];
        assert_eq!(got, want, "fits({}, {} x {})", case[0], case[2], case[1]);
    }
    assert_eq!(got.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_grants_every_reader_at_the_head_of_the_queue_together() {
    let prefix = "modes-head:";
    let c = common::single(prefix).await;
    let n = name("head");
    let writer = must_get(&c, &n, Mode::Exclusive).await;
    let mut r1 = queue_as(prefix, &c, &n, Mode::Shared, 1).await;
    let mut r2 = queue_as(prefix, &c, &n, Mode::Shared, 2).await;
    let mut w2 = queue_as(prefix, &c, &n, Mode::Exclusive, 3).await;
    let mut r3 = queue_as(prefix, &c, &n, Mode::Shared, 4).await;

    c.release(&writer).await.unwrap();
    let (l1, l2) = (r1.lease().await, r2.lease().await);
    assert_ne!(l1.fencing_token(), l2.fencing_token());
    queue_reaches(&c, &n, 2).await;
    assert!(!w2.has_lease() && !r3.has_lease());
    // The reader behind the waiting writer waits, and so does a newcomer.
    must_wait(&c, &n, Mode::Shared).await;

    r1.release().await;
    assert!(!w2.has_lease(), "the writer went beside a reader");
    r2.release().await;
    let lw = w2.lease().await;
    assert!(lw.fencing_token() > l1.fencing_token().max(l2.fencing_token()));
    assert!(!r3.has_lease());
    w2.release().await;
    let l3 = r3.lease().await;
    assert!(l3.fencing_token() > lw.fencing_token());
    r3.release().await;
    assert_eq!(c.status(&n).await.unwrap().waiters, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permits_are_handed_out_in_arrival_order() {
    let prefix = "modes-permit-order:";
    let c = common::single(prefix).await;
    let n = name("order");
    let held = [
        must_get(&c, &n, permits(2)).await,
        must_get(&c, &n, permits(2)).await,
    ];
    let mut a = queue_as(prefix, &c, &n, permits(2), 1).await;
    let mut b = queue_as(prefix, &c, &n, permits(2), 2).await;
    c.release(&held[0]).await.unwrap();
    let la = a.lease().await;
    assert!(!b.has_lease());
    c.release(&held[1]).await.unwrap();
    let lb = b.lease().await;
    assert!(lb.fencing_token() > la.fencing_token());
    a.release().await;
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permit_count_is_checked_against_queued_requests_too() {
    let prefix = "modes-queued-count:";
    let c = common::single(prefix).await;
    let n = name("queued-count");
    let writer = must_get(&c, &n, Mode::Exclusive).await;
    let queued = queue_as(prefix, &c, &n, permits(2), 1).await;
    match c.acquire_as(&n, permits(3), &waiting()).await {
        Err(LockError::PermitMismatch {
            declared: 2,
            requested: 3,
            ..
        }) => {}
        other => panic!("a 3-permit request behind a queued 2-permit one gave {other:?}"),
    }
    queue_reaches(&c, &n, 1).await;
    c.release(&writer).await.unwrap();
    queued.release().await;
}

/// Takes a writer, a reader and a permit on three names and extends all of
/// them in one `extend_many`; a released one answers `NotHeld` in place.
async fn extend_many_renews_every_mode(c: Arc<dyn DistributedLock>) {
    let names = [name("x"), name("s"), name("p")];
    let leases = vec![
        must_get(&c, &names[0], Mode::Exclusive).await,
        must_get(&c, &names[1], Mode::Shared).await,
        must_get(&c, &names[2], permits(2)).await,
    ];
    for r in c.extend_many(&leases).await {
        let renewed = r.unwrap();
        assert!(renewed.valid_until() > leases[0].valid_until());
    }
    c.release(&leases[1]).await.unwrap();
    let answers = c.extend_many(&leases).await;
    assert!(answers[0].is_ok() && answers[2].is_ok());
    assert!(matches!(answers[1], Err(LockError::NotHeld { .. })));
    release_all(&c, [&leases[0], &leases[2]]).await;
}

#[tokio::test]
async fn one_extend_renews_every_mode_on_one_instance() {
    extend_many_renews_every_mode(common::single("modes-extend-single:").await).await;
}

#[tokio::test]
async fn one_extend_renews_every_mode_on_redlock() {
    let addrs = common::instance_addrs();
    extend_many_renews_every_mode(common::redlock(&addrs, "modes-extend-redlock:").await).await;
}

#[tokio::test]
async fn redlock_permits_are_slots_sharing_the_fencing_counter() {
    let c = common::redlock(&common::instance_addrs(), "modes-slots:").await;
    let n = name("slots");
    let mut held: Vec<Lease> = Vec::new();
    for _ in 0..3 {
        held.push(must_get(&c, &n, permits(3)).await);
    }
    let mut slots: Vec<&str> = held.iter().map(|l| l.data()).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 3, "three permits on distinct slots: {slots:?}");
    assert!(held
        .windows(2)
        .all(|w| w[1].fencing_token() > w[0].fencing_token()));
    must_wait(&c, &n, permits(3)).await;
    must_wait(&c, &n, Mode::Exclusive).await;
    must_wait(&c, &n, Mode::Shared).await;
    c.release(&held[1]).await.unwrap();
    let again = must_get(&c, &n, permits(3)).await;
    assert_eq!(again.data(), held[1].data(), "the one free slot");
    assert!(again.fencing_token() > held[2].fencing_token());
    release_all(&c, [&held[0], &held[2], &again]).await;
    let writer = must_get(&c, &n, Mode::Exclusive).await;
    assert!(writer.fencing_token() > again.fencing_token());
    c.release(&writer).await.unwrap();
}

#[tokio::test]
async fn a_redlock_permit_given_on_different_slots_keeps_only_the_majority_slot() {
    let addrs = common::instance_addrs();
    let prefix = "modes-stray-slots:";
    let c = common::redlock(&addrs, prefix).await;
    let n = name("stray");
    let tag = format!("{{{prefix}{n}}}");
    let mut conns = Vec::new();
    for a in &addrs {
        conns.push(raw(a).await);
    }
    // Slot 0 is taken on two of five instances by an owner nobody knows, so
    // an attempt that starts at slot 0 gets slot 1 there and slot 0 on the
    // other three.
    for conn in &mut conns[..2] {
        let _: () = redis::cmd("SET")
            .arg(format!("{tag}:permit:0"))
            .arg("ghost")
            .arg("PX")
            .arg(60_000)
            .query_async(conn)
            .await
            .unwrap();
    }
    for _ in 0..12 {
        let lease = must_get(&c, &n, permits(2)).await;
        let owner = lease.owner().to_hex();
        for (i, conn) in conns.iter_mut().enumerate() {
            let mut ours = false;
            for slot in 0..2 {
                let key = format!("{tag}:permit:{slot}");
                let v: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(conn).await.unwrap();
                if v.as_deref() == Some(owner.as_str()) {
                    assert_eq!(key, lease.data(), "instance {i} kept a stray slot");
                    ours = true;
                }
            }
            let member: Option<f64> = redis::cmd("ZSCORE")
                .arg(format!("{tag}:holders"))
                .arg(format!("p2:{owner}"))
                .query_async(conn)
                .await
                .unwrap();
            assert_eq!(
                member.is_some(),
                ours,
                "instance {i}: holders set and slot disagree"
            );
        }
        c.release(&lease).await.unwrap();
    }
}

#[tokio::test]
async fn redlock_tokens_of_readers_and_permits_are_written_back_when_counters_disagree() {
    let addrs = common::instance_addrs();
    let prefix = "modes-raise:";
    let c = common::redlock(&addrs, prefix).await;
    let n = name("raise");
    let fence = format!("{{{prefix}{n}}}:fence");
    raise_fence(&addrs[0], &fence).await;
    let reader = must_get(&c, &n, Mode::Shared).await;
    assert!(reader.fencing_token().0 > 1000);
    let second = must_get(&c, &n, Mode::Shared).await;
    assert!(second.fencing_token() > reader.fencing_token());
    release_all(&c, [&reader, &second]).await;
    let writer = must_get(&c, &n, Mode::Exclusive).await;
    assert!(writer.fencing_token() > second.fencing_token());
    c.release(&writer).await.unwrap();
    // A permit's write-back checks its slot key.
    raise_fence(&addrs[1], &fence).await;
    let permit = must_get(&c, &n, permits(2)).await;
    assert!(permit.fencing_token().0 > writer.fencing_token().0 + 900);
    let after = must_get(&c, &n, permits(2)).await;
    assert!(after.fencing_token() > permit.fencing_token());
    release_all(&c, [&permit, &after]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_queue_every_mode_is_served_and_upgrades_wait_for_the_other_readers() {
    let url = format!("{}&fair=false", common::single_url("modes-unfair:"));
    let backend = distlock_redis::RedisBackend::connect(&url).await.unwrap();
    let c: Arc<dyn DistributedLock> = Arc::new(backend);
    assert!(!c.capabilities().fifo && c.capabilities().upgrade);
    let n = name("unfair");
    let r1 = must_get(&c, &n, Mode::Shared).await;
    let r2 = must_get(&c, &n, Mode::Shared).await;
    must_wait(&c, &n, Mode::Exclusive).await;
    must_wait(&c, &n, permits(2)).await;
    let beside = c.upgrade(&r1, &once()).await.unwrap();
    assert!(beside.is_none(), "upgraded beside another reader");
    let upgrading = upgrade_waiting(&c, &r1);
    c.release(&r2).await.unwrap();
    let w = upgrading.await.unwrap().unwrap().expect("upgraded");
    assert_eq!(w.mode(), Mode::Exclusive);
    assert!(w.fencing_token() > r2.fencing_token());
    must_wait(&c, &n, Mode::Shared).await;
    c.release(&w).await.unwrap();

    let p = [
        must_get(&c, &n, permits(2)).await,
        must_get(&c, &n, permits(2)).await,
    ];
    must_wait(&c, &n, permits(2)).await;
    assert!(matches!(
        c.acquire_as(&n, permits(5), &once()).await,
        Err(LockError::PermitMismatch { declared: 2, .. })
    ));
    release_all(&c, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_given_up_keeps_the_read_lock_and_leaves_the_queue() {
    let prefix = "modes-upgrade-cancel:";
    let c = common::single(prefix).await;
    let n = name("upgrade-cancel");
    let r1 = must_get(&c, &n, Mode::Shared).await;
    let r2 = must_get(&c, &n, Mode::Shared).await;
    let upgrading = upgrade_waiting(&c, &r1);
    queue_reaches(&c, &n, 1).await;
    // Readers arriving while the upgrade waits queue behind it.
    must_wait(&c, &n, Mode::Shared).await;
    upgrading.abort();
    queue_reaches(&c, &n, 0).await;
    c.extend(&r1, TTL).await.expect("the read lock is kept");
    let r3 = must_get(&c, &n, Mode::Shared).await;
    must_wait(&c, &n, Mode::Exclusive).await;
    release_all(&c, [&r1, &r2, &r3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_handed_over_by_a_release_is_the_writer_at_once() {
    let prefix = "modes-upgrade-handed:";
    let c = common::single(prefix).await;
    let n = name("upgrade-handed");
    let r1 = must_get(&c, &n, Mode::Shared).await;
    let r2 = must_get(&c, &n, Mode::Shared).await;
    let writer = queue_as(prefix, &c, &n, Mode::Exclusive, 1).await;
    let upgrading = upgrade_waiting(&c, &r1);
    queue_reaches(&c, &n, 2).await;
    c.release(&r2).await.unwrap();
    let w = upgrading.await.unwrap().unwrap().expect("upgraded");
    assert!(w.fencing_token() > r2.fencing_token());
    // The old read lease follows the hold it became until the guard swaps it.
    c.extend(&r1, TTL).await.expect("same owner");
    c.release(&w).await.unwrap();
    writer.release().await;
}
