//! The backend's session: the current one, reopened once lost, and the
//! liveness of retired ones (leases taken on them still ask for it).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use distlock_core::sync::lock;
use distlock_core::waiting::request_bound;
use distlock_core::{Liveness, Result};
use tokio::sync::watch;

use crate::config::ZkConfig;
use crate::session::Session;

/// How many retired sessions' liveness channels are remembered (for leases
/// still held by guards when their session was replaced).
const REMEMBERED_SESSIONS: usize = 64;

/// The sessions one backend opened: the current one and the retired ones.
pub(crate) struct Sessions {
    config: ZkConfig,
    current: Mutex<Arc<Session>>,
    /// Serializes reconnects so concurrent callers open one new session.
    reconnecting: tokio::sync::Mutex<()>,
    /// Liveness of the sessions this backend opened (current and retired).
    known: Mutex<VecDeque<(i64, watch::Receiver<Liveness>)>>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("config", &self.config)
            .field("current", &*lock(&self.current))
            .finish()
    }
}

impl Sessions {
    /// Opens the first session: one handshake, within the connect timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-open session.
    pub(crate) async fn open(config: ZkConfig) -> Result<Self> {
        let session = Session::open(&config, config.connect_timeout()).await?;
        Ok(Sessions {
            config,
            known: Mutex::new(VecDeque::from([(session.id, session.liveness())])),
            current: Mutex::new(session),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The settings sessions are opened with.
    pub(crate) fn config(&self) -> &ZkConfig {
        &self.config
    }

    /// The current session, lost or not.
    pub(crate) fn latest(&self) -> Arc<Session> {
        lock(&self.current).clone()
    }

    /// The current session, opening a new one if it was lost (within the
    /// connect timeout, cut to the caller's deadline but not below
    /// [`MIN_REQUEST_TIME`](distlock_core::waiting::MIN_REQUEST_TIME)).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes a half-open new session; the lost one stays
    /// current and the next caller reconnects.
    pub(crate) async fn current(&self, deadline: Option<Instant>) -> Result<Arc<Session>> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let _one_at_a_time = self.reconnecting.lock().await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let within = request_bound(self.config.connect_timeout(), deadline);
        let fresh = Session::open(&self.config, within).await?;
        self.remember(&fresh);
        *lock(&self.current) = fresh.clone();
        Ok(fresh)
    }

    /// The liveness of session `id`, if this backend opened it recently.
    pub(crate) fn liveness_of(&self, id: i64) -> Option<watch::Receiver<Liveness>> {
        lock(&self.known)
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, rx)| rx.clone())
    }

    fn live(&self) -> Option<Arc<Session>> {
        let current = lock(&self.current);
        (!current.is_lost()).then(|| current.clone())
    }

    fn remember(&self, session: &Session) {
        let mut known = lock(&self.known);
        known.push_back((session.id, session.liveness()));
        while known.len() > REMEMBERED_SESSIONS {
            known.pop_front();
        }
    }
}
