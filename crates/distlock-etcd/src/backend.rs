//! The backend client: one connection to the cluster, one etcd lease, its
//! settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{LockName, Result};

use crate::cluster::Cluster;
use crate::config::EtcdConfig;
use crate::connect;
use crate::keys;
use crate::session::Session;

/// A distributed lock service on an etcd cluster.
///
/// Cheap to clone: clones share one connection and one etcd lease (and one
/// waiter lease, for the keys of acquires still in line). Dropping the last
/// clone revokes them, which frees every lock they still held.
#[derive(Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Arc<Cluster>,
    session: Arc<Session>,
    /// The waiter lease: the keys of acquires still in line live on it
    /// until they claim their turn (see the `acquire` module).
    waiters: Arc<Session>,
    config: EtcdConfig,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("url", &self.inner.config.display_url())
            .field("session_timeout", &self.inner.config.session_timeout())
            .field("lease", &self.lease_id().map(|id| format!("{id:x}")))
            .finish()
    }
}

impl EtcdBackend {
    /// Connects to the cluster a URL names (see
    /// [`EtcdConfig::from_url`] for the syntax) and grants this client's
    /// etcd lease.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for a malformed URL, rejected credentials or missing
    /// permissions on the prefix; `Unavailable`/`Backend` when the cluster
    /// cannot be reached within the connect timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing behind but
    /// possibly a granted lease that expires after the session timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::from_config(EtcdConfig::from_url(url)?).await
    }

    /// Connects with explicit settings; see [`connect`](Self::connect).
    ///
    /// Round trips: one LeaseGrant and one Range (the access check), plus an
    /// Authenticate with credentials.
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](Self::connect).
    pub async fn from_config(config: EtcdConfig) -> Result<Self> {
        config.validate()?;
        let cluster = Arc::new(Cluster::new(
            config.endpoint_urls(),
            connect::client_options(&config)?,
            config.connect_timeout(),
            config.timeout(),
            config.display_url(),
            config.user().map(str::to_string),
        ));
        let session = Session::new(cluster.clone(), config.session_timeout());
        let waiters = Session::new(cluster.clone(), waiter_lease_ttl(config.waiter_timeout()));
        connect::grant_first_lease(&session, &config).await?;
        connect::check_access(&cluster, &config).await?;
        Ok(EtcdBackend {
            inner: Arc::new(Inner {
                cluster,
                session,
                waiters,
                config,
            }),
        })
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The id of the etcd lease new locks attach to, if one is live.
    pub fn lease_id(&self) -> Option<i64> {
        self.inner.session.current().map(|g| g.id())
    }

    pub(crate) fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The cluster, for work that outlives an operation (clean-up).
    pub(crate) fn shared_cluster(&self) -> Arc<Cluster> {
        self.inner.cluster.clone()
    }

    pub(crate) fn etcd_session(&self) -> &Arc<Session> {
        &self.inner.session
    }

    /// The waiter lease's bookkeeping: granted at the first acquire that
    /// queues, kept alive like the client's lease.
    pub(crate) fn waiter_session(&self) -> &Arc<Session> {
        &self.inner.waiters
    }

    /// The key range of a lock name under this client's prefix.
    pub(crate) fn name_dir(&self, name: &LockName) -> String {
        keys::name_dir(self.inner.config.prefix(), name)
    }
}

/// The ttl of the waiter lease: the waiter-liveness window in whole
/// seconds, rounded up (etcd leases count in seconds; the server raises it
/// to its minimum).
fn waiter_lease_ttl(window: Duration) -> Duration {
    Duration::from_secs(window.as_millis().div_ceil(1000).max(1) as u64)
}
