//! The session connections of one backend, and which one a request goes to.
//!
//! At most `sessions` connections, opened on demand and kept while they
//! hold locks (one connection holds any number). A request for a key goes
//! to a session where the key is neither held nor claimed:
//!
//! - one that may wait in the server (`pg_advisory_lock`, `GET_LOCK` with
//!   a timeout) occupies its connection until answered, so it runs only on
//!   a session that holds nothing — an idle one, or a new one — and only
//!   while that leaves a connection for everyone else's short statements;
//! - otherwise it tries (the caller polls, with its backoff), on the
//!   session with the fewest statements queued;
//! - a reader whose key every usable session holds already may join a
//!   shared hold of it (PostgreSQL), locally;
//! - a reader's or permit's presence slot (MySQL) goes first to the
//!   session that holds one for the name, which it joins, locally;
//! - one that asks for a session of its own (a hold with a
//!   lock-at-least-for minimum, where such holds are kept by a statement on
//!   their own session) goes only to a session that holds nothing, which
//!   it occupies until the hold is taken, and which is then dedicated to
//!   that hold.
//!
//! Waiting for a connection counts against the caller's wait, and never
//! ends in an error of its own: a request that finds every session busy
//! with its key waits for one to free it (or tries no more, for a try).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use distlock_core::sync::lock;
use distlock_core::{LockError, OwnerToken, Result};
use tokio::sync::Notify;

use super::connection::{Claim, Session};
use super::db::{Gate, SessionDb};
use super::keeper;
use super::keys::Key;
use crate::config::SessionSettings;
use crate::store::driver_error;

/// Where a request goes.
pub(crate) enum Route {
    /// A claim of the key on a session (occupying it with a waiting
    /// statement when [`Claim::is_blocking`]).
    Claimed(Arc<Claim>),
    /// The key's shared hold on this session, which the reader joined.
    Joined(Arc<Session>),
}

/// The sessions of one backend.
pub(crate) struct Sessions {
    db: Arc<dyn SessionDb>,
    settings: SessionSettings,
    backend: &'static str,
    /// Bounds opening a connection.
    connect_timeout: Duration,
    /// Bounds each statement that does not wait in the server.
    timeout: Duration,
    state: std::sync::Mutex<State>,
    /// Told when a key is freed, a session ends or one is opened.
    changed: Arc<Notify>,
    /// Its own weak handle, for the sessions' keepers.
    this: Weak<Sessions>,
}

struct State {
    sessions: Vec<Arc<Session>>,
    /// Connections being opened (they count towards the bound).
    opening: u32,
}

/// What [`Sessions::plan`] decided.
enum Plan<'a> {
    Go(Route),
    /// Open a connection (its slot reserved) for a waiting statement or not.
    Open(Slot<'a>, bool),
    /// Every usable session holds or claims the key, and no more may open.
    Busy,
    /// No session is usable yet, but some are being opened.
    Opening,
}

/// A reserved place for a connection being opened, given back when
/// dropped unless filled.
struct Slot<'a> {
    sessions: &'a Sessions,
    filled: bool,
}

impl Slot<'_> {
    /// Puts `session` in the reserved place.
    fn fill(mut self, state: &mut State, session: Arc<Session>) {
        state.sessions.push(session);
        state.opening = state.opening.saturating_sub(1);
        self.filled = true;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.filled {
            let mut s = lock(&self.sessions.state);
            s.opening = s.opening.saturating_sub(1);
        }
    }
}

