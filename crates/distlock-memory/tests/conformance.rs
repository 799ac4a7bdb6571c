//! The conformance suite against the in-process backend: it must pass every
//! case (those for capabilities it does not claim — sessions, other
//! processes, a network to partition — skip themselves, saying why).

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

    /// In-process: there is no network between client and store.
    fn networked(&self) -> bool {
        false
    }
}

distlock_conformance::suite!(memory, async {
    MemoryHarness {
        store: MemoryBackend::new(),
    }
});
