//! Readers, permits and upgrades on the queue recipe: what the nodes look
//! like, which nodes a waiter depends on, and what an upgrade leaves behind.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, DistributedLock, FencingToken, Lease, LockError, LockName, Mode, Result, Wait,
};
use distlock_zookeeper::ZkBackend;
use tokio::task::JoinHandle;

const SESSION: Duration = Duration::from_secs(6);
const LONG_TTL: Duration = Duration::from_secs(60);
const READ: Mode = Mode::Shared;
const WRITE: Mode = Mode::Exclusive;

fn name(tag: &str) -> LockName {
    LockName::new(format!("modes/{tag}/{:016x}", rand::random::<u64>())).unwrap()
}

fn once() -> AcquireOptions {
    AcquireOptions::try_once(LONG_TTL)
}

fn waiting(wait: Duration) -> AcquireOptions {
    once().with_wait(Wait::For(wait))
}

fn permits(limit: u32) -> Mode {
    Mode::Permit { limit }
}

/// `N` clients under one fresh root.
async fn backends<const N: usize>() -> [ZkBackend; N] {
    let root = common::unique_root();
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(common::connect(common::config(&root, SESSION)).await);
    }
    match clients.try_into() {
        Ok(clients) => clients,
        Err(_) => unreachable!("N clients were connected"),
    }
}

async fn hold(b: &ZkBackend, name: &LockName, mode: Mode) -> Lease {
    b.acquire_as(name, mode, &once())
        .await
        .unwrap_or_else(|e| panic!("{mode} acquire failed: {e}"))
        .unwrap_or_else(|| panic!("{mode} acquire was refused"))
}

async fn refused(b: &ZkBackend, name: &LockName, mode: Mode) {
    let got = b.acquire_as(name, mode, &once()).await.unwrap();
    assert!(got.is_none(), "a {mode} acquire was granted: {got:?}");
}

/// Acquires `name` in `mode` in a task, waiting up to 20 s: when the
/// acquire returned, and what it returned.
fn queue(
    b: &ZkBackend,
    name: &LockName,
    mode: Mode,
) -> JoinHandle<(Instant, Result<Option<Lease>>)> {
    let (b, name) = (b.clone(), name.clone());
    tokio::spawn(async move {
        let got = b
            .acquire_as(&name, mode, &waiting(Duration::from_secs(20)))
            .await;
        (Instant::now(), got)
    })
}

/// When a [`queue`]d acquire returned, and its lease; `expect` says who
/// should have got it.
async fn granted(
    task: JoinHandle<(Instant, Result<Option<Lease>>)>,
    expect: &str,
) -> (Instant, Lease) {
    let (at, got) = task.await.unwrap();
    (at, got.unwrap().expect(expect))
}

/// `name` is held, nothing waits, and the newest grant's token is `token`.
async fn assert_held_alone(b: &ZkBackend, name: &LockName, token: FencingToken) {
    let status = b.status(name).await.unwrap();
    assert!(status.held);
    assert_eq!(status.waiters, Some(0));
    assert_eq!(status.fencing_token, Some(token));
}

fn node_path(lease: &Lease) -> String {
    let rest = lease.data().strip_prefix("node=").unwrap();
    rest.split_once(";session=").unwrap().0.to_string()
}

fn dir_of(lease: &Lease) -> String {
    let path = node_path(lease);
    path[..path.rfind('/').unwrap()].to_string()
}

/// The lock directory's children, sorted; empty once the directory is gone.
async fn children(b: &ZkBackend, dir: &str) -> Vec<String> {
    let mut kids = b.zk_client().list_children(dir).await.unwrap_or_default();
    kids.sort();
    kids
}

