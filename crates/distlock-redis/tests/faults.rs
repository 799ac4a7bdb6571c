//! Fault tests: instances stopped and holders cut off their instances.
//!
//! They stop and start the shared servers, so they run in the serial fault
//! phase (`cargo test … faults_ -- --test-threads=1`); every stopped node is
//! restarted by a drop guard, also when a test fails.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::services::StoppedNodes;
use distlock_conformance::workload::Contention;
use distlock_conformance::{FaultProxy, ProxyMode};
use distlock_core::{AcquireOptions, DistributedLock, LockClient, LockError, LockName, Wait};

fn name(case: &str) -> LockName {
    let tag = distlock_core::OwnerToken::random().to_hex();
    LockName::new(format!("faults/{case}/{tag}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_keeps_exclusion_with_two_of_five_instances_stopped() {
    let _serial = distlock_conformance::services::exclusive().await;
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-two-down:";
    let _stopped = StoppedNodes::stop("redis", &[2, 5]);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(common::redlock(&addrs, prefix).await);
    }
    let outcome = Contention::new(name("two-down"))
        .with_context("redlock two of five down")
        .with_options(
            AcquireOptions::new(Duration::from_secs(10))
                .with_wait(Wait::For(Duration::from_secs(30))),
        )
        .run(clients, 25)
        .await;
    assert_eq!(outcome.history.len(), 100);
    if let Err(e) = outcome.history.check() {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_without_quorum_is_unavailable_and_recovers() {
    let _serial = distlock_conformance::services::exclusive().await;
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-three-down:";
    let client = common::redlock(&addrs, prefix).await;
    let lock = name("three-down");
    let before = client
        .acquire(&lock, &AcquireOptions::try_once(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("free lock");
    client.release(&before).await.unwrap();

    {
        let _stopped = StoppedNodes::stop("redis", &[1, 3, 4]);
        let wait = Duration::from_secs(2);
        let start = Instant::now();
        let got = client
            .acquire(
                &lock,
                &AcquireOptions::new(Duration::from_secs(5)).with_wait(Wait::For(wait)),
            )
            .await;
        let took = start.elapsed();
        match got {
            Err(LockError::Unavailable { .. }) => {}
            other => panic!("expected Unavailable without a quorum, got {other:?}"),
        }
        assert!(took <= wait + Duration::from_millis(500), "took {took:?}");
        // Nodes restart here.
    }

    let after = client
        .acquire(
            &lock,
            &AcquireOptions::new(Duration::from_secs(5))
                .with_wait(Wait::For(Duration::from_secs(10))),
        )
        .await
        .expect("acquire after the instances came back")
        .expect("the lock is free");
    assert!(
        after.fencing_token() > before.fencing_token(),
        "fencing tokens survive the restart (AOF)"
    );
    client.release(&after).await.unwrap();
}

/// Cuts `holder` off every instance (through one fault proxy per instance)
/// while it holds the lock through a self-extending guard: the guard must
/// report loss, and that before `other` can take the lock.
async fn partitioned_holder_is_lost_before_another_acquires(
    holder: Arc<dyn DistributedLock>,
    proxies: &[FaultProxy],
    other: Arc<dyn DistributedLock>,
) {
    let ttl = Duration::from_secs(2);
    let client = LockClient::with_defaults(holder, AcquireOptions::try_once(ttl));
    let lock = name("partitioned");
    let guard = client.try_lock(&lock).await.unwrap().expect("free lock");
    let lost = guard.lost();
    let lost_at = tokio::spawn(async move {
        let reason = lost.await;
        (Instant::now(), reason)
    });
    for p in proxies {
        p.set_mode(ProxyMode::Blackhole);
    }
    let got = other
        .acquire(
            &lock,
            &AcquireOptions::new(ttl).with_wait(Wait::For(ttl * 5)),
        )
        .await
        .unwrap()
        .expect("the cut-off holder's lock frees after its ttl");
    let acquired_at = Instant::now();
    let (lost_at, reason) = lost_at.await.unwrap();
    let valid_until = guard.lease().valid_until();
    // The watchdog declares the guard lost when its validity passes; allow
    // for the scheduling of the task that observes it.
    assert!(
        lost_at <= valid_until + Duration::from_millis(100),
        "lost() fired {:?} after the validity ended ({reason})",
        lost_at - valid_until
    );
    assert!(
        lost_at < acquired_at,
        "lost() fired {:?} after another client acquired ({reason})",
        lost_at - acquired_at
    );
    assert!(guard.is_lost());
    assert!(got.fencing_token() > guard.fencing_token());
    other.release(&got).await.unwrap();
    for p in proxies {
        p.set_mode(ProxyMode::Pass);
    }
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_partitioned_holder_reports_lost_before_another_acquires() {
    let _serial = distlock_conformance::services::exclusive().await;
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-partition-redlock:";
    let holder = common::proxied_redlock(&addrs, prefix).await;
    let other = common::redlock(&addrs, prefix).await;
    partitioned_holder_is_lost_before_another_acquires(holder.client, &holder.proxies, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_single_partitioned_holder_reports_lost_before_another_acquires() {
    let _serial = distlock_conformance::services::exclusive().await;
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs[..1]).await;
    let prefix = "faults-partition-single:";
    let holder = common::proxied_single(prefix).await;
    let other = common::single(prefix).await;
    partitioned_holder_is_lost_before_another_acquires(holder.client, &holder.proxies, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_reset_connections_recover() {
    let _serial = distlock_conformance::services::exclusive().await;
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-reset:";
    let proxied = common::proxied_redlock(&addrs, prefix).await;
    let (client, proxies) = (proxied.client, proxied.proxies);
    let lock = name("reset");
    let o = AcquireOptions::try_once(Duration::from_secs(5));
    let first = client.acquire(&lock, &o).await.unwrap().expect("free");
    client.release(&first).await.unwrap();
    for p in &proxies[..2] {
        p.set_mode(ProxyMode::Reset);
    }
    // A minority reset: still works.
    let second = client.acquire(&lock, &o).await.unwrap().expect("free");
    assert!(second.fencing_token() > first.fencing_token());
    client.release(&second).await.unwrap();
    for p in &proxies {
        p.set_mode(ProxyMode::Reset);
    }
    let err = client.acquire(&lock, &o).await.unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err}");
    for p in &proxies {
        p.set_mode(ProxyMode::Pass);
    }
    let third = client
        .acquire(&lock, &o.with_wait(Wait::For(Duration::from_secs(5))))
        .await
        .unwrap()
        .expect("free after the connections healed");
    assert!(third.fencing_token() > second.fencing_token());
    client.release(&third).await.unwrap();
}
