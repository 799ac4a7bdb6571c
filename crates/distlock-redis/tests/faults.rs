//! Fault tests: instances stopped and holders cut off their instances.
//!
//! They stop and start the shared servers, so they run in the serial fault
//! phase (`cargo test … faults_ -- --test-threads=1`); every stopped node is
//! restarted by a drop guard, also when a test fails.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::{FaultProxy, History, Hold, ProxyMode};
use distlock_core::{AcquireOptions, DistributedLock, LockClient, LockError, LockName, Wait};

fn services_script() -> String {
    std::env::var("DISTLOCK_SERVICES_SCRIPT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh").to_string()
    })
}

fn services(action: &str, node: u32) {
    let status = Command::new("bash")
        .arg(services_script())
        .args([action, "redis", &node.to_string()])
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the services script: {e}; {}",
                common::START_SERVERS
            )
        });
    assert!(status.success(), "services.sh {action} redis {node} failed");
}

/// Stops redis nodes for the duration of a test and restarts them on drop
/// (start-node waits until each answers again).
struct StoppedNodes(Vec<u32>);

impl StoppedNodes {
    fn stop(nodes: &[u32]) -> Self {
        let guard = StoppedNodes(nodes.to_vec());
        for &n in nodes {
            services("stop-node", n);
        }
        guard
    }
}

impl Drop for StoppedNodes {
    fn drop(&mut self) {
        for &n in &self.0 {
            services("start-node", n);
        }
    }
}

fn name(case: &str) -> LockName {
    let tag = distlock_core::OwnerToken::random().to_hex();
    LockName::new(format!("faults/{case}/{tag}")).unwrap()
}

async fn contend(
    clients: Vec<Arc<dyn DistributedLock>>,
    name: &LockName,
    rounds: usize,
) -> History {
    let history = History::new();
    let mut tasks = Vec::new();
    for (id, c) in clients.into_iter().enumerate() {
        let (name, history) = (name.clone(), history.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let o = AcquireOptions::new(Duration::from_secs(10))
                    .with_wait(Wait::For(Duration::from_secs(30)));
                let lease = c
                    .acquire(&name, &o)
                    .await
                    .unwrap_or_else(|e| panic!("client {id}: {e}"))
                    .unwrap_or_else(|| panic!("client {id} starved"));
                let start = Instant::now();
                tokio::task::yield_now().await;
                history.record(Hold {
                    client: id,
                    fencing: lease.fencing_token().get(),
                    start,
                    end: Instant::now(),
                });
                c.release(&lease).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_keeps_exclusion_with_two_of_five_instances_stopped() {
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-two-down:";
    let _stopped = StoppedNodes::stop(&[2, 5]);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(common::redlock(&addrs, prefix).await);
    }
    let lock = name("two-down");
    let history = contend(clients, &lock, 25).await;
    assert_eq!(history.len(), 100);
    if let Err(e) = history.check() {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_without_quorum_is_unavailable_and_recovers() {
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
        let _stopped = StoppedNodes::stop(&[1, 3, 4]);
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
            &AcquireOptions::new(Duration::from_secs(5)).with_wait(Wait::For(Duration::from_secs(10))),
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
        .acquire(&lock, &AcquireOptions::new(ttl).with_wait(Wait::For(ttl * 5)))
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

async fn proxies_for(addrs: &[String]) -> Vec<FaultProxy> {
    let mut proxies = Vec::new();
    for a in addrs {
        let upstream: SocketAddr = a.parse().unwrap();
        proxies.push(FaultProxy::start(upstream).await.unwrap());
    }
    proxies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_partitioned_holder_reports_lost_before_another_acquires() {
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-partition-redlock:";
    let proxies = proxies_for(&addrs).await;
    let proxied: Vec<String> = proxies.iter().map(|p| p.addr().to_string()).collect();
    let holder = common::redlock(&proxied, prefix).await;
    let other = common::redlock(&addrs, prefix).await;
    partitioned_holder_is_lost_before_another_acquires(holder, &proxies, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_single_partitioned_holder_reports_lost_before_another_acquires() {
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs[..1]).await;
    let prefix = "faults-partition-single:";
    let proxies = proxies_for(&addrs[..1]).await;
    let holder: Arc<dyn DistributedLock> = Arc::new(
        distlock_redis::RedisBackend::connect(&format!(
            "redis://{}?prefix={prefix}",
            proxies[0].addr()
        ))
        .await
        .unwrap(),
    );
    let other = common::single(prefix).await;
    partitioned_holder_is_lost_before_another_acquires(holder, &proxies, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_redlock_reset_connections_recover() {
    let addrs = common::instance_addrs();
    common::require_all_up(&addrs).await;
    let prefix = "faults-reset:";
    let proxies = proxies_for(&addrs).await;
    let proxied: Vec<String> = proxies.iter().map(|p| p.addr().to_string()).collect();
    let client = common::redlock(&proxied, prefix).await;
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
