//! A waiter that dies in line holds the others up for its waiter-liveness
//! window, never until its session ends.
//!
//! A child process queues for a held name and is SIGKILLed while a client
//! of this process waits behind it; then the turn comes to the dead one.
//! The child's session is long: its node could not go with it before
//! [`OLD_BOUND`] after the kill (the server last heard from it at most a
//! third of the session before). The waiter behind must get the name well
//! before that — which only the window can give. A child that queues the
//! old way (its node never marked, its turn never claimed: broken on
//! purpose) holds the line up until its session ends, and the case says
//! so.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::child::{report, ChildProcess};
use distlock_core::{AcquireOptions, DistributedLock, Lease, LockName, Mode, Wait};
use distlock_zookeeper::{zookeeper_client, ZkBackend};
use futures::StreamExt;

/// Turns this test binary into the dying waiter: `<prefix>|<name>|<mode
/// code>|<broken: 0 or 1>`.
const CHILD_ENV: &str = "DISTLOCK_ZK_DYING_WAITER";
/// The child is about to queue.
const QUEUEING: &str = "DISTLOCK-CHILD-QUEUEING";
/// The dying waiter's session timeout.
const SESSION: Duration = Duration::from_secs(15);
/// The session of this process's clients.
const OUR_SESSION: Duration = Duration::from_secs(6);
/// The earliest its node could go with that session after the kill.
const OLD_BOUND: Duration = Duration::from_secs(10);
/// Until when after the kill the waiter behind must have the name.
const WITHIN: Duration = Duration::from_secs(8);
const TTL: Duration = Duration::from_secs(30);
const CASE: &str = "[a_dead_waiter_holds_the_line_for_its_window]";

/// How the turn comes to the dead waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handing {
    /// The holder releases: its client checks the turn it handed on.
    Release,
    /// The holder's node is deleted by someone else (as when the releasing
    /// client is gone): only the waiters behind look.
    Vanish,
}

/// One scenario: who holds, how the dead child waits, who waits behind.
struct Scenario {
    /// The test's own name, as libtest runs it again for the child.
    test: &'static str,
    holder: Mode,
    /// Holds taken before the child queues (a semaphore's permits).
    holds: usize,
    dying: Mode,
    behind: Mode,
    handing: Handing,
    /// The child queues the old way.
    broken: bool,
}

impl Scenario {
    /// Runs the parent's side, or the child's when this is the child.
    async fn run(self) {
        match std::env::var(CHILD_ENV) {
            Ok(spec) => child(&spec).await,
            Err(_) => self.parent().await,
        }
    }

    async fn parent(self) {
        let prefix = common::unique_root();
        let name = LockName::new(format!("dying/{:016x}", rand::random::<u64>())).unwrap();
        let holder: Arc<dyn DistributedLock> =
            Arc::new(common::connect(common::config(&prefix, OUR_SESSION)).await);
        let behind: Arc<dyn DistributedLock> =
            Arc::new(common::connect(common::config(&prefix, OUR_SESSION)).await);
        let notices = holder.changes(&name).await.unwrap();
        let mut notices = notices.expect("ZooKeeper has notices");
        let mut held = Vec::new();
        for _ in 0..self.holds {
            let lease = holder
                .acquire_as(&name, self.holder, &opts(Wait::NoWait))
                .await;
            held.push(lease.unwrap().expect("the name is free"));
        }
        let spec = format!(
            "{prefix}|{name}|{}|{}",
            mode_code(self.dying),
            u8::from(self.broken)
        );
        let mut dying = ChildProcess::spawn(
            "a_dead_waiter_holds_the_line_for_its_window",
            self.test,
            &[(CHILD_ENV, spec.as_str())],
            false,
        );
        let _ = dying.mark(QUEUEING).await;
        until_waiting(&holder, &name, 1, &mut notices).await;
        let next = {
            let (behind, name, mode) = (behind.clone(), name.clone(), self.behind);
            tokio::spawn(async move { behind.acquire_as(&name, mode, &opts(Wait::Forever)).await })
        };
        until_waiting(&holder, &name, 2, &mut notices).await;
        dying.kill().await;
        let killed = Instant::now();
        hand_on(&holder, held.remove(0), self.handing).await;
        let got = match tokio::time::timeout_at((killed + WITHIN).into(), next).await {
            Ok(Ok(Ok(Some(lease)))) => lease,
            Ok(other) => panic!("{CASE} the waiter behind the dead one failed: {other:?}"),
            Err(_) => panic!(
                "{CASE} the waiter behind a dead one did not get the name within {WITHIN:?} of \
                 the kill (the dead waiter's own session could not free it before {OLD_BOUND:?})"
            ),
        };
        println!(
            "{CASE} the waiter behind got the name {:?} after the kill",
            killed.elapsed()
        );
        behind.release(&got).await.unwrap();
        for lease in held {
            holder.release(&lease).await.unwrap();
        }
    }
}

