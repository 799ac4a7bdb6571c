//! One ZooKeeper session and the liveness every lease taken through it shares.
//!
//! The client library reports `Disconnected`, `SyncConnected` and the terminal
//! states (`Expired`, `Closed`, `AuthFailed`). We turn them into
//! [`Liveness`]: connected is `Live`, disconnected is `Suspended`, terminal is
//! `Lost`. A disconnect that lasts too long is also `Lost`, decided locally:
//! while cut off, the client only learns of the expiry when it reconnects,
//! which is after the server has already handed the lock to the next waiter.
//!
//! # When a disconnect becomes `Lost`
//!
//! With a negotiated session timeout `T`, the library declares a connection
//! dead after `2T/5` without traffic (checked every `T/20`), so the last byte
//! from the server arrived at most `2T/5 + T/20` before the `Disconnected`
//! event. The server expires the session no earlier than `T` after it last
//! heard from us. We report `Lost` `9T/20` after the event: at most
//! `2T/5 + T/20 + 9T/20 = 9T/10` after the last byte from the server, which
//! leaves `T/10` for the round trip and scheduling before anyone else can be
//! granted the lock. The session is then retired (closed if it ever
//! reconnects) so no lease of it can be extended again.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::tls::{diagnose, DIAGNOSE_WITHIN};
use distlock_core::{Liveness, LockError, Result, SessionLiveness, TlsSettings};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::error::BACKEND;

/// A live ZooKeeper session shared by every operation of one backend.
pub(crate) struct Session {
    pub(crate) client: zk::Client,
    pub(crate) id: i64,
    /// The timeout the server granted.
    pub(crate) timeout: Duration,
    /// The longest one request may take: the configured `timeout`, else the
    /// granted session timeout.
    pub(crate) request_timeout: Duration,
    liveness: SessionLiveness,
    monitor: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("{:#x}", self.id))
            .field("timeout", &self.timeout)
            .field("request_timeout", &self.request_timeout)
            .field("liveness", &self.liveness.current())
            .finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the last client handle closes the session (deleting its
        // ephemeral nodes) as soon as the library can reach a server.
        self.monitor.abort();
    }
}

/// The pauses before opening a session is tried again when no host could
/// be reached.
const OPEN_RETRIES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

impl Session {
    /// Opens a session: one connect handshake (plus one auth packet, and a
    /// TLS handshake when TLS is on), given up after `within`. When no host
    /// could be reached (a refused connection, a failed handshake), it is
    /// tried again after [`OPEN_RETRIES`]' pauses while `within` allows: a
    /// server that drops one connection among many does not fail the open,
    /// and one that is down still fails it within a third of a second.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-open session.
    pub(crate) async fn open(config: &ZkConfig, within: Duration) -> Result<Arc<Session>> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(config.session_timeout())
            .with_fail_eagerly();
        if let Some(auth) = config.digest_auth() {
            connector = connector.with_auth("digest", &auth);
        }
        let secure = match config.tls() {
            Some(tls) => {
                connector = connector.with_tls(tls_options(tls)?);
                true
            }
            None => false,
        };
        let hosts = config.connect_string();
        let deadline = Instant::now() + within;
        let mut pauses = OPEN_RETRIES.iter();
        let client = loop {
            let attempt = connector.clone();
            let connecting = if secure {
                futures::future::Either::Left(attempt.secure_connect(&hosts))
            } else {
                futures::future::Either::Right(attempt.connect(&hosts))
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, connecting).await {
                Ok(Ok(client)) => break client,
                Ok(Err(e)) => {
                    let retry = pauses
                        .next()
                        .filter(|&&pause| {
                            matches!(e, zk::Error::NoHosts) && Instant::now() + pause < deadline
                        })
                        .copied();
                    match retry {
                        Some(pause) => tokio::time::sleep(pause).await,
                        None => return Err(not_opened(config, &hosts, e).await),
                    }
                }
                Err(_) => {
                    return Err(LockError::unavailable(
                        BACKEND,
                        format!("no session with {hosts} within {within:?}"),
                    ))
                }
            }
        };
        let id = client.session_id().0;
        let timeout = client.session_timeout();
        let tx = SessionLiveness::new();
        let states = client.state_watcher();
        let monitor = tokio::spawn(follow_states(states, tx.clone(), timeout, id));
        tracing::debug!(
            session = %format_args!("{id:#x}"),
            timeout_ms = timeout.as_millis() as u64,
            "distlock.zookeeper.session_opened"
        );
        Ok(Arc::new(Session {
            client,
            id,
            timeout,
            request_timeout: config.timeout().unwrap_or(timeout),
            liveness: tx,
            monitor,
        }))
    }

    /// A receiver of this session's liveness.
    pub(crate) fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.subscribe()
    }

    /// True once the session can no longer be trusted.
    pub(crate) fn is_lost(&self) -> bool {
        self.liveness.is_lost()
    }

    /// Declares the session lost (an operation saw it expire or close).
    pub(crate) fn mark_lost(&self, why: &str) {
        mark_lost(&self.liveness, self.id, why);
    }
}

