//! Fault tests against the shared 3-node cluster: nodes stopped under
//! contention, a holder cut off by a blackholing proxy.
//!
//! These stop and start cluster members, so they run in the serial fault
//! phase (`cargo test … faults_ -- --test-threads=1`). Every node a test stops
//! is restarted by a drop guard, also when the test fails, and the test waits
//! for the cluster to be healthy again.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::services::StoppedNodes;
use distlock_conformance::workload::{Contention, Running};
use distlock_conformance::{FaultProxy, ProxyMode};
use distlock_core::{
    AcquireOptions, DistributedLock, GuardState, LockClient, LockName, LostReason, Wait,
};
use distlock_etcd::EtcdConfig;

/// The 1-based node number of the current leader, asking each member.
async fn leader() -> Option<usize> {
    for (i, endpoint) in common::endpoints().iter().enumerate() {
        let Ok(Ok(mut client)) = tokio::time::timeout(
            Duration::from_secs(2),
            etcd_client::Client::connect([endpoint.as_str()], None),
        )
        .await
        else {
            continue;
        };
        let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), client.status()).await
        else {
            continue;
        };
        let me = status.header().map(|h| h.member_id());
        if status.leader() != 0 && Some(status.leader()) == me {
            return Some(i + 1);
        }
    }
    None
}

/// Waits until every member answers and agrees on a leader.
async fn wait_healthy(limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let mut leaders = Vec::new();
        for endpoint in common::endpoints() {
            let status = async {
                let mut c = etcd_client::Client::connect([endpoint.as_str()], None)
                    .await
                    .ok()?;
                c.status().await.ok().map(|s| s.leader())
            };
            if let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(2), status).await {
                leaders.push(l);
            }
        }
        let agreed = leaders.len() == common::endpoints().len()
            && leaders[0] != 0
            && leaders.iter().all(|l| *l == leaders[0]);
        if agreed {
            return;
        }
        assert!(
            Instant::now() < until,
            "etcd cluster not healthy within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `clients` clients taking turns on one lock until finished,
/// counting (not failing on) errors while nodes are down.
async fn contended_run(clients: usize, prefix: &str) -> Running {
    let name = LockName::new(format!("faults/contended/{:08x}", rand::random::<u32>())).unwrap();
    let mut backends: Vec<Arc<dyn DistributedLock>> = Vec::new();
    for _ in 0..clients {
        backends.push(Arc::new(common::connect(common::config(prefix)).await));
    }
    let options =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(5)));
    Contention::new(name)
        .with_options(options)
        .with_hold(Duration::from_millis(2))
        .with_context("etcd nodes stopped")
        .tolerating_faults(Duration::from_millis(100))
        .start(backends)
}

/// Waits until `count` more holds happened, failing with the phase.
async fn progress(run: &Running, count: usize, limit: Duration, phase: &str) {
    if let Err(stalled) = run.wait_for_holds(count, limit).await {
        panic!("no progress {phase}: {stalled}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_stopping_a_follower_then_the_leader_keeps_exclusion_and_progress() {
    let _serial = distlock_conformance::services::exclusive().await;
    wait_healthy(Duration::from_secs(60)).await;
    let prefix = common::unique_prefix("faults-nodes");
    let run = contended_run(4, &prefix).await;
    progress(&run, 40, Duration::from_secs(30), "before any fault").await;

    let leader_node = leader().await.expect("the cluster has a leader");
    let follower = (1..=3).find(|n| *n != leader_node).unwrap();
    let mut stopped = StoppedNodes::stop("etcd", &[follower]);
    progress(&run, 40, Duration::from_secs(60), "with a follower stopped").await;
    stopped.start_node(follower);
    wait_healthy(Duration::from_secs(60)).await;
    progress(
        &run,
        20,
        Duration::from_secs(60),
        "after the follower returned",
    )
    .await;

    let leader_node = leader().await.expect("the cluster has a leader");
    stopped.stop_node(leader_node);
    progress(&run, 40, Duration::from_secs(60), "with the leader stopped").await;
    stopped.start_node(leader_node);
    wait_healthy(Duration::from_secs(60)).await;
    progress(
        &run,
        20,
        Duration::from_secs(60),
        "after the old leader returned",
    )
    .await;

    let outcome = run.finish().await;
    println!("contended run: {outcome}");
    if let Err(e) = outcome.history.check() {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_blackholed_holder_is_lost_within_the_lease_ttl_before_a_waiter_acquires() {
    let _serial = distlock_conformance::services::exclusive().await;
    let prefix = common::unique_prefix("faults-blackhole");
    let upstream = common::endpoint_addrs()[0];
    let proxy = FaultProxy::start(upstream).await.expect("start the proxy");
    let holder = common::connect(
        EtcdConfig::new([proxy.addr().to_string()])
            .with_prefix(&prefix)
            .with_session_timeout(common::TEST_SESSION_TIMEOUT)
            .with_timeout(Duration::from_secs(1)),
    )
    .await;
    let waiter = Arc::new(common::connect(common::config(&prefix)).await);
    let name = LockName::new("faults/blackholed-holder").unwrap();

    // A guard ttl far above the lease ttl: loss must come from the session.
    let client = LockClient::with_defaults(
        Arc::new(holder),
        AcquireOptions::try_once(Duration::from_secs(30)),
    );
    let guard = client.try_lock(&name).await.expect("lock").expect("free");
    let lost = guard.lost();
    let queued = {
        let (waiter, name) = (waiter.clone(), name.clone());
        tokio::spawn(async move {
            let opts = AcquireOptions::new(Duration::from_secs(30))
                .with_wait(Wait::For(Duration::from_secs(30)));
            let got = waiter.acquire(&name, &opts).await;
            (Instant::now(), got)
        })
    };
    // Let the waiter queue up behind the holder.
    while waiter.status(&name).await.expect("status").waiters != Some(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cut = Instant::now();
    proxy.set_mode(ProxyMode::Blackhole);
    // First the keep-alives go unanswered: the guard is suspended (the lease
    // may still be alive), not yet lost.
    let states = guard.handle();
    loop {
        match states.state() {
            GuardState::Held => tokio::time::sleep(Duration::from_millis(10)).await,
            GuardState::Suspended => break,
            GuardState::Lost(r) => panic!("lost ({r}) without being suspended first"),
        }
    }
    let reason = tokio::time::timeout(common::TEST_SESSION_TIMEOUT * 3, lost)
        .await
        .expect("lost() fired");
    let lost_at = Instant::now();
    assert!(
        matches!(reason, LostReason::Session(_)),
        "lost through the etcd lease, got {reason:?}"
    );
    assert!(
        lost_at <= cut + common::TEST_SESSION_TIMEOUT,
        "lost() fired {:?} after the cut, later than the session timeout {:?}",
        lost_at - cut,
        common::TEST_SESSION_TIMEOUT
    );

    let (acquired_at, got) = queued.await.expect("waiter task");
    let got = got
        .expect("acquire")
        .expect("the waiter gets the lock once the lease expires");
    assert!(
        acquired_at > lost_at,
        "the waiter acquired {:?} before the holder reported the loss",
        lost_at - acquired_at
    );
    assert!(got.fencing_token() > guard.fencing_token());
    waiter.release(&got).await.expect("release");
    drop(guard);
}
