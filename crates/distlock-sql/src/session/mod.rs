//! The session strategy: locks held with the database's own session locks
//! (PostgreSQL advisory locks, MySQL/MariaDB `GET_LOCK`) on a few
//! long-lived connections this backend keeps for them.
//!
//! - A mutex or writer is one statement to take — waiting in the server's
//!   queue when it may wait, so waiters are served in arrival order and no
//!   one polls — and one to release. Its fencing token is drawn in the
//!   granting statement, after the grant.
//! - A reader or permit is a row of the table strategy's holders table
//!   behind a gate on the name's session lock, and lives by a session
//!   lock too: the name's shared lock (PostgreSQL) or one of its presence
//!   slots (MySQL) ([`shared`]).
//! - A lock lives as long as the session that took it. The server ends a
//!   session it has not heard from for the session timeout; the
//!   [`keeper`] of each session proves it alive and reports its liveness,
//!   which the leases on it follow: when the session is found dead, every
//!   lease on it is lost at once.
//! - A leader's label is a row of the holders table beside its session
//!   lock; a hold released before its lock-at-least-for time is kept until
//!   then by the database alone: by its own session's last statement,
//!   which sleeps on the server ([`rows`]).
//!
//! Code map: [`keys`] turns a name into keys; [`db`] is what the engine
//! needs of a database, [`postgres`] and [`mysql`] provide it;
//! [`connection`] is one session and its [`book`] of held and claimed keys,
//! [`pool`] the sessions and the routing of requests, [`keeper`] their
//! liveness; [`take`] runs one take cancel-safely; [`exclusive`],
//! [`shared`] and [`release`] are the operations, [`rows`] the rows
//! beside them.

// Without PostgreSQL and MySQL there is no database to serve it (the
// configuration refuses it on SQLite), so most of it is never used.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_imports, unused_variables)
)]

mod book;
mod connection;
mod db;
mod exclusive;
mod keeper;
pub(crate) mod keys;
#[cfg(feature = "mysql")]
mod mysql;
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod release;
mod rows;
mod shared;
mod take;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireRequest, Capabilities, FencingToken, Grant, Lease, Liveness, LockError, LockName,
    LockStatus, Mode, OwnerToken, Renewal, Result,
};
use tokio::sync::watch;

use crate::config::{Database, SqlConfig};
use crate::store::{driver_error, Store};
use connection::{Failure, Session};
use db::{Gate, SessionDb};
use keys::Key;
use pool::Sessions;
use release::{PingResult, Pinged};

/// The DDL of the session strategy's fencing sequence for `table`
/// (PostgreSQL).
#[cfg(feature = "postgres")]
pub(crate) fn sequence_ddl(table: &str) -> String {
    postgres::sequence_ddl(table)
}

/// The prefix of a session lease's data: `session:<engine tag>:<session
/// id>`, and [`LABELLED`] after it for a leader's lease.
const DATA_PREFIX: &str = "session:";

/// The end of a labelled lease's data: its label row goes with it.
const LABELLED: &str = ":labelled";

/// The session strategy of one backend.
pub(crate) struct SessionEngine {
    sessions: Arc<Sessions>,
    table: String,
    backend: &'static str,
    /// Bounds each statement that does not wait in the server.
    timeout: Duration,
    /// Tells this engine's leases from others' (random).
    tag: String,
    /// The start of this engine's leases' data: `session:<tag>:`.
    data: String,
    /// The server answered within this much: the session is known alive.
    fresh: Duration,
    /// What it promises (see [`claims`](SessionEngine::claims)).
    caps: Capabilities,
}

