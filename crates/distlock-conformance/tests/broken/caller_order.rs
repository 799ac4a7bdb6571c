//! A `DistributedLock` whose multi-name lock takes the names in the
//! caller's order (the one promise it breaks): everything else is the
//! memory backend's, through the core's layer.

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::Harness;
use distlock_core::{
    async_trait, AcquireOptions, Capabilities, ChangeNotices, DistributedLock, Lease, LockName,
    LockStatus, Mode, Result,
};
use distlock_memory::MemoryBackend;

/// Delegates to the memory backend, except for `acquire_many`.
#[derive(Debug)]
pub struct CallerOrder(MemoryBackend);

#[async_trait]
impl DistributedLock for CallerOrder {
    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn acquire_as(
        &self,
        name: &LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        self.0.acquire_as(name, mode, options).await
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.0.extend(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.0.release(lease).await
    }

    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        self.0.extend_many(leases).await
    }

    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        self.0.status(name).await
    }

    async fn changes(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        self.0.changes(name).await
    }

    /// The bug: the names in the order the caller gave them.
    async fn acquire_many(
        self: Arc<Self>,
        names: &[LockName],
        options: &AcquireOptions,
    ) -> Result<Option<Vec<Lease>>>
    where
        Self: 'static,
    {
        let mut taken = Vec::new();
        for name in names {
            match self.0.acquire(name, options).await {
                Ok(Some(lease)) => taken.push(lease),
                other => {
                    for lease in &taken {
                        let _ = self.0.release(lease).await;
                    }
                    return other.map(|_| None);
                }
            }
        }
        Ok(Some(taken))
    }
}

/// Clients of one store, each a [`CallerOrder`].
pub struct CallerOrderHarness(pub MemoryBackend);

#[async_trait]
impl Harness for CallerOrderHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        Arc::new(CallerOrder(self.0.clone()))
    }
}
