//! Fault tests: cut a holder off, stop ensemble members. They run serially in
//! their own phase (`cargo test faults_ -- --test-threads=1`) because they
//! stop and restart nodes of the shared ensemble; every node stopped here is
//! restarted (and the ensemble awaited), also when a test fails.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::services::StoppedNodes;
use distlock_conformance::workload::{Contention, Running};
use distlock_conformance::{FaultProxy, ProxyMode};
use distlock_core::{
    AcquireOptions, DistributedLock, GuardState, Liveness, LockClient, LockName, LostReason, Wait,
};
use distlock_zookeeper::ZkBackend;

fn name(tag: &str) -> LockName {
    LockName::new(format!("faults/{tag}/{:016x}", rand::random::<u64>())).unwrap()
}

/// The `Mode:` line of the `srvr` four-letter command (leader, follower, …).
fn mode(host: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&common::addr(host), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
}

/// Node numbers (1-based) of the leader and of one follower.
fn roles() -> (usize, usize) {
    let hosts = common::hosts();
    let modes: Vec<Option<String>> = hosts.iter().map(|h| mode(h)).collect();
    let leader = modes.iter().position(|m| m.as_deref() == Some("leader"));
    let follower = modes.iter().position(|m| m.as_deref() == Some("follower"));
    match (leader, follower) {
        (Some(l), Some(f)) => (l + 1, f + 1),
        _ => panic!(
            "no healthy ensemble at {hosts:?} (modes {modes:?}): start the servers with scripts/services.sh up"
        ),
    }
}

