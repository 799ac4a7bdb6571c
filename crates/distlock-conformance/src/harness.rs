//! How the suite reaches a backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use distlock_core::DistributedLock;

/// Gives the suite clients of one lock service.
///
/// Each call to [`client`](Harness::client) must return a new, independent
/// client (its own connection or session) of the *same* service, so that
/// clients compete for the same locks exactly as separate processes would.
///
/// ```
/// use std::sync::Arc;
/// use distlock_conformance::Harness;
/// use distlock_core::DistributedLock;
///
/// struct MyHarness { url: String }
///
/// #[distlock_core::async_trait]
/// impl Harness for MyHarness {
///     async fn client(&self) -> Arc<dyn DistributedLock> {
///         // connect to self.url here; panicking is fine in a test harness
///         unimplemented!()
///     }
/// }
/// ```
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A new independent client of the service under test.
    async fn client(&self) -> Arc<dyn DistributedLock>;

    /// The longest a vanished holder can keep a lock taken with `ttl`: the
    /// ttl itself for ttl-based backends (the default), the session timeout
    /// for session-based ones.
    fn liveness_bound(&self, ttl: Duration) -> Duration {
        ttl
    }
}
