//! Connecting: the client options a config asks for, and the two checks a
//! new backend client makes before it is handed out.

use std::sync::Arc;
use std::time::Duration;

use distlock_core::tls::{diagnose, DIAGNOSE_WITHIN};
use distlock_core::{LockError, Result, TlsSettings};
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
/// `InvalidConfig` when a TLS file (CA, client certificate or key) cannot be
/// read or holds no PEM, naming the file.
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
    if let Some(tls) = config.tls() {
        options = options.with_tls(tls_options(tls, config)?);
    }
    Ok(options)
}

/// TLS verified against the configured CA (or the system roots), with the
/// client certificate if one is configured.
fn tls_options(tls: &TlsSettings, config: &EtcdConfig) -> Result<etcd_client::TlsOptions> {
    let files = tls.load().map_err(|e| match e {
        LockError::InvalidConfig { reason } => {
            LockError::invalid_config(format!("`{}`: {reason}", config.display_url()))
        }
        other => other,
    })?;
    let mut options = etcd_client::TlsOptions::new();
    options = match files.ca_pem() {
        Some(ca) => options.ca_certificate(etcd_client::Certificate::from_pem(ca)),
        None => options.with_native_roots(),
    };
    if let Some((cert, key)) = files.client_pem() {
        options = options.identity(etcd_client::Identity::from_pem(cert, key));
    }
    Ok(options)
}

/// Grants the client's first etcd lease: proves the cluster answers and the
/// credentials are good, and makes the first acquire one round trip.
///
/// Round trips: one (LeaseGrant), plus an Authenticate with credentials;
/// bounded by twice the connect timeout plus the request timeout.
pub(crate) async fn grant_first_lease(session: &Arc<Session>, config: &EtcdConfig) -> Result<()> {
    let bound = config.connect_timeout() * 2 + config.timeout();
    let granted = match tokio::time::timeout(bound, session.lease()).await {
        Ok(granted) => granted.map(|_| ()),
        Err(_) => Err(LockError::unavailable(
            BACKEND,
            format!("no answer from `{}` within {bound:?}", config.display_url()),
        )),
    };
    match granted {
        Err(LockError::Unavailable { reason, .. })
            if config.tls().is_some() && !reason.contains("certificate") =>
        {
            Err(with_tls_cause(reason, config).await)
        }
        other => other,
    }
}

/// The unavailability `reason`, with what one TLS handshake of our own to
/// the first member finds wrong (the client may report a certificate the
/// member refused only as a closed connection).
///
/// Round trips: at most one TCP connect and TLS handshake, within
/// [`DIAGNOSE_WITHIN`].
async fn with_tls_cause(reason: String, config: &EtcdConfig) -> LockError {
    let cause = match (config.tls(), config.endpoints().first()) {
        (Some(tls), Some(first)) => diagnose(first, tls, DIAGNOSE_WITHIN).await,
        _ => None,
    };
    match cause {
        Some(cause) => LockError::unavailable(BACKEND, format!("{reason} ({cause})")),
        None => LockError::unavailable(BACKEND, reason),
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
