//! A waiter that dies in line holds the others up for its waiter-liveness
//! window, never until its own session (or lease) ends: the scenario the
//! backends with a line of their own (etcd, ZooKeeper) run, written once.
//!
//! A child process queues for a held name and is SIGKILLed while a client
//! of this process waits behind it; then the turn comes to the dead one.
//! The child's session is long: its entry could not go with it before
//! [`OLD_BOUND`] after the kill (the server last heard from it at most a
//! third of the session before). The waiter behind must get the name well
//! before that ([`WITHIN`]) — which only the window can give. A child that
//! queues the old way (its turn never claimed: broken on purpose) holds
//! the line up until its session ends, and the case says so
//! ([`broken_is_caught`]).
//!
//! A backend supplies its clients and a way to delete an entry behind its
//! client's back ([`DyingWaiterSetup`]), and one test per [`Scenario`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::{AcquireOptions, ChangeNotices, DistributedLock, Lease, LockName, Mode, Wait};
use futures::StreamExt;

use crate::child::{panic_message, report, ChildProcess};

/// The child is about to queue.
const QUEUEING: &str = "DISTLOCK-CHILD-QUEUEING";
/// The dying waiter's session (or lease) timeout.
pub const SESSION: Duration = Duration::from_secs(15);
/// The earliest its entry could go with that session after the kill.
pub const OLD_BOUND: Duration = Duration::from_secs(10);
/// Until when after the kill the waiter behind must have the name.
pub const WITHIN: Duration = Duration::from_secs(8);
/// The ttl of every hold of the scenario: longer than the case.
const TTL: Duration = Duration::from_secs(30);
/// What the case's own messages start with.
pub const CASE: &str = "[a_dead_waiter_holds_the_line_for_its_window]";

/// What a backend gives the scenario.
#[async_trait]
pub trait DyingWaiterSetup: Send + Sync + 'static {
    /// The environment variable that turns the test binary into the dying
    /// waiter (one per backend).
    fn child_env(&self) -> &'static str;

    /// A key prefix or root no other test run shares.
    fn unique_prefix(&self) -> String;

    /// A client of this process under `prefix`.
    async fn client(&self, prefix: &str) -> Arc<dyn DistributedLock>;

    /// The dying waiter's client under `prefix`, with a [`SESSION`]-long
    /// session; when `broken`, one that queues without claiming its turn.
    async fn dying_client(&self, prefix: &str, broken: bool) -> Arc<dyn DistributedLock>;

    /// Deletes `lease`'s entry behind its client's back (so that no client
    /// checks the turn it hands on).
    async fn vanish(&self, lease: &Lease);
}

/// How the turn comes to the dead waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handing {
    /// The holder releases: its client checks the turn it handed on.
    Release,
    /// The holder's entry is deleted by someone else (as when the releasing
    /// client is gone): only the waiters behind look.
    Vanish,
}

/// One scenario: who holds, how the dead child waits, who waits behind.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The test's own name, as libtest runs it again for the child.
    pub test: &'static str,
    /// The mode of the holds in the way.
    pub holder: Mode,
    /// Holds taken before the child queues (a semaphore's permits).
    pub holds: usize,
    /// The mode the child waits for.
    pub dying: Mode,
    /// The mode the waiter behind it waits for.
    pub behind: Mode,
    /// How the turn comes to the child.
    pub handing: Handing,
    /// The child queues the old way.
    pub broken: bool,
}

/// Runs `scenario`: the parent's side, or the child's when this process is
/// the child.
pub async fn run<S: DyingWaiterSetup>(setup: S, scenario: Scenario) {
    match std::env::var(setup.child_env()) {
        Ok(spec) => child(&setup, &spec).await,
        Err(_) => parent(&setup, scenario).await,
    }
}

/// Runs a `broken` scenario and checks that it fails for the dead waiter.
pub async fn broken_is_caught<S: DyingWaiterSetup>(setup: S, scenario: Scenario) {
    if std::env::var(setup.child_env()).is_ok() {
        return run(setup, scenario).await;
    }
    let message = match tokio::spawn(run(setup, scenario)).await {
        Ok(()) => panic!("a waiter that never claims its turn passed the case"),
        Err(e) => panic_message(e),
    };
    assert!(
        message.contains(CASE) && message.contains("did not get the name"),
        "the case failed, but not for the dead waiter: {message}"
    );
}

async fn parent<S: DyingWaiterSetup>(setup: &S, scenario: Scenario) {
    let prefix = setup.unique_prefix();
    let name = LockName::new(format!("dying/{:016x}", rand::random::<u64>())).unwrap();
    let holder = setup.client(&prefix).await;
    let behind = setup.client(&prefix).await;
    let notices = holder.changes(&name).await.unwrap();
    let mut notices = notices.expect("a backend with a line has change notices");
    let mut held = Vec::new();
    for _ in 0..scenario.holds {
        let lease = holder
            .acquire_as(&name, scenario.holder, &opts(Wait::NoWait))
            .await;
        held.push(lease.unwrap().expect("the name is free"));
    }
    let spec = format!(
        "{prefix}|{name}|{}|{}",
        mode_code(scenario.dying),
        u8::from(scenario.broken)
    );
    let env = [(setup.child_env(), spec.as_str())];
    let mut dying = ChildProcess::spawn("dying_waiter", scenario.test, &env, false);
    let _ = dying.mark(QUEUEING).await;
    until_waiting(&holder, &name, 1, &mut notices).await;
    let next = {
        let (behind, name, mode) = (behind.clone(), name.clone(), scenario.behind);
        tokio::spawn(async move { behind.acquire_as(&name, mode, &opts(Wait::Forever)).await })
    };
    until_waiting(&holder, &name, 2, &mut notices).await;
    dying.kill().await;
    let killed = Instant::now();
    let first = held.remove(0);
    match scenario.handing {
        Handing::Release => holder.release(&first).await.unwrap(),
        Handing::Vanish => setup.vanish(&first).await,
    }
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

/// Waits, on change notices, until `name` has `count` waiters.
async fn until_waiting(
    client: &Arc<dyn DistributedLock>,
    name: &LockName,
    count: usize,
    notices: &mut ChangeNotices,
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
async fn child<S: DyingWaiterSetup>(setup: &S, spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [prefix, name, mode, broken] = parts.as_slice() else {
        panic!("bad child spec `{spec}`");
    };
    let client = setup.dying_client(prefix, *broken == "1").await;
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