/// The error for a session that could not be opened; over TLS, with the
/// cause one handshake of our own finds (the library does not say).
async fn not_opened(config: &ZkConfig, hosts: &str, e: zk::Error) -> LockError {
    let mut why = format!("cannot open a session with {hosts}: {e}");
    let first = config.hosts().first();
    if let (Some(tls), Some(first)) = (config.tls(), first) {
        if let Some(problem) = diagnose(first, tls, DIAGNOSE_WITHIN).await {
            why = format!("{why} ({problem})");
        }
    }
    LockError::unavailable(BACKEND, why)
}

/// The client library's TLS options: the CA and the client certificate,
/// read from their files (rustls, with ring as the process's provider unless
/// the application chose one).
///
/// # Errors
///
/// `InvalidConfig` naming a file that cannot be read or holds no PEM (never
/// its contents).
fn tls_options(tls: &TlsSettings) -> Result<zk::TlsOptions> {
    distlock_core::tls::ensure_crypto_provider();
    let files = tls.load()?;
    let refused = |what: &str, e: zk::Error| {
        LockError::invalid_config(format!("ZooKeeper TLS: the {what} cannot be used: {e}"))
    };
    let Some(ca) = files.ca_pem() else {
        return Err(LockError::invalid_config(
            "ZooKeeper over TLS needs the servers' CA (`ca=<PEM file>`)",
        ));
    };
    let mut options = zk::TlsOptions::new()
        .with_pem_ca(ca)
        .map_err(|e| refused("CA certificate", e))?;
    if let Some((cert, key)) = files.client_pem() {
        options = options
            .with_pem_identity(cert, key)
            .map_err(|e| refused("client certificate or key", e))?;
    }
    Ok(options)
}

/// How long a disconnect may last before the session counts as lost; see
/// the module docs.
pub(crate) fn lost_after(timeout: Duration) -> Duration {
    timeout * 9 / 20
}

fn mark_lost(tx: &SessionLiveness, id: i64, why: &str) {
    if tx.lose(why) {
        tracing::warn!(session = %format_args!("{id:#x}"), reason = why, "distlock.zookeeper.session_lost");
    }
}

/// Mirrors the library's session states into `Liveness`, adding the local
/// "disconnected too long" verdict.
async fn follow_states(
    mut states: zk::StateWatcher,
    tx: SessionLiveness,
    timeout: Duration,
    id: i64,
) {
    let mut state = states.peek_state();
    loop {
        match state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tx.recover();
                state = states.changed().await;
            }
            zk::SessionState::Disconnected => {
                tx.suspend();
                tracing::debug!(session = %format_args!("{id:#x}"), "distlock.zookeeper.session_suspended");
                match tokio::time::timeout(lost_after(timeout), states.changed()).await {
                    Ok(next) => state = next,
                    Err(_) => {
                        mark_lost(
                            &tx,
                            id,
                            &format!(
                                "disconnected for {}ms of a {}ms session: the server may already have expired it",
                                lost_after(timeout).as_millis(),
                                timeout.as_millis()
                            ),
                        );
                        return;
                    }
                }
            }
            zk::SessionState::Expired => return mark_lost(&tx, id, "session expired"),
            zk::SessionState::Closed => return mark_lost(&tx, id, "session closed"),
            zk::SessionState::AuthFailed => return mark_lost(&tx, id, "authentication failed"),
        }
    }
}