impl SessionEngine {
    /// The session strategy on `store`'s database, as `config` sets it up;
    /// creates the fencing sequence if missing (unless `create_table` is
    /// off). Round trips: one, or five to create the sequence.
    pub async fn start(config: &SqlConfig, store: &Store) -> Result<Self> {
        let settings = config.session_settings();
        let (db, fifo) = database(config, store)?;
        if config.creates_table() {
            let limit = config.timeout();
            let context = || format!("creating the fencing sequence of table {}", config.table());
            match tokio::time::timeout(limit, db.prepare()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(driver_error(store.backend(), context(), limit, e)),
                Err(_) => {
                    return Err(LockError::unavailable(
                        store.backend(),
                        format!("{}: no answer within {limit:?}", context()),
                    ))
                }
            }
        }
        let tag = OwnerToken::random().to_hex();
        let tag = tag[..16].to_string();
        let caps = promises(fifo, db.notifies());
        Ok(SessionEngine {
            sessions: Sessions::new(
                db,
                settings,
                store.backend(),
                config.connect_timeout(),
                config.timeout(),
            ),
            table: config.table().to_string(),
            backend: store.backend(),
            timeout: config.timeout(),
            data: format!("{DATA_PREFIX}{tag}:"),
            tag,
            fresh: settings.suspend_after(),
            caps,
        })
    }

    /// What the session strategy promises. Change notices where the
    /// database notifies (PostgreSQL): labelled grants and releases.
    pub fn claims(&self) -> Capabilities {
        self.caps
    }

    /// Takes `request.name` in its mode (see [`exclusive`], [`shared`]).
    /// The shared take runs boxed: its future is twice the size of the
    /// exclusive one's, which would otherwise be set up at every take.
    pub async fn grant(&self, store: &Store, request: &AcquireRequest) -> Result<Option<Grant>> {
        match request.mode {
            Mode::Exclusive => exclusive::grant(self, request).await,
            _ => Box::pin(shared::grant(self, store, request)).await,
        }
    }

    /// Renews `lease` (see [`release`]).
    pub async fn renew(&self, store: &Store, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        release::renew(self, store, lease, ttl).await
    }

    /// Renews a batch (see [`release`]).
    pub async fn renew_batch(
        &self,
        store: &Store,
        batch: &[(Lease, Duration)],
    ) -> Vec<Result<Renewal>> {
        release::renew_batch(self, store, batch).await
    }

    /// Releases `lease` (see [`release`]).
    pub async fn revoke(&self, store: &Store, lease: &Lease) -> Result<()> {
        release::revoke(self, store, lease).await
    }

    /// Releases `lease` but keeps it held for `hold` (see [`rows`]); by
    /// this process, not the database, unless `by_server` (tests only).
    pub async fn release_after(
        &self,
        store: &Store,
        lease: &Lease,
        hold: Duration,
        by_server: bool,
    ) -> Result<()> {
        rows::release_after(self, store, lease, hold, by_server).await
    }

