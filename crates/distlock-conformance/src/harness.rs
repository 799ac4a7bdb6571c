//! How the suite reaches a backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use distlock_core::DistributedLock;

use crate::proxy::FaultProxy;

/// A client whose every connection to the service passes through a
/// [`FaultProxy`] (one per server it talks to), for the partition cases.
pub struct ProxiedClient {
    /// The client; its holds and sessions live behind the proxies.
    pub client: Arc<dyn DistributedLock>,
    /// One proxy per server; the cases blackhole or reset them all.
    pub proxies: Vec<FaultProxy>,
}

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

    /// A new client cut off from the service by fault proxies it can be
    /// partitioned with: the client connects to every server through its own
    /// [`FaultProxy`] (started in front of the real server). Session
    /// backends give it the same session timeout that
    /// [`liveness_bound`](Harness::liveness_bound) reports.
    ///
    /// `None` (the default) only for in-process backends: a backend that
    /// claims `cross_process` and answers `None` fails the partition cases.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        None
    }

    /// True when clients reach the service over the network, so a
    /// [`proxied_client`](Harness::proxied_client) can be cut off from it.
    ///
    /// The default is `true`. Answer `false` only for a backend with no
    /// network between client and service, such as a file-based SQLite
    /// database; the partition cases then skip it. A networked backend that
    /// claims `cross_process` must offer a `proxied_client`.
    fn networked(&self) -> bool {
        true
    }

    /// How long a cancelled or crashed *waiter* may stand in the way of the
    /// others: the backend's waiter-liveness window (a queue entry's
    /// keep-alive), or the time a dropped acquire's background clean-up
    /// takes to land. One second by default; a backend whose abandoned
    /// queue entries expire on a longer liveness ttl reports it here. Never
    /// a holder's ttl or a session timeout: only a crashed *holder* may
    /// cost that.
    fn waiter_liveness(&self) -> Duration {
        Duration::from_secs(1)
    }
}
