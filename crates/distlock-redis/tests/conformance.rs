//! The shared conformance suite, against one Redis instance and against
//! Redlock over the five independent instances.

mod common;

use std::sync::Arc;

use distlock_conformance::{Harness, ProxiedClient};
use distlock_core::DistributedLock;

const SINGLE_PREFIX: &str = "conformance-single:";
const REDLOCK_PREFIX: &str = "conformance-redlock:";

struct SingleHarness;

#[distlock_core::async_trait]
impl Harness for SingleHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        common::single(SINGLE_PREFIX).await
    }

    /// A client whose one connection (and pub/sub connection) to the
    /// instance passes through its own fault proxy.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(common::proxied_single(SINGLE_PREFIX).await)
    }
}

struct RedlockHarness {
    addrs: Vec<String>,
}

#[distlock_core::async_trait]
impl Harness for RedlockHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        common::redlock(&self.addrs, REDLOCK_PREFIX).await
    }

    /// A client that reaches each of the five instances through its own
    /// fault proxy (the URL lists the proxies' addresses).
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(common::proxied_redlock(&self.addrs, REDLOCK_PREFIX).await)
    }
}

async fn redlock_harness() -> RedlockHarness {
    let addrs = common::instance_addrs();
    assert_eq!(addrs.len(), 5, "DISTLOCK_REDIS_URLS must list 5 instances");
    common::require_all_up(&addrs).await;
    RedlockHarness { addrs }
}

distlock_conformance::suite!(redis_single, async { SingleHarness });
distlock_conformance::suite!(redlock, redlock_harness());
