//! Connecting: the client options a config asks for, and the two checks a
//! new backend client makes before it is handed out.

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{LockError, Result};
use etcd_client::{ConnectOptions, GetOptions};

use crate::cluster::Cluster;
use crate::config::EtcdConfig;
use crate::errors::BACKEND;
use crate::session::Session;

/// The etcd client options of `config`: keep-alive pings, leader required,
/// credentials, TLS.
///
/// # Errors
///
/// `InvalidConfig` when the CA certificate cannot be read.
pub(crate) fn client_options(config: &EtcdConfig) -> Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout())
        // etcd sends GOAWAY to clients that ping more often than every 5 s.
        .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3))
        .with_keep_alive_while_idle(false)
        .with_require_leader(true)
        .with_auto_token_refresh(true);
    if let (Some(user), Some(password)) = (config.user(), config.password()) {
        options = options.with_user(user, password);
    }
    if config.tls() {
        options = options.with_tls(tls_options(config)?);
    }
    Ok(options)
}

/// TLS verified against the configured CA, or the system roots.
fn tls_options(config: &EtcdConfig) -> Result<etcd_client::TlsOptions> {
    let tls = etcd_client::TlsOptions::new();
    let Some(ca) = config.ca() else {
        return Ok(tls.with_native_roots());
    };
    let pem = std::fs::read(ca).map_err(|e| {
        LockError::invalid_config(format!(
            "cannot read the CA certificate {} for `{}`: {e}",
            ca.display(),
            config.display_url()
        ))
    })?;
    Ok(tls.ca_certificate(etcd_client::Certificate::from_pem(pem)))
}

/// Grants the client's first etcd lease: proves the cluster answers and the
/// credentials are good, and makes the first acquire one round trip.
///
/// Round trips: one (LeaseGrant), plus an Authenticate with credentials;
/// bounded by twice the connect timeout plus the request timeout.
pub(crate) async fn grant_first_lease(session: &Arc<Session>, config: &EtcdConfig) -> Result<()> {
    let bound = config.connect_timeout() * 2 + config.timeout();
    match tokio::time::timeout(bound, session.lease()).await {
        Ok(granted) => granted.map(|_| ()),
        Err(_) => Err(LockError::unavailable(
            BACKEND,
            format!("no answer from `{}` within {bound:?}", config.display_url()),
        )),
    }
}

/// Reads the key prefix once, so missing credentials or permissions are a
/// clear error at connect rather than at the first acquire (etcd 3.4 grants
/// leases to anyone).
///
/// Round trips: one (Range, count only).
pub(crate) async fn check_access(cluster: &Cluster, config: &EtcdConfig) -> Result<()> {
    let range = format!("{}/", config.prefix());
    let probe = GetOptions::new().with_prefix().with_count_only();
    let checked = cluster
        .read("checking access to the key prefix", |mut c| {
            let (range, probe) = (range.clone(), probe.clone());
            async move { c.get(range, Some(probe)).await }
        })
        .await;
    match checked {
        Err(LockError::Backend { source, .. }) if is_refusal(&source.to_string()) => {
            Err(LockError::invalid_config(format!(
                "etcd refused access to the keys under `{range}` at `{}` ({}): give the user read-write permission on that prefix",
                config.display_url(),
                if config.user().is_some() { "permission denied" } else { "no credentials given" }
            )))
        }
        other => other.map(|_| ()),
    }
}

fn is_refusal(why: &str) -> bool {
    why.contains("permission denied") || why.contains("user name is empty")
}
