//! A waiter that dies in line holds the others up for its waiter-liveness
//! window, never until its session ends: the scenario of
//! [`distlock_conformance::dying_waiter`] on ZooKeeper. Broken on purpose,
//! a waiter queues the old way (its node never marked, its turn never
//! claimed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::dying_waiter::{self, DyingWaiterSetup, Handing, Scenario, SESSION};
use distlock_core::{async_trait, DistributedLock, Lease, Mode};
use distlock_zookeeper::zookeeper_client;

/// The session of this process's clients.
const OUR_SESSION: Duration = Duration::from_secs(6);

struct Setup;

#[async_trait]
impl DyingWaiterSetup for Setup {
    fn child_env(&self) -> &'static str {
        "DISTLOCK_ZK_DYING_WAITER"
    }

    fn unique_prefix(&self) -> String {
        common::unique_root()
    }

    async fn client(&self, prefix: &str) -> Arc<dyn DistributedLock> {
        Arc::new(common::connect(common::config(prefix, OUR_SESSION)).await)
    }

    async fn dying_client(&self, prefix: &str, broken: bool) -> Arc<dyn DistributedLock> {
        let mut config = common::config(prefix, SESSION);
        if broken {
            config = config.without_waiter_claims();
        }
        Arc::new(common::connect(config).await)
    }

    async fn vanish(&self, lease: &Lease) {
        let raw = zookeeper_client::Client::connect(&common::hosts().join(","))
            .await
            .unwrap();
        let path = lease
            .data()
            .strip_prefix("node=")
            .and_then(|rest| rest.split(';').next())
            .expect("the lease names its node");
        raw.delete(path, None).await.unwrap();
    }
}

fn scenario(test: &'static str, holder: Mode, dying: Mode, behind: Mode) -> Scenario {
    Scenario {
        test,
        holder,
        holds: 1,
        dying,
        behind,
        handing: Handing::Release,
        broken: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_waiter_holds_the_next_one_up_for_its_window_not_its_session() {
    let x = Mode::Exclusive;
    let test = "a_dead_waiter_holds_the_next_one_up_for_its_window_not_its_session";
    dying_waiter::run(Setup, scenario(test, x, x, x)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_waiter_is_passed_over_by_the_waiters_behind_when_no_releaser_checks() {
    let x = Mode::Exclusive;
    let test = "a_dead_waiter_is_passed_over_by_the_waiters_behind_when_no_releaser_checks";
    let vanishing = Scenario {
        handing: Handing::Vanish,
        ..scenario(test, x, x, x)
    };
    dying_waiter::run(Setup, vanishing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_behind_a_dead_writer_go_within_its_window() {
    let test = "readers_behind_a_dead_writer_go_within_its_window";
    let (s, x) = (Mode::Shared, Mode::Exclusive);
    dying_waiter::run(Setup, scenario(test, s, x, s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_permit_waiter_is_passed_over() {
    let two = Mode::Permit { limit: 2 };
    let test = "a_dead_permit_waiter_is_passed_over";
    let permits = Scenario {
        holds: 2,
        ..scenario(test, two, two, two)
    };
    dying_waiter::run(Setup, permits).await;
}

/// Broken on purpose: the child queues the old way, so its entry stays
/// until its session ends, after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_queued_without_claims_is_caught_holding_the_line() {
    let x = Mode::Exclusive;
    let test = "a_waiter_queued_without_claims_is_caught_holding_the_line";
    let broken = Scenario {
        broken: true,
        ..scenario(test, x, x, x)
    };
    dying_waiter::broken_is_caught(Setup, broken).await;
}

#[test]
fn the_window_is_read_from_the_url_and_checked() {
    use distlock_zookeeper::{ZkConfig, DEFAULT_WAITER_TIMEOUT};
    let url = "zk://127.0.0.1:2181/?waiter_timeout=250ms";
    let config = ZkConfig::from_url(url).unwrap();
    assert_eq!(config.waiter_timeout(), Duration::from_millis(250));
    let plain = ZkConfig::from_url("zk://127.0.0.1:2181").unwrap();
    assert_eq!(plain.waiter_timeout(), DEFAULT_WAITER_TIMEOUT);
    assert_eq!(DEFAULT_WAITER_TIMEOUT, Duration::from_secs(1));
    for bad in ["10ms", "2h", "soon"] {
        let url = format!("zk://127.0.0.1:2181/?waiter_timeout={bad}");
        match ZkConfig::from_url(&url) {
            Err(distlock_core::LockError::InvalidConfig { reason }) => {
                assert!(reason.contains("waiter_timeout"), "{reason}")
            }
            other => panic!("`waiter_timeout={bad}` gave {other:?}"),
        }
    }
}