/// Polls every 10 ms until `check` finds nothing wrong; fails after 5 s
/// with what it found wrong last.
async fn until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(wrong) = check().await {
        assert!(Instant::now() < deadline, "{wrong}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the directory until its children are `expected`; fails after 5 s.
async fn until_children(b: &ZkBackend, dir: &str, expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let expected = &expected;
    until(move || async move {
        let now = children(b, dir).await;
        if now == *expected {
            return Ok(());
        }
        Err(format!("children stayed {now:?}, expected {expected:?}"))
    })
    .await;
}

/// Polls `status` until `n` nodes wait behind the holders.
async fn until_waiters(b: &ZkBackend, name: &LockName, n: usize) {
    until(move || async move {
        if b.status(name).await.unwrap().waiters == Some(n) {
            return Ok(());
        }
        Err(format!("never {n} waiter(s)"))
    })
    .await;
}

fn child(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn readers_hold_together_on_tagged_nodes_with_distinct_tokens() {
    let [a, b] = backends().await;
    let name = name("readers");
    let r1 = hold(&a, &name, READ).await;
    let r2 = hold(&b, &name, READ).await;
    let r3 = hold(&a, &name, READ).await;
    let tokens = [&r1, &r2, &r3].map(|l| l.fencing_token());
    assert!(tokens[0] < tokens[1] && tokens[1] < tokens[2], "{tokens:?}");
    for r in [&r1, &r2, &r3] {
        let node = child(&node_path(r));
        let owner = r.owner().to_hex();
        assert!(node.starts_with(&format!("{owner}-s-")), "{node}");
    }
    refused(&b, &name, WRITE).await;
    refused(&b, &name, permits(2)).await;
    assert_held_alone(&b, &name, tokens[2]).await;
    for r in [&r1, &r3] {
        a.release(r).await.unwrap();
    }
    b.release(&r2).await.unwrap();
    let w = hold(&b, &name, WRITE).await;
    assert!(w.fencing_token() > tokens[2]);
    b.release(&w).await.unwrap();
}

#[tokio::test]
async fn a_waiting_permit_goes_when_any_holder_leaves_not_only_the_first() {
    let [a, b] = backends().await;
    let name = name("permit-window");
    let first = hold(&a, &name, permits(2)).await;
    let second = hold(&a, &name, permits(2)).await;
    let node = child(&node_path(&first));
    assert!(node.contains("-p2-"), "{node}");
    let waiter = queue(&b, &name, permits(2));
    until_waiters(&a, &name, 1).await;
    // The later holder leaves; the first one stays.
    let released = Instant::now();
    a.release(&second).await.unwrap();
    let (got_at, third) = granted(waiter, "the waiter got the freed permit").await;
    let woke = got_at - released;
    assert!(woke < Duration::from_secs(2), "woken after {woke:?}");
    assert!(third.fencing_token() > second.fencing_token());
    refused(&a, &name, permits(2)).await;
    a.release(&first).await.unwrap();
    b.release(&third).await.unwrap();
}

#[tokio::test]
async fn a_permit_of_another_count_is_refused_and_leaves_no_node() {
    let [a, b] = backends().await;
    let name = name("mismatch");
    let held = hold(&a, &name, permits(2)).await;
    let dir = dir_of(&held);
    let started = Instant::now();
    let r = b
        .acquire_as(&name, permits(5), &waiting(Duration::from_secs(10)))
        .await;
    assert!(
        matches!(
            r,
            Err(LockError::PermitMismatch {
                declared: 2,
                requested: 5,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Deleted before the error was returned: no waiting for a clean-up.
    assert_eq!(children(&b, &dir).await, [child(&node_path(&held))]);
    a.release(&held).await.unwrap();
}

#[tokio::test]
async fn a_reader_behind_a_waiting_writer_watches_that_writer_and_follows_it() {
    let [a, b, c] = backends().await;
    let name = name("reader-behind-writer");
    let first = hold(&a, &name, READ).await;
    let writer = queue(&b, &name, WRITE);
    until_waiters(&a, &name, 1).await;
    refused(&c, &name, READ).await;
    let reader = queue(&c, &name, READ);
    until_waiters(&a, &name, 2).await;
    a.release(&first).await.unwrap();
    let (_, w) = granted(writer, "the writer got it").await;
    b.release(&w).await.unwrap();
    let (_, r) = granted(reader, "the reader got it").await;
    c.release(&r).await.unwrap();
    let (w, r) = (w.fencing_token(), r.fencing_token());
    assert!(first.fencing_token() < w && w < r, "{first:?} {w} {r}");
}

#[tokio::test]
async fn an_upgraded_hold_keeps_its_reader_node_until_released() {
    let [a, b] = backends().await;
    let name = name("upgrade-alone");
    let r = hold(&a, &name, READ).await;
    let dir = dir_of(&r);
    let w = a
        .upgrade(&r, &once())
        .await
        .unwrap()
        .expect("a sole reader upgrades at once");
    assert_eq!(w.mode(), WRITE);
    assert_eq!(w.owner(), r.owner());
    assert!(w.fencing_token() > r.fencing_token());
    assert!(w.data().contains(";reader="), "{}", w.data());
    let nodes = children(&a, &dir).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    refused(&b, &name, READ).await;
    refused(&b, &name, WRITE).await;
    assert_held_alone(&b, &name, w.fencing_token()).await;
    a.extend(&w, LONG_TTL).await.unwrap();
    a.release(&w).await.unwrap();
    assert!(children(&a, &dir).await.is_empty());
    let again = hold(&b, &name, WRITE).await;
    assert!(again.fencing_token() > w.fencing_token());
    b.release(&again).await.unwrap();
}

#[tokio::test]
async fn readers_arriving_while_an_upgrade_waits_queue_behind_it() {
    let [a, b, c] = backends().await;
    let name = name("upgrade-queue");
    let r1 = hold(&a, &name, READ).await;
    let r2 = hold(&b, &name, READ).await;
    let upgrading = {
        let (a, r1) = (a.clone(), r1.clone());
        tokio::spawn(async move { a.upgrade(&r1, &waiting(Duration::from_secs(20))).await })
    };
    until_waiters(&b, &name, 1).await;
    refused(&c, &name, READ).await;
    let late_reader = queue(&c, &name, READ);
    until_waiters(&b, &name, 2).await;
    b.release(&r2).await.unwrap();
    let w = upgrading.await.unwrap().unwrap().expect("upgraded");
    assert!(w.fencing_token() > r2.fencing_token());
    // The late reader still waits for the writer.
    until_waiters(&b, &name, 1).await;
    let released = Instant::now();
    a.release(&w).await.unwrap();
    let (got_at, late) = granted(late_reader, "the late reader got it").await;
    assert!(got_at >= released);
    assert!(late.fencing_token() > w.fencing_token());
    c.release(&late).await.unwrap();
}

#[tokio::test]
async fn an_upgrade_that_gives_up_or_is_dropped_leaves_the_read_lock_as_it_was() {
    let [a, b] = backends().await;
    let name = name("upgrade-gives-up");
    let r1 = hold(&a, &name, READ).await;
    let r2 = hold(&b, &name, READ).await;
    let dir = dir_of(&r1);
    let mut readers = [child(&node_path(&r1)), child(&node_path(&r2))];
    readers.sort();
    let r = a.upgrade(&r1, &waiting(Duration::from_millis(300))).await;
    assert!(matches!(r, Ok(None)), "{r:?}");
    assert_eq!(children(&a, &dir).await, readers.to_vec());
    let long = waiting(Duration::from_secs(20));
    for i in 0..5u64 {
        let dropped = a.upgrade(&r1, &long);
        let r = tokio::time::timeout(Duration::from_millis(i * 5), dropped).await;
        assert!(
            r.is_err(),
            "the upgrade finished beside another reader: {r:?}"
        );
    }
    until_children(&a, &dir, &readers).await;
    a.extend(&r1, LONG_TTL).await.unwrap();
    refused(&b, &name, WRITE).await;
    a.release(&r1).await.unwrap();
    b.release(&r2).await.unwrap();
}

#[tokio::test]
async fn an_upgrade_of_a_released_read_lock_is_not_held() {
    let [a] = backends().await;
    let name = name("upgrade-released");
    let r = hold(&a, &name, READ).await;
    let dir = dir_of(&r);
    a.release(&r).await.unwrap();
    let got = a.upgrade(&r, &once()).await;
    assert!(matches!(got, Err(LockError::NotHeld { .. })), "{got:?}");
    assert!(children(&a, &dir).await.is_empty());
}

#[tokio::test]
async fn an_exported_upgraded_lease_released_elsewhere_frees_both_nodes() {
    let [a, b] = backends().await;
    let name = name("upgrade-handoff");
    let r = hold(&a, &name, READ).await;
    let dir = dir_of(&r);
    let w = a.upgrade(&r, &once()).await.unwrap().expect("upgraded");
    let imported = Lease::import(&w.export()).unwrap();
    b.release(&imported).await.unwrap();
    assert!(children(&b, &dir).await.is_empty());
    let again = hold(&b, &name, READ).await;
    b.release(&again).await.unwrap();
}

#[tokio::test]
async fn a_lease_whose_node_has_another_mode_tag_is_not_held() {
    let [a] = backends().await;
    let name = name("forged");
    let r = hold(&a, &name, READ).await;
    // The same lease claiming to be a writer's: its node is a reader's.
    let forged = r.export().replace(";mode=s;", ";mode=x;");
    assert_ne!(forged, r.export());
    let forged = Lease::import(&forged).unwrap();
    let got = a.extend(&forged, LONG_TTL).await;
    assert!(matches!(got, Err(LockError::NotHeld { .. })), "{got:?}");
    a.release(&r).await.unwrap();
}