impl Sessions {
    /// The sessions of a backend named `backend` on `db`; opening one is
    /// bounded by `connect_timeout`, a statement that does not wait by
    /// `timeout`.
    pub fn new(
        db: Arc<dyn SessionDb>,
        settings: SessionSettings,
        backend: &'static str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Sessions {
            db,
            settings,
            backend,
            connect_timeout,
            timeout,
            state: std::sync::Mutex::new(State {
                sessions: Vec::new(),
                opening: 0,
            }),
            changed: Arc::new(Notify::new()),
            this: this.clone(),
        })
    }

    /// The database.
    pub fn db(&self) -> &Arc<dyn SessionDb> {
        &self.db
    }

    /// The live session with this id.
    pub fn find(&self, id: u64) -> Option<Arc<Session>> {
        lock(&self.state)
            .sessions
            .iter()
            .find(|s| s.id() == id && !s.is_gone())
            .cloned()
    }

    /// How many sessions are open, and how many locks they hold.
    pub fn census(&self) -> (usize, usize) {
        let s = lock(&self.state);
        let live = s.sessions.iter().filter(|s| !s.is_gone());
        live.fold((0, 0), |(n, held), s| (n + 1, held + s.held()))
    }

    /// Forgets a session that ended.
    pub fn forget(&self, session: &Session) {
        lock(&self.state)
            .sessions
            .retain(|s| s.id() != session.id());
        self.changed.notify_waiters();
    }

    /// Finds where a request for `key` through `gate` goes: a waiting
    /// statement's session if `waits` and one may be had, else a try's;
    /// `owner` joins a shared hold where that is the only way; with `own`,
    /// a session that holds nothing, occupied by the request whether it
    /// waits or not. Opens a connection when needed, within `until`. `None`
    /// when the key is busy on every session and `until` passed (at once
    /// when `waits` and `own` are false).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection being opened is closed, a reserved place
    /// given back.
    pub async fn route(
        &self,
        key: &Key,
        gate: Gate,
        (waits, own): (bool, bool),
        owner: OwnerToken,
        until: Instant,
    ) -> Result<Option<Route>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let plan = if own {
                self.plan_own(key.id, waits)
            } else {
                self.plan(key.id, gate, waits, owner)
            };
            match plan {
                Plan::Go(route) => return Ok(Some(route)),
                Plan::Open(slot, blocking) => {
                    let session = self.open(slot).await?;
                    let claim = session
                        .claim(key.id, blocking)
                        .or_else(|| session.claim(key.id, false).filter(|_| !own));
                    if let Some(claim) = claim {
                        return Ok(Some(Route::Claimed(Arc::new(claim))));
                    }
                }
                Plan::Busy if !waits && !own => return Ok(None),
                Plan::Busy | Plan::Opening => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    let _ = tokio::time::timeout(left, changed).await;
                }
            }
        }
    }

    /// Decides where a request goes (see [`route`](Sessions::route)).
    fn plan(&self, key: i64, gate: Gate, waits: bool, owner: OwnerToken) -> Plan<'_> {
        let mut state = lock(&self.state);
        state.sessions.retain(|s| !s.is_gone());
        // A presence slot is shared by every local holder of the name: a
        // session that holds one is joined first, so that one backend
        // takes one slot.
        if gate == Gate::Presence {
            if let Some(s) = state.sessions.iter().find(|s| s.join(key, gate, owner)) {
                return Plan::Go(Route::Joined(Arc::clone(s)));
            }
        }
        let max = self.settings.max;
        let count = u32::try_from(state.sessions.len()).unwrap_or(u32::MAX);
        let room = count.saturating_add(state.opening) < max;
        let blocking = state.sessions.iter().filter(|s| s.is_blocking()).count();
        let blocking = u32::try_from(blocking).unwrap_or(u32::MAX);
        // A waiting statement must leave a connection for the others (those
        // being opened may become waiting ones too).
        let may_block = waits && blocking.saturating_add(state.opening).saturating_add(1) < max;
        if may_block {
            for s in &state.sessions {
                if s.is_idle() {
                    if let Some(claim) = s.claim(key, true) {
                        return Plan::Go(Route::Claimed(Arc::new(claim)));
                    }
                }
            }
            if room {
                state.opening += 1;
                return Plan::Open(self.slot(), true);
            }
        }
        let quiet = state
            .sessions
            .iter()
            .filter_map(|s| s.open_for(key).map(|queued| (queued, s)))
            .min_by_key(|(queued, _)| *queued);
        if let Some(claim) = quiet.and_then(|(_, s)| s.claim(key, false)) {
            return Plan::Go(Route::Claimed(Arc::new(claim)));
        }
        if room {
            state.opening += 1;
            return Plan::Open(self.slot(), false);
        }
        if gate == Gate::Shared && self.db.keeps_shared_gate() {
            if let Some(s) = state.sessions.iter().find(|s| s.join(key, gate, owner)) {
                return Plan::Go(Route::Joined(Arc::clone(s)));
            }
        }
        if state.opening > 0 {
            return Plan::Opening;
        }
        Plan::Busy
    }

    /// Decides where a request that needs a session of its own goes: an
    /// idle session, occupied (see [`route`](Sessions::route)), or a new
    /// one; a waiting one only while that leaves a connection for everyone
    /// else's short statements.
    fn plan_own(&self, key: i64, waits: bool) -> Plan<'_> {
        let mut state = lock(&self.state);
        state.sessions.retain(|s| !s.is_gone());
        let max = self.settings.max;
        let count = u32::try_from(state.sessions.len()).unwrap_or(u32::MAX);
        let blocking = state.sessions.iter().filter(|s| s.is_blocking()).count();
        let blocking = u32::try_from(blocking).unwrap_or(u32::MAX);
        let may_occupy = !waits || blocking.saturating_add(state.opening).saturating_add(1) < max;
        if may_occupy {
            let idle = state.sessions.iter().filter(|s| s.is_idle());
            if let Some(claim) = idle.filter_map(|s| s.claim(key, true)).next() {
                return Plan::Go(Route::Claimed(Arc::new(claim)));
            }
            if count.saturating_add(state.opening) < max {
                state.opening += 1;
                return Plan::Open(self.slot(), true);
            }
        }
        if state.opening > 0 {
            return Plan::Opening;
        }
        Plan::Busy
    }

    /// A place for a connection, counted in `opening` by the caller.
    fn slot(&self) -> Slot<'_> {
        Slot {
            sessions: self,
            filled: false,
        }
    }

    /// Opens a session within the connect timeout, adds it, and starts its
    /// keeper. The caller's deadline does not cut it: a server
    /// that is slow to fork a connection under load is not down, and a
    /// try-once acquire that needs a new session would otherwise fail
    /// with `Unavailable` for the server's slowness, not for the lock.
    async fn open(&self, slot: Slot<'_>) -> Result<Arc<Session>> {
        let limit = self.connect_timeout;
        let context = || "opening a session connection".to_string();
        // The server heard from the session no earlier than this.
        let started = Instant::now();
        let opened = match tokio::time::timeout(limit, self.db.open()).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(driver_error(self.backend, context(), limit, e)),
            Err(_) => {
                return Err(LockError::unavailable(
                    self.backend,
                    format!("{}: no answer within {limit:?}", context()),
                ))
            }
        };
        let session = Arc::new(Session::new(
            Arc::clone(&self.db),
            opened.conn,
            opened.server_id,
            started,
            Arc::clone(&self.changed),
            self.timeout,
            self.settings.reentrant,
        ));
        slot.fill(&mut lock(&self.state), Arc::clone(&session));
        self.changed.notify_waiters();
        tokio::spawn(keeper::keep(
            Arc::downgrade(&session),
            self.this.clone(),
            self.settings,
        ));
        Ok(session)
    }
}
