//! The shared conformance suite, against one Redis instance and against
//! Redlock over the five independent instances.

mod common;

use std::sync::Arc;

use distlock_conformance::Harness;
use distlock_core::DistributedLock;

struct SingleHarness;

#[distlock_core::async_trait]
impl Harness for SingleHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        common::single("conformance-single:").await
    }
}

struct RedlockHarness {
    addrs: Vec<String>,
}

#[distlock_core::async_trait]
impl Harness for RedlockHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        common::redlock(&self.addrs, "conformance-redlock:").await
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