    /// The liveness of the session behind `lease`: its channel while it
    /// lives, `Lost` once it is gone; `None` for a lease without a session
    /// of this engine (another client's).
    pub fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let id = self.session_id(lease)?;
        match self.sessions.find(id) {
            Some(session) => Some(session.liveness()),
            None => Some(watch::channel(Liveness::Lost("the database session ended".into())).1),
        }
    }

    /// Whether `name` is held (by a session, or a reader's, permit's or
    /// kept hold's row), and how many wait for it where the database tells
    /// (PostgreSQL); for a labelled holder (a leader) or a kept hold, its
    /// label, its own fencing token and its row's time left. One round
    /// trip, on the table's pool.
    pub async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let key = self.key(name);
        let seen = self
            .on_pool("reading", &key, self.sessions.db().seen(&key))
            .await?;
        let (term, remaining, label) = match seen.holder {
            Some(h) => (Some(FencingToken(h.term)), Some(h.remaining), h.label),
            None => (None, None, None),
        };
        Ok(LockStatus::new(seen.held, term, remaining, seen.waiters).with_holder(label))
    }

    /// How many session connections are open, and how many locks they
    /// hold.
    pub fn census(&self) -> (usize, usize) {
        self.sessions.census()
    }

    /// The keys of `name`.
    fn key(&self, name: &LockName) -> Key {
        Key::of(&self.table, name)
    }

    /// Whether readers and permits keep their gate for the hold's life.
    fn keeps_shared_gate(&self) -> bool {
        self.sessions.db().keeps_shared_gate()
    }

    /// Whether readers and permit holders hold presence slots (MySQL).
    fn marks_presence(&self) -> bool {
        self.sessions.db().marks_presence()
    }

    /// Whether `request` is taken on a session of its own: it has a
    /// lock-at-least-for minimum, kept after an early release by a
    /// statement on its session — which must then hold nothing else. Not a
    /// hold by a presence slot (a MySQL reader's or permit's), which a
    /// session shares among its local holders.
    fn needs_own_session(&self, request: &AcquireRequest) -> bool {
        request.options.at_least.is_some()
            && (request.mode == Mode::Exclusive || !self.marks_presence())
    }

    /// The session lock that `lease` holds on its session, and its gate:
    /// the name's exclusive lock for a mutex or writer; for a reader or
    /// permit, the name's shared lock (PostgreSQL) or presence slot
    /// (MySQL).
    fn held(&self, lease: &Lease) -> (Key, Gate) {
        let key = self.key(lease.name());
        match lease.mode() {
            Mode::Exclusive => (key, Gate::Exclusive),
            _ if self.marks_presence() => (key.presence(), Gate::Presence),
            _ => (key, Gate::Shared),
        }
    }

    /// The grant of a lock taken with `token` by a statement sent at
    /// `sent`, held on `session` (if the hold has one), with a label row
    /// if `labelled`.
    fn granted(&self, token: u64, sent: Instant, session: Option<u64>, labelled: bool) -> Grant {
        let grant = Grant::new(FencingToken(token), sent);
        let Some(id) = session else {
            return grant;
        };
        let mut data = String::with_capacity(self.data.len() + 20 + LABELLED.len());
        data.push_str(&self.data);
        // Writing into a String cannot fail.
        let _ = write!(data, "{id}");
        if labelled {
            data.push_str(LABELLED);
        }
        grant.with_data(data)
    }

    /// Runs `op` on the table's pool within the statement timeout; a
    /// failure says it happened `doing` that on `key`.
    async fn on_pool<T>(
        &self,
        doing: &str,
        key: &Key,
        op: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(driver_error(
                self.backend,
                self.about(doing, key),
                self.timeout,
                e,
            )),
            Err(_) => Err(self.no_answer(doing, key)),
        }
    }

    /// The id of the session behind `lease`, if it is one of this engine's.
    fn session_id(&self, lease: &Lease) -> Option<u64> {
        let rest = lease.data().strip_prefix(DATA_PREFIX)?;
        let rest = rest.strip_suffix(LABELLED).unwrap_or(rest);
        let (tag, id) = rest.split_once(':')?;
        (tag == self.tag).then(|| id.parse().ok())?
    }

    /// The live session behind `lease`, if any.
    fn session_of(&self, lease: &Lease) -> Option<Arc<Session>> {
        self.sessions.find(self.session_id(lease)?)
    }

    /// When the server last heard from the session behind `lease` — asking
    /// it (once per batch in `pinged`) when that is not recent — if the
    /// lease's owner holds its session lock there; `NotHeld` otherwise.
    async fn alive(&self, lease: &Lease, pinged: &mut Pinged) -> Result<Instant> {
        let name = lease.name();
        let (key, gate) = self.held(lease);
        let session = self
            .session_of(lease)
            .filter(|s| s.holds(key.id, gate, lease.owner()))
            .ok_or_else(|| LockError::not_held(name.as_str()))?;
        let contact = session.contact();
        if contact.elapsed() <= self.fresh {
            return Ok(contact);
        }
        let ping = async {
            match session.ping(Some(self.timeout)).await {
                Ok(sent) => PingResult::Alive(sent),
                Err(Failure::Gone(_)) => PingResult::Gone,
                Err(Failure::Db(e)) => PingResult::Refused(e.to_string()),
                Err(Failure::NoAnswer(_)) => PingResult::NoAnswer,
            }
        };
        match pinged.once(session.id(), ping).await {
            PingResult::Alive(sent) => Ok(sent),
            PingResult::Gone => Err(LockError::not_held(name.as_str())),
            PingResult::NoAnswer => Err(self.no_answer("extending", &key)),
            PingResult::Refused(why) => {
                let context = format!("{}: {why}", self.about("extending", &key));
                Err(LockError::backend(self.backend, context, why))
            }
        }
    }

    /// The error for a statement on a session that gave no answer.
    fn failed(&self, doing: &str, key: &Key, failure: Failure) -> LockError {
        failure_error(self.backend, self.timeout, self.about(doing, key), failure)
    }

    /// The error for a statement not answered within the timeout.
    fn no_answer(&self, doing: &str, key: &Key) -> LockError {
        LockError::unavailable(
            self.backend,
            format!(
                "{}: no answer within {:?}",
                self.about(doing, key),
                self.timeout
            ),
        )
    }

    fn about(&self, doing: &str, key: &Key) -> String {
        format!(
            "{doing} `{}` (session locks of table {})",
            key.row, self.table
        )
    }
}

