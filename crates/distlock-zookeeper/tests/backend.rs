//! ZooKeeper-specific promises, beyond the shared conformance suite.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, AcquireRequest, DistributedLock, GuardState, Lease, Liveness, LockBackend,
    LockClient, LockError, LockName, Wait,
};
use distlock_zookeeper::zookeeper_client as zk;
use distlock_zookeeper::{ZkBackend, ZkConfig};

const SESSION: Duration = Duration::from_secs(6);
const LONG_TTL: Duration = Duration::from_secs(60);

fn name(tag: &str) -> LockName {
    LockName::new(format!("spec/{tag}/{:016x}", rand::random::<u64>())).unwrap()
}

fn opts() -> AcquireOptions {
    AcquireOptions::try_once(LONG_TTL)
}

async fn backend(root: &str) -> ZkBackend {
    common::connect(common::config(root, SESSION)).await
}

async fn backend_as(root: &str, user: &str, password: &str) -> ZkBackend {
    common::connect(common::config(root, SESSION).with_credentials(user, password)).await
}

fn node_path(lease: &Lease) -> String {
    let data = lease.data();
    let rest = data.strip_prefix("node=").unwrap();
    rest.split_once(";session=").unwrap().0.to_string()
}

fn parent_of(path: &str) -> &str {
    &path[..path.rfind('/').unwrap()]
}

