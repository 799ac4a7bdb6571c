//! The shared conformance suite against the 3-node ensemble.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{FaultProxy, Harness, ProxiedClient};
use distlock_core::DistributedLock;

/// Session timeout for the suite's clients: short, so a killed holder frees
/// its locks quickly, yet long enough for a loaded 2-core machine.
const SESSION: Duration = Duration::from_secs(6);

struct ZkHarness {
    root: String,
}

impl ZkHarness {
    /// One root per test process; the child holder of the cross-process case
    /// (a re-run of this binary) uses its parent's, so both see one lock.
    fn new() -> Self {
        let pid = if common::is_child_process() {
            std::os::unix::process::parent_id()
        } else {
            std::process::id()
        };
        ZkHarness {
            root: format!("/distlock-test-{pid}"),
        }
    }
}

#[distlock_core::async_trait]
impl Harness for ZkHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        if common::is_child_process() {
            // With --nocapture, libtest has printed "test … " without a line
            // break; start a fresh line so the suite's marker opens a line.
            println!();
        }
        Arc::new(common::connect(common::config(&self.root, SESSION)).await)
    }

    fn liveness_bound(&self, _ttl: Duration) -> Duration {
        // The server expires a session between one and one-and-a-bit
        // timeouts after it last heard from the client (expiry runs on ticks).
        SESSION + SESSION / 4
    }

    /// A client whose session reaches each ensemble member through its own
    /// proxy, with the session timeout `liveness_bound` is computed from.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        let mut proxies = Vec::new();
        for host in common::hosts() {
            let proxy = FaultProxy::start(common::addr(&host))
                .await
                .unwrap_or_else(|e| panic!("cannot start a proxy to {host}: {e}"));
            proxies.push(proxy);
        }
        let through = proxies.iter().map(|p| p.addr().to_string()).collect();
        let client = common::connect(common::config_for(through, &self.root, SESSION)).await;
        Some(ProxiedClient {
            client: Arc::new(client),
            proxies,
        })
    }
}

distlock_conformance::suite!(zookeeper, async { ZkHarness::new() });
