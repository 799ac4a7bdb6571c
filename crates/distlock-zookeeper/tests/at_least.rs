//! Lock-at-least-for outlives the holder's own session: a minimum longer
//! than the session timeout is still kept once the holder's process has
//! exited, because the ensemble keeps it (on a session of its own), not the
//! process. A backend that keeps the released hold with a timer in the
//! holder's process — broken on purpose below — frees it when that
//! process's session ends, before the minimum, and the suite's case says
//! so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{cases, Harness};
use distlock_core::{
    async_trait, AcquireRequest, Capabilities, DistributedLock, Grant, Lease, Liveness,
    LockBackend, LockName, LockStatus, Renewal, Result,
};
use distlock_zookeeper::ZkBackend;
use tokio::sync::watch;

/// The holder's session: the ensemble's shortest, well below the suite's
/// three-second minimum.
const SESSION: Duration = Duration::from_secs(1);

/// Clients with [`SESSION`], under a root shared with the child process.
struct ShortSession {
    root: String,
    /// Hand out the backend broken on purpose.
    broken: bool,
}

impl ShortSession {
    fn new(broken: bool) -> Self {
        let pid = match common::is_child_process() {
            true => std::os::unix::process::parent_id(),
            false => std::process::id(),
        };
        ShortSession {
            root: format!("/distlock-test-at-least-{pid}"),
            broken,
        }
    }
}

#[async_trait]
impl Harness for ShortSession {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        if common::is_child_process() {
            println!(); // the suite's marks open a line of their own
        }
        let backend = common::connect(common::config(&self.root, SESSION)).await;
        match self.broken {
            true => Arc::new(KeptInProcess(backend)),
            false => Arc::new(backend),
        }
    }

    fn liveness_bound(&self, _ttl: Duration) -> Duration {
        SESSION + SESSION / 4
    }
}

/// Broken on purpose: a release before the minimum leaves the node on the
/// holder's session and deletes it from a timer in the holder's process.
#[derive(Debug)]
struct KeptInProcess(ZkBackend);

#[async_trait]
impl LockBackend for KeptInProcess {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn claims(&self) -> Capabilities {
        self.0.claims()
    }

    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.0.grant(request).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        self.0.renew(lease, ttl).await
    }

    async fn revoke(&self, lease: &Lease) -> Result<()> {
        self.0.revoke(lease).await
    }

    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.0.session(lease)
    }

    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        self.0.inspect(name).await
    }

    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        let (backend, lease) = (self.0.clone(), lease.clone());
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let _ = backend.revoke(&lease).await;
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minimum_longer_than_the_session_outlives_the_holders_process() {
    // This test's name, as libtest runs it again for the child process.
    let path = "a_minimum_longer_than_the_session_outlives_the_holders_process";
    let harness = ShortSession::new(false);
    cases::lock_is_held_at_least_after_its_holder_exits(&harness, path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minimum_kept_by_the_holders_process_is_caught() {
    let path = "a_minimum_kept_by_the_holders_process_is_caught";
    let harness = ShortSession::new(true);
    if common::is_child_process() {
        // The child's part (it releases early and exits) does not fail.
        return cases::lock_is_held_at_least_after_its_holder_exits(&harness, path).await;
    }
    let run = tokio::spawn(async move {
        cases::lock_is_held_at_least_after_its_holder_exits(&harness, path).await
    });
    let message = match run.await {
        Ok(()) => panic!("a hold kept by the holder's process passed the case"),
        Err(e) => distlock_conformance::child::panic_message(e),
    };
    assert!(
        message.contains("[lock_is_held_at_least_after_its_holder_exits]")
            && message.contains("before its minimum"),
        "the case failed, but not for the minimum: {message}"
    );
}