/// Polls `status` until no waiter is queued (the cancellation cleanup runs
/// in the background); fails after `within`.
async fn until_no_waiters(b: &ZkBackend, name: &LockName, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let s = b.status(name).await.unwrap();
        if s.waiters == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue still has {:?} waiter(s) after {within:?}",
            s.waiters
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn waiter_is_woken_by_the_predecessors_deletion_not_by_polling() {
    let root = common::unique_root();
    let (a, b) = (backend(&root).await, backend(&root).await);
    let name = name("wake");
    for _ in 0..5 {
        let held = a.acquire(&name, &opts()).await.unwrap().unwrap();
        let waiter = {
            let (b, name) = (b.clone(), name.clone());
            tokio::spawn(async move {
                let got = b.acquire(&name, &opts().with_wait(Wait::Forever)).await;
                (Instant::now(), got)
            })
        };
        // Wait until the waiter is queued (its node is visible).
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.status(&name).await.unwrap().waiters != Some(1) {
            assert!(Instant::now() < deadline, "the waiter never queued");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The holder's lease is long and its session healthy: only the
        // deletion of its node can wake the waiter.
        let released = Instant::now();
        a.release(&held).await.unwrap();
        let (woke, got) = waiter.await.unwrap();
        let got = got.unwrap().expect("waiter acquires");
        let latency = woke.duration_since(released);
        assert!(
            latency < Duration::from_millis(200),
            "waiter acquired {latency:?} after the release"
        );
        assert!(got.fencing_token() > held.fencing_token());
        b.release(&got).await.unwrap();
    }
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    let root = common::unique_root();
    let holder = backend(&root).await;
    let name = name("fifo");
    let held = holder.acquire(&name, &opts()).await.unwrap().unwrap();
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..4 {
        let b = backend(&root).await;
        let (n, tx) = (name.clone(), order_tx.clone());
        waiters.push(tokio::spawn(async move {
            let lease = b
                .acquire(&n, &opts().with_wait(Wait::Forever))
                .await
                .unwrap()
                .unwrap();
            tx.send(i).unwrap();
            b.release(&lease).await.unwrap();
        }));
        // Queue them one after another.
        let deadline = Instant::now() + Duration::from_secs(5);
        while holder.status(&name).await.unwrap().waiters != Some(i + 1) {
            assert!(Instant::now() < deadline, "waiter {i} never queued");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    holder.release(&held).await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    let mut order = Vec::new();
    while let Ok(i) = order_rx.try_recv() {
        order.push(i);
    }
    assert_eq!(order, [0, 1, 2, 3]);
}

#[tokio::test]
async fn fencing_tokens_keep_increasing_when_the_lock_directory_is_recreated() {
    let root = common::unique_root();
    let b = backend(&root).await;
    let zk = b.zk_client();
    let name = name("recreated");
    let mut last = None;
    let mut sequences = Vec::new();
    for _ in 0..3 {
        let lease = b.acquire(&name, &opts()).await.unwrap().unwrap();
        let path = node_path(&lease);
        sequences.push(path.rsplit('-').next().unwrap().to_string());
        if let Some(prev) = last {
            assert!(lease.fencing_token() > prev);
        }
        last = Some(lease.fencing_token());
        b.release(&lease).await.unwrap();
        // What the server's container cleanup does to an empty directory.
        zk.delete(parent_of(&path), None).await.unwrap();
    }
    // The sequence restarted with every new directory; the token did not.
    assert!(
        sequences.iter().all(|s| s == &sequences[0]),
        "{sequences:?}"
    );
}

#[tokio::test]
async fn the_lock_node_is_ephemeral_and_its_czxid_is_the_fencing_token() {
    let root = common::unique_root();
    let b = backend(&root).await;
    let name = name("ephemeral");
    let lease = b.acquire(&name, &opts()).await.unwrap().unwrap();
    let zk = b.zk_client();
    let path = node_path(&lease);
    assert!(path.starts_with(&format!("{root}/")), "{path}");
    let stat = zk.check_stat(&path).await.unwrap().unwrap();
    assert_eq!(
        stat.ephemeral_owner,
        b.session_id(),
        "lock node is ephemeral"
    );
    assert_eq!(lease.fencing_token().get(), stat.czxid as u64);
    b.release(&lease).await.unwrap();
    assert!(zk.check_stat(&path).await.unwrap().is_none());
}

#[tokio::test]
async fn a_lingering_node_with_the_same_owner_token_is_deleted_not_adopted() {
    let root = common::unique_root();
    let (holder, waiter) = (backend(&root).await, backend(&root).await);
    let name = name("lingering");
    let held = holder.acquire(&name, &opts()).await.unwrap().unwrap();
    let dir = parent_of(&node_path(&held)).to_string();
    let request = AcquireRequest::new(name.clone(), opts().with_wait(Wait::Forever));
    // What an earlier attempt of this request leaves behind when its session
    // was given up on before the server expired it: a node with the same
    // owner token, on another session, ahead of the new attempt's.
    let zk = holder.zk_client();
    let prefix = format!("{dir}/{}-", request.owner.to_hex());
    let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = zk.create(&prefix, &[], &mode).await.unwrap();
    let lingering = format!("{prefix}{seq}");
    let granting = {
        let (waiter, request) = (waiter.clone(), request.clone());
        tokio::spawn(async move { waiter.grant(&request).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while zk.check_stat(&lingering).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the lingering node was kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.release(&held).await.unwrap();
    let grant = granting.await.unwrap().unwrap().expect("granted");
    let own = format!(";session={:x}", waiter.session_id());
    assert!(grant.data.ends_with(&own), "{} is not on {own}", grant.data);
    assert!(grant.fencing > held.fencing_token());
    let path = grant
        .data
        .strip_prefix("node=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    waiter.zk_client().delete(path, None).await.unwrap();
}

#[tokio::test]
async fn status_counts_waiters_and_shows_the_holders_token() {
    let root = common::unique_root();
    let (a, b, c) = (
        backend(&root).await,
        backend(&root).await,
        backend(&root).await,
    );
    let name = name("status");
    let held = a.acquire(&name, &opts()).await.unwrap().unwrap();
    let mut waiting = Vec::new();
    for w in [&b, &c] {
        let (w, name) = (w.clone(), name.clone());
        waiting.push(tokio::spawn(async move {
            w.acquire(&name, &opts().with_wait(Wait::For(Duration::from_secs(30))))
                .await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let s = a.status(&name).await.unwrap();
        if s.waiters == Some(2) || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.held);
    assert_eq!(status.waiters, Some(2));
    assert_eq!(status.fencing_token, Some(held.fencing_token()));
    for w in &waiting {
        w.abort();
    }
    until_no_waiters(&a, &name, Duration::from_secs(5)).await;
    a.release(&held).await.unwrap();
    let s = a.status(&name).await.unwrap();
    assert!(!s.held);
}

#[tokio::test]
async fn a_dropped_acquire_removes_its_queue_node() {
    let root = common::unique_root();
    let (a, b) = (backend(&root).await, backend(&root).await);
    let name = name("dropped");
    let held = a.acquire(&name, &opts()).await.unwrap().unwrap();
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_millis(150),
            b.acquire(&name, &opts().with_wait(Wait::Forever)),
        )
        .await;
        assert!(r.is_err(), "should still be waiting");
    }
    // A try-lock that finds the lock held leaves nothing behind either.
    assert!(b.acquire(&name, &opts()).await.unwrap().is_none());
    until_no_waiters(&a, &name, Duration::from_secs(5)).await;
    a.release(&held).await.unwrap();
}

#[tokio::test]
async fn leases_of_one_session_share_its_liveness() {
    let root = common::unique_root();
    let b = backend(&root).await;
    let l1 = b.acquire(&name("live-1"), &opts()).await.unwrap().unwrap();
    let l2 = b.acquire(&name("live-2"), &opts()).await.unwrap().unwrap();
    let r1 = b.liveness(&l1).expect("session backends report liveness");
    let r2 = b.liveness(&l2).expect("session backends report liveness");
    assert!(r1.same_channel(&r2));
    assert_eq!(*r1.borrow(), Liveness::Live);
    b.release(&l1).await.unwrap();
    b.release(&l2).await.unwrap();
}

#[tokio::test]
async fn another_identity_cannot_delete_or_release_a_lock_node() {
    let root = common::unique_root();
    let alice = backend_as(&root, "alice", "alice-pw").await;
    let bob = backend_as(&root, "bob", "bob-pw").await;
    let anonymous = backend(&root).await;
    let name = name("acl");
    let lease = alice.acquire(&name, &opts()).await.unwrap().unwrap();
    let path = node_path(&lease);

    // Raw deletes by other identities are refused by the ACL.
    for other in [&bob, &anonymous] {
        let err = other.zk_client().delete(&path, None).await.unwrap_err();
        assert_eq!(err, zk::Error::NoAuth);
    }
    // So is releasing the exported lease through distlock.
    let imported = Lease::import(&lease.export()).unwrap();
    let err = bob.release(&imported).await.unwrap_err();
    assert!(
        matches!(err, LockError::Backend { .. }) && err.to_string().contains("ACL"),
        "{err}"
    );
    // Nor can bob queue for alice's lock.
    assert!(bob.acquire(&name, &opts()).await.is_err());
    // Everyone can still read who holds it.
    let s = bob.status(&name).await.unwrap();
    assert!(s.held);
    assert_eq!(s.fencing_token, Some(lease.fencing_token()));
    alice.release(&lease).await.unwrap();
}

#[tokio::test]
async fn the_same_identity_can_release_an_exported_lease() {
    let root = common::unique_root();
    let scheduler = backend_as(&root, "jobs", "jobs-pw").await;
    let handler = backend_as(&root, "jobs", "jobs-pw").await;
    let name = name("handoff");
    let lease = scheduler.acquire(&name, &opts()).await.unwrap().unwrap();
    let imported = Lease::import(&lease.export()).unwrap();
    let extended = handler.extend(&imported, LONG_TTL).await.unwrap();
    handler.release(&extended).await.unwrap();
    let again = handler.acquire(&name, &opts()).await.unwrap().unwrap();
    assert!(again.fencing_token() > lease.fencing_token());
    handler.release(&again).await.unwrap();
}

#[tokio::test]
async fn userinfo_credentials_are_the_identity_the_legacy_query_keys_name() {
    let root = common::unique_root();
    let hosts = common::hosts().join(",");
    let by_userinfo = ZkBackend::connect(&format!(
        "zk://jobs:jobs%40pw@{hosts}?prefix={root}&session_timeout=6s"
    ))
    .await
    .unwrap();
    let by_query = ZkBackend::connect(&format!(
        "zk://{hosts}?user=jobs&password=jobs%40pw&root={root}&session_timeout_ms=6000"
    ))
    .await
    .unwrap();
    let stranger = ZkBackend::connect(&format!("zk://eve:eve-pw@{hosts}?prefix={root}"))
        .await
        .unwrap();
    let name = name("userinfo");
    let lease = by_userinfo.acquire(&name, &opts()).await.unwrap().unwrap();
    let exported = Lease::import(&lease.export()).unwrap();
    // Another identity is refused by the ACL the userinfo identity set…
    let err = stranger.release(&exported).await.unwrap_err();
    assert!(err.to_string().contains("ACL"), "{err}");
    // …the same identity, named the legacy way, is not.
    by_query.release(&exported).await.unwrap();
    assert!(!by_query.status(&name).await.unwrap().held);
}

#[tokio::test]
async fn a_guard_stays_held_while_the_session_lives() {
    let root = common::unique_root();
    let b: Arc<dyn DistributedLock> = Arc::new(backend(&root).await);
    let client = LockClient::with_defaults(
        b.clone(),
        AcquireOptions::try_once(Duration::from_millis(600)),
    );
    let guard = client.try_lock(name("guard")).await.unwrap().unwrap();
    // Several watchdog rounds (ttl/3 = 200 ms) later it is still held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(guard.state(), GuardState::Held);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_ensemble_is_an_error_not_a_hang() {
    let config = ZkConfig::new(["127.0.0.1:1"]).with_session_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let err = ZkBackend::from_config(config).await.unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_connection_dropped_while_opening_does_not_fail_the_open() {
    // A proxy that drops the first connection it accepts and forwards the
    // others to a server of the ensemble.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    let server = common::hosts()[0].clone();
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&dropped);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                drop(inbound);
                continue;
            }
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&server).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let config = common::config_for(vec![proxy], &common::unique_root(), SESSION);
    let backend = ZkBackend::from_config(config)
        .await
        .expect("opened once the proxy forwards");
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let name = LockName::new("through-the-proxy").unwrap();
    let lease = backend
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("free");
    backend.release(&lease).await.unwrap();
}

#[tokio::test]
async fn errors_and_debug_output_never_show_the_password() {
    let hosts = common::hosts().join(",");
    let url = format!(
        "zk://{hosts}?user=carol&password=top-secret-pw&session_timeout_ms=4000&root={}",
        common::unique_root()
    );
    let b = ZkBackend::connect(&url).await.unwrap();
    assert!(!format!("{b:?}").contains("top-secret-pw"));
    for bad in [
        format!("zk://{hosts}?user=carol&password=top-secret-pw&session_timeout_ms=zero"),
        format!("zk://carol:top-secret-pw@{hosts}?session_timeout=zero"),
    ] {
        let err = ZkBackend::connect(&bad).await.unwrap_err();
        assert!(!err.to_string().contains("top-secret-pw"), "{err}");
        assert!(!format!("{err:?}").contains("top-secret-pw"), "{err:?}");
    }
    let b = ZkBackend::connect(&format!(
        "zk://carol:top-secret-pw@{hosts}?prefix={}",
        common::unique_root()
    ))
    .await
    .unwrap();
    assert!(!format!("{b:?}").contains("top-secret-pw"));
}
