//! The shared conformance suite against the 3-node etcd cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{FaultProxy, Harness, ProxiedClient};
use distlock_core::DistributedLock;
use distlock_etcd::EtcdConfig;

struct EtcdHarness {
    prefix: String,
}

#[distlock_core::async_trait]
impl Harness for EtcdHarness {
    /// A new etcd client with its own connection and its own lease.
    async fn client(&self) -> Arc<dyn DistributedLock> {
        Arc::new(common::connect(common::config(&self.prefix)).await)
    }

    /// A vanished holder's locks free when its etcd lease expires.
    fn liveness_bound(&self, _ttl: Duration) -> Duration {
        common::TEST_SESSION_TIMEOUT
    }

    /// A new client that reaches each member through its own fault proxy,
    /// with the session timeout `liveness_bound` reports.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        let mut proxies = Vec::new();
        for member in common::endpoint_addrs() {
            let proxy = FaultProxy::start(member)
                .await
                .unwrap_or_else(|e| panic!("cannot start a fault proxy to {member}: {e}"));
            proxies.push(proxy);
        }
        let config = EtcdConfig::new(proxies.iter().map(|p| p.addr().to_string()))
            .with_prefix(&self.prefix)
            .with_session_timeout(common::TEST_SESSION_TIMEOUT)
            .with_timeout(Duration::from_secs(1))
            .with_connect_timeout(Duration::from_secs(1));
        let client = Arc::new(common::connect(config).await);
        Some(ProxiedClient { client, proxies })
    }
}

/// A key prefix unique to this test process, shared with the child process
/// that `lease_expires_when_holder_is_killed` spawns (it derives the same
/// prefix from its parent's pid). Lock names are unique per case anyway.
fn harness_prefix() -> String {
    let pid = if common::is_child_process() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    format!("distlock-test/conformance/{pid}")
}

distlock_conformance::suite!(etcd, async {
    EtcdHarness {
        prefix: harness_prefix(),
    }
});
