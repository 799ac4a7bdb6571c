//! The conformance suite against the in-process backend.

use std::sync::Arc;

use distlock_conformance::Harness;
use distlock_core::DistributedLock;
use distlock_memory::MemoryBackend;

/// Every client shares one private store, as processes share one server.
struct MemoryHarness {
    store: MemoryBackend,
}

#[distlock_core::async_trait]
impl Harness for MemoryHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        Arc::new(self.store.clone())
    }
}

distlock_conformance::suite!(memory, async {
    MemoryHarness {
        store: MemoryBackend::new(),
    }
});
