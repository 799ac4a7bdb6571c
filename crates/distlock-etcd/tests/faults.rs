//! Fault tests against the shared 3-node cluster: nodes stopped under
//! contention, a holder cut off by a blackholing proxy.
//!
//! These stop and start cluster members, so they run in the serial fault
//! phase (`cargo test … faults_ -- --test-threads=1`). Every node a test stops
//! is restarted by a drop guard, also when the test fails, and the test waits
//! for the cluster to be healthy again.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::{FaultProxy, History, Hold, ProxyMode};
use distlock_core::{
    AcquireOptions, DistributedLock, GuardState, LockClient, LockName, LostReason, Wait,
};
use distlock_etcd::EtcdConfig;

fn services_script() -> String {
    std::env::var("DISTLOCK_SERVICES_SCRIPT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh").to_string()
    })
}

fn services(command: &str, node: usize) {
    let status = std::process::Command::new(services_script())
        .args([command, "etcd", &node.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", services_script()));
    assert!(status.success(), "services.sh {command} etcd {node} failed");
}

/// Restarts every node it stopped when dropped, then waits for health.
#[derive(Default)]
struct StoppedNodes(Vec<usize>);

impl StoppedNodes {
    fn stop(&mut self, node: usize) {
        self.0.push(node);
        services("stop-node", node);
    }

    async fn start(&mut self, node: usize) {
        services("start-node", node);
        self.0.retain(|n| *n != node);
        wait_healthy(Duration::from_secs(60)).await;
    }
}

impl Drop for StoppedNodes {
    fn drop(&mut self) {
        for node in std::mem::take(&mut self.0) {
            services("start-node", node);
        }
    }
}

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

/// Clients taking turns on one lock until stopped, recording every hold.
struct ContendedRun {
    history: History,
    stop: Arc<AtomicBool>,
    acquired: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ContendedRun {
    async fn start(clients: usize, prefix: &str) -> Self {
        let name =
            LockName::new(format!("faults/contended/{:08x}", rand::random::<u32>())).unwrap();
        let run = ContendedRun {
            history: History::new(),
            stop: Arc::new(AtomicBool::new(false)),
            acquired: Arc::new(AtomicUsize::new(0)),
            errors: Arc::new(AtomicUsize::new(0)),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for id in 0..clients {
            let backend = common::connect(common::config(prefix)).await;
            let (name, history) = (name.clone(), run.history.clone());
            let (stop, acquired, errors) =
                (run.stop.clone(), run.acquired.clone(), run.errors.clone());
            tasks.push(tokio::spawn(async move {
                let opts = AcquireOptions::new(Duration::from_secs(30))
                    .with_wait(Wait::For(Duration::from_secs(5)));
                while !stop.load(Ordering::SeqCst) {
                    match backend.acquire(&name, &opts).await {
                        Ok(Some(lease)) => {
                            let start = Instant::now();
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            let end = Instant::now();
                            history.record(Hold {
                                client: id,
                                fencing: lease.fencing_token().get(),
                                start,
                                end,
                            });
                            acquired.fetch_add(1, Ordering::SeqCst);
                            // An application retries a failed release: a key
                            // left behind would hold the lock while we live.
                            for _ in 0..20 {
                                match backend.release(&lease).await {
                                    Ok(()) => break,
                                    Err(e) if e.is_not_held() => break,
                                    Err(_) => {
                                        errors.fetch_add(1, Ordering::SeqCst);
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                    }
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::SeqCst) < 10 {
                                eprintln!("client {id}: {e}");
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }));
        }
        ContendedRun { tasks, ..run }
    }

    /// Waits until `count` more holds happened.
    async fn progress(&self, count: usize, limit: Duration, phase: &str) {
        let target = self.acquired.load(Ordering::SeqCst) + count;
        let until = Instant::now() + limit;
        while self.acquired.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < until,
                "no progress {phase}: {} of {count} holds within {limit:?}",
                count + self.acquired.load(Ordering::SeqCst) - target
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("client task");
        }
        println!(
            "contended run: {} holds, {} errors",
            self.acquired.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst)
        );
        self.history
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_stopping_a_follower_then_the_leader_keeps_exclusion_and_progress() {
    wait_healthy(Duration::from_secs(60)).await;
    let mut stopped = StoppedNodes::default();
    let prefix = common::unique_prefix("faults-nodes");
    let run = ContendedRun::start(4, &prefix).await;
    run.progress(40, Duration::from_secs(30), "before any fault")
        .await;

    let leader_node = leader().await.expect("the cluster has a leader");
    let follower = (1..=3).find(|n| *n != leader_node).unwrap();
    stopped.stop(follower);
    run.progress(40, Duration::from_secs(60), "with a follower stopped")
        .await;
    stopped.start(follower).await;
    run.progress(20, Duration::from_secs(60), "after the follower returned")
        .await;

    let leader_node = leader().await.expect("the cluster has a leader");
    stopped.stop(leader_node);
    run.progress(40, Duration::from_secs(60), "with the leader stopped")
        .await;
    stopped.start(leader_node).await;
    run.progress(20, Duration::from_secs(60), "after the old leader returned")
        .await;

    let history = run.finish().await;
    if let Err(e) = history.check() {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_blackholed_holder_is_lost_within_the_lease_ttl_before_a_waiter_acquires() {
    let prefix = common::unique_prefix("faults-blackhole");
    let upstream: SocketAddr = common::endpoints()[0]
        .trim_start_matches("http://")
        .parse()
        .expect("first endpoint is host:port");
    let proxy = FaultProxy::start(upstream).await.expect("start the proxy");
    let holder = common::connect(
        EtcdConfig::new([proxy.addr().to_string()])
            .with_prefix(&prefix)
            .with_lease_ttl(common::TEST_LEASE_TTL)
            .with_request_timeout(Duration::from_secs(1)),
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
    let reason = tokio::time::timeout(common::TEST_LEASE_TTL * 3, lost)
        .await
        .expect("lost() fired");
    let lost_at = Instant::now();
    assert!(
        matches!(reason, LostReason::Session(_)),
        "lost through the etcd lease, got {reason:?}"
    );
    assert!(
        lost_at <= cut + common::TEST_LEASE_TTL,
        "lost() fired {:?} after the cut, later than the lease ttl {:?}",
        lost_at - cut,
        common::TEST_LEASE_TTL
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