/// Waits, on change notices, until `name` has `count` waiters.
async fn until_waiting(
    client: &Arc<dyn DistributedLock>,
    name: &LockName,
    count: usize,
    notices: &mut distlock_core::ChangeNotices,
) {
    let wait = async {
        loop {
            let status = client.status(name).await.unwrap();
            if status.waiters.unwrap_or(0) >= count {
                return;
            }
            if notices.next().await.is_none() {
                *notices = client.changes(name).await.unwrap().expect("notices");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("{CASE} `{name}` never had {count} waiters"));
}

/// Gives the turn up: a release, or the node deleted behind the client's
/// back (no client checks the turn it hands on then).
async fn hand_on(holder: &Arc<dyn DistributedLock>, lease: Lease, handing: Handing) {
    match handing {
        Handing::Release => holder.release(&lease).await.unwrap(),
        Handing::Vanish => {
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
}

/// A mode as the child's spec carries it: `x`, `s` or `p<limit>`.
fn mode_code(mode: Mode) -> String {
    match mode {
        Mode::Shared => "s".into(),
        Mode::Permit { limit } => format!("p{limit}"),
        _ => "x".into(),
    }
}

fn opts(wait: Wait) -> AcquireOptions {
    AcquireOptions::new(TTL).with_wait(wait)
}

/// The child's part: connect with a long session, say so, queue until
/// killed.
async fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [prefix, name, mode, broken] = parts.as_slice() else {
        panic!("bad child spec `{spec}`");
    };
    let mut config = common::config(prefix, SESSION);
    if *broken == "1" {
        config = config.without_waiter_claims();
    }
    let client: ZkBackend = common::connect(config).await;
    let name = LockName::new(*name).unwrap();
    let mode = match *mode {
        "x" => Mode::Exclusive,
        "s" => Mode::Shared,
        permits => Mode::Permit {
            limit: permits
                .trim_start_matches('p')
                .parse()
                .expect("a permit count"),
        },
    };
    report(QUEUEING, "");
    let got = client.acquire_as(&name, mode, &opts(Wait::Forever)).await;
    panic!("the dying waiter was to wait until killed, got {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_waiter_holds_the_next_one_up_for_its_window_not_its_session() {
    Scenario {
        test: "a_dead_waiter_holds_the_next_one_up_for_its_window_not_its_session",
        holder: Mode::Exclusive,
        holds: 1,
        dying: Mode::Exclusive,
        behind: Mode::Exclusive,
        handing: Handing::Release,
        broken: false,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_waiter_is_passed_over_by_the_waiters_behind_when_no_releaser_checks() {
    Scenario {
        test: "a_dead_waiter_is_passed_over_by_the_waiters_behind_when_no_releaser_checks",
        holder: Mode::Exclusive,
        holds: 1,
        dying: Mode::Exclusive,
        behind: Mode::Exclusive,
        handing: Handing::Vanish,
        broken: false,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_behind_a_dead_writer_go_within_its_window() {
    Scenario {
        test: "readers_behind_a_dead_writer_go_within_its_window",
        holder: Mode::Shared,
        holds: 1,
        dying: Mode::Exclusive,
        behind: Mode::Shared,
        handing: Handing::Release,
        broken: false,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_permit_waiter_is_passed_over() {
    let two = Mode::Permit { limit: 2 };
    Scenario {
        test: "a_dead_permit_waiter_is_passed_over",
        holder: two,
        holds: 2,
        dying: two,
        behind: two,
        handing: Handing::Release,
        broken: false,
    }
    .run()
    .await;
}

/// Broken on purpose: the child queues the old way, so its key stays until
/// its lease ends, after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_queued_without_claims_is_caught_holding_the_line() {
    let test = "a_waiter_queued_without_claims_is_caught_holding_the_line";
    let scenario = Scenario {
        test,
        holder: Mode::Exclusive,
        holds: 1,
        dying: Mode::Exclusive,
        behind: Mode::Exclusive,
        handing: Handing::Release,
        broken: true,
    };
    if std::env::var(CHILD_ENV).is_ok() {
        return scenario.run().await;
    }
    let message = match tokio::spawn(scenario.run()).await {
        Ok(()) => panic!("a waiter that never claims its turn passed the case"),
        Err(e) => common::panic_message(e),
    };
    assert!(
        message.contains(CASE) && message.contains("did not get the name"),
        "the case failed, but not for the dead waiter: {message}"
    );
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