/// What the session strategy promises: waiters in arrival order if `fifo`,
/// change notices if the database `notifies`.
fn promises(fifo: bool, notifies: bool) -> Capabilities {
    Capabilities::builder()
        .fencing(true)
        .fifo(fifo)
        .wait_notification(true)
        .session_liveness(true)
        .ttl_expiry(false)
        .lease_handoff(false)
        .cross_process(true)
        .batch_extend(true)
        .shared(true)
        .semaphore(true)
        .upgrade(false)
        .labels(true)
        .watch(notifies)
        .at_least(true)
        .min_ttl(Duration::from_millis(1))
        .max_ttl(Duration::from_secs(7 * 24 * 3600))
        .build()
}

/// The error for a statement on a session that gave no answer, in
/// `context`.
fn failure_error(
    backend: &'static str,
    timeout: Duration,
    context: String,
    failure: Failure,
) -> LockError {
    match failure {
        Failure::Gone(why) => LockError::unavailable(backend, format!("{context}: {why}")),
        Failure::Db(e) => driver_error(backend, context, timeout, e),
        Failure::NoAnswer(limit) => {
            LockError::unavailable(backend, format!("{context}: no answer within {limit:?}"))
        }
    }
}

/// Whether `lease` is a labelled session lease (a leader's): its label row
/// goes with it.
fn is_labelled(lease: &Lease) -> bool {
    lease.data().starts_with(DATA_PREFIX) && lease.data().ends_with(LABELLED)
}

/// The database of `config`, for the session strategy, on `store`'s pool;
/// and whether it serves waiters in arrival order.
fn database(config: &SqlConfig, store: &Store) -> Result<(Arc<dyn SessionDb>, bool)> {
    let settings = config.session_settings();
    let missing = || {
        LockError::invalid_config(format!(
            "`strategy=session` is not served on {}",
            config.database().backend_name()
        ))
    };
    match config.database() {
        #[cfg(feature = "postgres")]
        Database::Postgres => {
            let pool = store.dialect().postgres_pool().ok_or_else(missing)?.clone();
            let options = (*pool.connect_options()).clone();
            let db = postgres::PgSessions::new(
                options,
                pool,
                config.table(),
                (settings.timeout, settings.ping()),
                settings.sequence_tokens,
            );
            Ok((Arc::new(db), true))
        }
        #[cfg(feature = "mysql")]
        Database::MySql => {
            let pool = store.dialect().mysql_pool().ok_or_else(missing)?.clone();
            let options = (*pool.connect_options()).clone();
            let presence = (settings.slots, settings.unmarked);
            let db = mysql::MySqlSessions::new(
                options,
                pool,
                config.table(),
                settings.timeout,
                presence,
            );
            Ok((Arc::new(db), true))
        }
        #[allow(unreachable_patterns)]
        _ => Err(missing()),
    }
}
