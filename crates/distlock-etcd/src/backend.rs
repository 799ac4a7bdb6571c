//! The backend client: one connection to the cluster, one etcd lease, its
//! settings.

use std::fmt;
use std::sync::Arc;

use distlock_core::{LockName, Result};

use crate::cluster::Cluster;
use crate::config::EtcdConfig;
use crate::connect;
use crate::keys;
use crate::session::Session;

/// A distributed lock service on an etcd cluster.
///
/// Cheap to clone: clones share one connection and one etcd lease. Dropping
/// the last clone revokes the lease, which frees every lock it still held.
#[derive(Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Arc<Cluster>,
    session: Arc<Session>,
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
        connect::grant_first_lease(&session, &config).await?;
        connect::check_access(&cluster, &config).await?;
        Ok(EtcdBackend {
            inner: Arc::new(Inner {
                cluster,
                session,
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

    /// The key range of a lock name under this client's prefix.
    pub(crate) fn name_dir(&self, name: &LockName) -> String {
        keys::name_dir(self.inner.config.prefix(), name)
    }
}