/// Waits until one leader and two followers serve again.
fn wait_healthy() {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let modes: Vec<Option<String>> = common::hosts().iter().map(|h| mode(h)).collect();
        let leaders = modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count();
        let serving = modes
            .iter()
            .filter(|m| matches!(m.as_deref(), Some("leader" | "follower")))
            .count();
        if leaders == 1 && serving == modes.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ensemble not healthy again: {modes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops `nodes` of the ensemble; they are restarted, and the ensemble
/// awaited, when the returned guard drops.
fn stop(nodes: &[usize]) -> StoppedNodes {
    let mut down = StoppedNodes::new("zookeeper").after_restart(wait_healthy);
    for &node in nodes {
        down.stop_node(node);
    }
    down
}

/// Restarts what `down` stopped and waits for a healthy ensemble, letting
/// the runtime's other tasks run meanwhile.
fn restart(mut down: StoppedNodes) {
    tokio::task::block_in_place(move || down.start_all());
}

/// Waits until the workload made `more` holds; after `within`, describes the
/// lock's queue (who is in it, owned by which session) and fails.
async fn progress(
    running: &Running,
    more: usize,
    within: Duration,
    what: &str,
    clients: &[ZkBackend],
    name: &LockName,
) {
    let Err(stalled) = running.wait_for_holds(more, within).await else {
        return;
    };
    let queue = describe_queue(&clients[0], name).await;
    let sessions: Vec<String> = clients
        .iter()
        .map(|c| format!("{:#x} {:?}", c.session_id(), *c.session_liveness().borrow()))
        .collect();
    panic!("{what}: {stalled}; queue: {queue:?}; client sessions: {sessions:?}");
}

/// The queue nodes of `name` with their owner sessions (for failure messages).
async fn describe_queue(client: &ZkBackend, name: &LockName) -> Vec<String> {
    let status = client.status(name).await;
    let zk = client.zk_client();
    let Ok(children) = zk.list_children(client.config().base_path().as_str()).await else {
        return vec![format!("status {status:?}; root unreadable")];
    };
    let mut out = vec![format!("status {status:?}")];
    for dir in children {
        let dir = format!("{}/{dir}", client.config().base_path());
        for node in zk.list_children(&dir).await.unwrap_or_default() {
            let path = format!("{dir}/{node}");
            let owner = zk
                .check_stat(&path)
                .await
                .ok()
                .flatten()
                .map(|s| format!("{:#x} czxid {}", s.ephemeral_owner, s.czxid));
            out.push(format!("{node}: {owner:?}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_blackholed_holder_is_lost_before_a_waiter_acquires() {
    let _serial = distlock_conformance::services::exclusive().await;
    wait_healthy();
    let root = common::unique_root();
    let session = Duration::from_secs(3);
    let hosts = common::hosts();
    let proxy = FaultProxy::start(common::addr(&hosts[0])).await.unwrap();
    let holder = Arc::new(
        common::connect(common::config_for(
            vec![proxy.addr().to_string()],
            &root,
            session,
        ))
        .await,
    );
    let waiter = common::connect(common::config(&root, session)).await;
    let negotiated = holder.session_timeout();

    // Follow the holder's session: when it was suspended, when lost.
    let mut liveness = holder.session_liveness();
    let watch = tokio::spawn(async move {
        let mut suspended_at = None;
        loop {
            let now = Instant::now();
            match liveness.borrow_and_update().clone() {
                Liveness::Suspended if suspended_at.is_none() => suspended_at = Some(now),
                Liveness::Lost(_) => return (suspended_at, now),
                _ => {}
            }
            liveness.changed().await.unwrap();
        }
    });

    let client = LockClient::with_defaults(
        holder.clone() as Arc<dyn DistributedLock>,
        AcquireOptions::try_once(Duration::from_secs(60)),
    );
    let name = name("blackhole");
    let guard = client.try_lock(&name).await.unwrap().expect("free lock");
    let lost = guard.lost();
    let waiting = {
        let (waiter, name) = (waiter.clone(), name.clone());
        tokio::spawn(async move {
            let got = waiter
                .acquire(
                    &name,
                    &AcquireOptions::new(Duration::from_secs(60))
                        .with_wait(Wait::For(Duration::from_secs(30))),
                )
                .await;
            (Instant::now(), got)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while waiter.status(&name).await.unwrap().waiters != Some(1) {
        assert!(Instant::now() < deadline, "the waiter never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cut = Instant::now();
    proxy.set_mode(ProxyMode::Blackhole);
    let reason = tokio::time::timeout(negotiated * 3, lost)
        .await
        .expect("lost() fired");
    let lost_at = Instant::now();
    let (acquired_at, got) = waiting.await.unwrap();
    let got = got
        .unwrap()
        .expect("the waiter gets the lock once the session expired");
    let (suspended_at, session_lost_at) = watch.await.unwrap();

    assert!(matches!(reason, LostReason::Session(_)), "{reason:?}");
    let suspended_at = suspended_at.expect("the disconnect is reported as Suspended first");
    assert!(suspended_at < session_lost_at);
    assert!(
        lost_at.duration_since(cut) <= negotiated + Duration::from_millis(500),
        "lost() fired {:?} after the cut; session timeout {negotiated:?}",
        lost_at.duration_since(cut)
    );
    assert!(
        acquired_at > lost_at,
        "the waiter acquired {:?} before the holder's lost() fired",
        lost_at.duration_since(acquired_at)
    );
    assert!(got.fencing_token() > guard.fencing_token());
    println!(
        "suspended after {:?}, lost after {:?}, waiter acquired after {:?} (session {negotiated:?})",
        suspended_at.duration_since(cut),
        lost_at.duration_since(cut),
        acquired_at.duration_since(cut)
    );
    waiter.release(&got).await.unwrap();
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_follower_then_leader_stop_during_contention_keeps_exclusion() {
    let _serial = distlock_conformance::services::exclusive().await;
    wait_healthy();
    let root = common::unique_root();
    let session = Duration::from_secs(6);
    let name = name("ensemble");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(common::connect(common::config(&root, session)).await);
    }
    let running = Contention::new(name.clone())
        .with_options(
            AcquireOptions::new(Duration::from_secs(30))
                .with_wait(Wait::For(Duration::from_secs(10))),
        )
        .with_context("ensemble faults")
        // Errors come fast while no quorum serves: pace the retries.
        .tolerating_faults(Duration::from_millis(100))
        .start(
            clients
                .iter()
                .map(|c| Arc::new(c.clone()) as Arc<dyn DistributedLock>)
                .collect(),
        );
    let step = Duration::from_secs(60);
    progress(&running, 40, step, "before any fault", &clients, &name).await;

    let (leader, follower) = roles();
    let down = stop(&[follower]);
    progress(&running, 40, step, "with a follower down", &clients, &name).await;
    restart(down);
    progress(
        &running,
        20,
        step,
        "after the follower came back",
        &clients,
        &name,
    )
    .await;

    let down = stop(&[leader]);
    progress(
        &running,
        40,
        step,
        "after the leader stopped",
        &clients,
        &name,
    )
    .await;
    restart(down);
    progress(
        &running,
        20,
        step,
        "after the old leader came back",
        &clients,
        &name,
    )
    .await;

    let outcome = running.finish().await;
    println!(
        "{} acquisitions, {} failed attempts during the faults",
        outcome.history.len(),
        outcome.failures()
    );
    if let Err(e) = outcome.history.check() {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_a_short_disconnect_suspends_the_guard_without_losing_the_lock() {
    let _serial = distlock_conformance::services::exclusive().await;
    wait_healthy();
    let root = common::unique_root();
    let hosts = common::hosts();
    let proxy = FaultProxy::start(common::addr(&hosts[0])).await.unwrap();
    let holder = Arc::new(
        common::connect(common::config_for(
            vec![proxy.addr().to_string()],
            &root,
            Duration::from_secs(8),
        ))
        .await,
    );
    let other = common::connect(common::config(&root, Duration::from_secs(8))).await;
    let client = LockClient::with_defaults(
        holder.clone() as Arc<dyn DistributedLock>,
        AcquireOptions::try_once(Duration::from_secs(60)),
    );
    let name = name("short-cut");
    let guard = client.try_lock(&name).await.unwrap().expect("free lock");
    let states = guard.handle();
    let mut liveness = holder.session_liveness();

    proxy.set_mode(ProxyMode::Blackhole);
    tokio::time::timeout(Duration::from_secs(10), async {
        while *liveness.borrow_and_update() != Liveness::Suspended {
            liveness.changed().await.unwrap();
        }
    })
    .await
    .expect("the disconnect is reported as Suspended");
    // The guard follows the session into Suspended (through its own task).
    let deadline = Instant::now() + Duration::from_secs(2);
    while states.state() != GuardState::Suspended {
        assert!(
            Instant::now() < deadline,
            "guard state {:?}",
            states.state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Suspended is not lost: nobody else can take the lock meanwhile.
    assert!(other
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(60)))
        .await
        .unwrap()
        .is_none());

    proxy.set_mode(ProxyMode::Pass);
    tokio::time::timeout(Duration::from_secs(10), async {
        while *liveness.borrow_and_update() != Liveness::Live {
            liveness.changed().await.unwrap();
        }
    })
    .await
    .expect("the session reconnects in time");
    let deadline = Instant::now() + Duration::from_secs(2);
    while states.state() != GuardState::Held {
        assert!(
            Instant::now() < deadline,
            "guard state {:?}",
            states.state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!guard.is_lost());
    let status = other.status(&name).await.unwrap();
    assert_eq!(status.fencing_token, Some(guard.fencing_token()));
    assert!(!states.is_lost());
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_without_a_quorum_operations_fail_within_the_callers_wait() {
    let _serial = distlock_conformance::services::exclusive().await;
    wait_healthy();
    let root = common::unique_root();
    let b = common::connect(common::config(&root, Duration::from_secs(6))).await;
    let held = b
        .acquire(
            &name("held"),
            &AcquireOptions::try_once(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .unwrap();
    let (leader, follower) = roles();
    let down = stop(&[follower, leader]);
    // One node of three is left: no quorum, no service.
    let wait = Duration::from_millis(1500);
    for _ in 0..3 {
        let start = Instant::now();
        let r = b
            .acquire(
                &name("no-quorum"),
                &AcquireOptions::new(Duration::from_secs(60)).with_wait(Wait::For(wait)),
            )
            .await;
        let took = start.elapsed();
        assert!(
            !matches!(r, Ok(Some(_))),
            "acquired without a quorum: {r:?}"
        );
        assert!(
            took < wait + Duration::from_secs(1),
            "acquire took {took:?} with a {wait:?} wait"
        );
    }
    let start = Instant::now();
    let r = b.extend(&held, Duration::from_secs(60)).await;
    assert!(r.is_err(), "extended without a quorum");
    assert!(start.elapsed() <= b.session_timeout() + Duration::from_secs(1));
    restart(down);

    // Service resumes once the quorum is back (on a new session if the old
    // one was lost meanwhile).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let opts = AcquireOptions::new(Duration::from_secs(60))
            .with_wait(Wait::For(Duration::from_secs(5)));
        match b.acquire(&name("after"), &opts).await {
            Ok(Some(lease)) => {
                b.release(&lease).await.unwrap();
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "no service after the quorum came back: {other:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_a_waiter_that_loses_its_session_queues_again_on_a_new_one() {
    let _serial = distlock_conformance::services::exclusive().await;
    let root = common::unique_root();
    let session = Duration::from_secs(6);
    let hosts = common::hosts();
    let proxy = FaultProxy::start(common::addr(&hosts[0])).await.unwrap();
    let waiter = Arc::new(
        common::connect(common::config_for(
            vec![proxy.addr().to_string()],
            &root,
            session,
        ))
        .await,
    );
    let holder = common::connect(common::config(&root, session)).await;
    let name = name("restart");
    let held = holder
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    let abandoned = waiter.session_id();
    let mut liveness = waiter.session_liveness();
    let waiting = {
        let (waiter, name) = (waiter.clone(), name.clone());
        tokio::spawn(async move {
            let opts = AcquireOptions::new(Duration::from_secs(60))
                .with_wait(Wait::For(Duration::from_secs(60)));
            waiter.acquire(&name, &opts).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder.status(&name).await.unwrap().waiters != Some(1) {
        assert!(Instant::now() < deadline, "the waiter never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Cut the waiter off until it gives its session up, then let it back:
    // its acquire starts over on a new session with the same owner token.
    proxy.set_mode(ProxyMode::Blackhole);
    tokio::time::timeout(session * 2, async {
        while !matches!(*liveness.borrow_and_update(), Liveness::Lost(_)) {
            liveness.changed().await.unwrap();
        }
    })
    .await
    .expect("the cut-off session is declared lost");
    proxy.set_mode(ProxyMode::Pass);
    let deadline = Instant::now() + session;
    while waiter.session_id() == abandoned {
        assert!(Instant::now() < deadline, "no new session");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.release(&held).await.unwrap();

    let lease = waiting
        .await
        .unwrap()
        .unwrap()
        .expect("the waiter acquires on its new session");
    let node = lease.data().split(";session=").next().unwrap().to_string();
    let node = node.strip_prefix("node=").unwrap().to_string();
    let stat = waiter
        .zk_client()
        .check_stat(&node)
        .await
        .unwrap()
        .expect("the lease's node exists");
    assert_eq!(
        stat.ephemeral_owner,
        waiter.session_id(),
        "the lease must stand on the new session's node"
    );
    assert_ne!(stat.ephemeral_owner, abandoned);
    assert!(lease.fencing_token() > held.fencing_token());
    let status = holder.status(&name).await.unwrap();
    assert_eq!(status.fencing_token, Some(lease.fencing_token()));
    assert_eq!(status.waiters, Some(0), "the abandoned node is gone");
    let lease = waiter
        .extend(&lease, Duration::from_secs(60))
        .await
        .unwrap();
    waiter.release(&lease).await.unwrap();
}
