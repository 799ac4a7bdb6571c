//! One session connection and its book: which keys it holds and for whom,
//! which are claimed by a request in flight, whether a waiting statement
//! occupies it, and when the server last heard from it.
//!
//! Session locks are re-entrant per session, so the book is what keeps two
//! local requests apart: a request for a key goes only to a session where
//! the key is neither held nor [claimed](Claim) (a reader may join a shared
//! hold of its key instead, locally). A claim lasts until the request's
//! outcome is known and, when a statement was dropped half-way, until the
//! clean-up queued behind it has run.
//!
//! Statements run one at a time, in order (an async mutex around the
//! connection), so a clean-up queued after a dropped statement runs after
//! it.
//!
//! A session may be *dedicated* to one hold (taken with a
//! lock-at-least-for minimum, where such holds are kept by a statement on
//! their own session): no other request goes there while it holds it, and
//! its release may [detach](Session::detach) the connection for that
//! statement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::sync::lock;
use distlock_core::{Liveness, OwnerToken, SessionLiveness};
use tokio::sync::{watch, Notify};

use super::book::{Book, ById, Holding};
use super::db::{Answer, Gate, Outcome, Patience, SessionConn, SessionDb};
use super::keys::Key;

/// Session ids, unique in the process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);
/// Claim ids, unique in the process.
static NEXT_CLAIM: AtomicU64 = AtomicU64::new(1);

/// Why a statement on a session gave no answer from the database.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The session is gone (its locks are free): why.
    Gone(String),
    /// The database refused the statement; the session lives.
    Db(sqlx::Error),
    /// No answer within this bound: the statement's outcome is unknown.
    NoAnswer(Duration),
}

/// One database session: a connection of its own.
pub(crate) struct Session {
    id: u64,
    server_id: i64,
    /// Bounds the statements that clean up after others.
    timeout: Duration,
    /// Broken on purpose (tests only): keys held or claimed here do not
    /// keep requests for them away.
    reentrant: bool,
    db: Arc<dyn SessionDb>,
    conn: tokio::sync::Mutex<Option<Box<dyn SessionConn>>>,
    book: std::sync::Mutex<Book>,
    liveness: SessionLiveness,
    /// Told whenever a key is freed or a session ends (shared by the pool).
    changed: Arc<Notify>,
}

impl Session {
    /// A session on `conn` (the server's id `server_id`), whose server heard
    /// from it no earlier than `contact`.
    pub fn new(
        db: Arc<dyn SessionDb>,
        conn: Box<dyn SessionConn>,
        server_id: i64,
        contact: Instant,
        changed: Arc<Notify>,
        timeout: Duration,
        reentrant: bool,
    ) -> Self {
        Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            server_id,
            timeout,
            reentrant,
            db,
            conn: tokio::sync::Mutex::new(Some(conn)),
            book: std::sync::Mutex::new(Book {
                held: ById::default(),
                claimed: ById::default(),
                blocking: None,
                contact,
                used: contact,
                queued: 0,
                gone: false,
                dedicated: false,
            }),
            liveness: SessionLiveness::new(),
            changed,
        }
    }

    /// Its id in this process (in the lease data).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The server's id of the session (a process or connection id).
    pub fn server_id(&self) -> i64 {
        self.server_id
    }

    /// Its liveness, as guards follow it.
    pub fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.subscribe()
    }

    /// Whether it is gone.
    pub fn is_gone(&self) -> bool {
        lock(&self.book).gone
    }

    /// The server heard from it no earlier than this.
    pub fn contact(&self) -> Instant {
        lock(&self.book).contact
    }

    /// Holds nothing, claims nothing, waits for nothing.
    pub fn is_idle(&self) -> bool {
        let b = lock(&self.book);
        b.held.is_empty() && b.claimed.is_empty() && b.blocking.is_none()
    }

    /// Ends the session if it holds nothing, claims nothing, waits for
    /// nothing, and no request used it for `unused`; whether it did.
    pub fn retire_if_unused(&self, unused: Duration) -> bool {
        {
            let mut b = lock(&self.book);
            let retire = !b.gone
                && b.held.is_empty()
                && b.claimed.is_empty()
                && b.blocking.is_none()
                && b.used.elapsed() >= unused;
            if !retire {
                return false;
            }
            b.gone = true;
        }
        self.liveness.lose("the session was closed, unused");
        true
    }

    /// Dedicated to the one hold it has.
    pub fn is_dedicated(&self) -> bool {
        lock(&self.book).dedicated
    }

    /// A waiting statement occupies it.
    pub fn is_blocking(&self) -> bool {
        lock(&self.book).blocking.is_some()
    }

    /// Neither holds nor claims `key`, nor waits: a request for it may go
    /// here. With how many statements are queued on it.
    pub fn open_for(&self, key: i64) -> Option<usize> {
        let b = lock(&self.book);
        let open =
            !b.gone && !b.dedicated && b.blocking.is_none() && (self.reentrant || b.has_not(key));
        open.then_some(b.queued)
    }

    /// How many keys it holds.
    pub fn held(&self) -> usize {
        lock(&self.book).held.len()
    }

    /// Claims `key` for a request (marking the session occupied by a
    /// waiting statement if `blocking`), if it is open for it.
    pub fn claim(self: &Arc<Self>, key: i64, blocking: bool) -> Option<Claim> {
        let mut b = lock(&self.book);
        let open = !b.gone
            && !b.dedicated
            && b.blocking.is_none()
            && (self.reentrant || b.has_not(key))
            && (!blocking || (b.held.is_empty() && b.claimed.is_empty()));
        if !open {
            return None;
        }
        let id = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        if !self.reentrant {
            b.claimed.insert(key, id);
        }
        if blocking {
            b.blocking = Some(id);
        }
        b.used = Instant::now();
        Some(Claim {
            session: Arc::clone(self),
            key,
            id,
        })
    }

    /// Joins `owner` to the hold of `key` through `gate` (shared or
    /// presence) this session has, if it has one and no request for the
    /// key is in flight here.
    pub fn join(&self, key: i64, gate: Gate, owner: OwnerToken) -> bool {
        let mut b = lock(&self.book);
        if b.gone || b.dedicated || b.blocking.is_some() || b.claimed.contains_key(&key) {
            return false;
        }
        match b.held.get_mut(&key) {
            Some(h) if h.gate == gate && gate != Gate::Exclusive => {
                h.owners.push(owner);
                b.used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Whether `owner` holds `key` here through `gate`.
    pub fn holds(&self, key: i64, gate: Gate, owner: OwnerToken) -> bool {
        let b = lock(&self.book);
        !b.gone
            && b.held
                .get(&key)
                .is_some_and(|h| h.gate == gate && h.owners.contains(&owner))
    }

    /// Takes `owner` off `key`'s hold (through `gate`): `None` when it did
    /// not hold it; else, when it was the last owner, a claim of the key
    /// under which to give the lock back to the server.
    pub fn leave(
        self: &Arc<Self>,
        key: i64,
        gate: Gate,
        owner: OwnerToken,
    ) -> Option<Option<Claim>> {
        let mut b = lock(&self.book);
        if b.gone {
            return None;
        }
        let h = b.held.get_mut(&key).filter(|h| h.gate == gate)?;
        let at = h.owners.iter().position(|o| *o == owner)?;
        h.owners.swap_remove(at);
        if !h.owners.is_empty() {
            return Some(None);
        }
        b.held.remove(&key);
        b.dedicated = false;
        let id = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        b.claimed.insert(key, id);
        Some(Some(Claim {
            session: Arc::clone(self),
            key,
            id,
        }))
    }

    /// Records that `owner` holds `key` through `gate` (its claim ends
    /// when dropped), dedicating the session to that hold if `dedicated`.
    fn hold(&self, key: i64, gate: Gate, owner: OwnerToken, dedicated: bool) {
        let mut b = lock(&self.book);
        b.dedicated |= dedicated;
        b.held
            .entry(key)
            .or_insert_with(|| Holding {
                gate,
                owners: Vec::new(),
            })
            .owners
            .push(owner);
    }

    /// Ends claim `id` of `key`, and its waiting statement's occupation.
    fn unclaim(&self, key: i64, id: u64) {
        {
            let mut b = lock(&self.book);
            if b.claimed.get(&key) == Some(&id) {
                b.claimed.remove(&key);
            }
            if b.blocking == Some(id) {
                b.blocking = None;
            }
        }
        self.changed.notify_waiters();
    }

    /// Ends claim `id`'s occupation of the connection (its statement
    /// returned), keeping the claim.
    fn unblock(&self, id: u64) {
        {
            let mut b = lock(&self.book);
            if b.blocking == Some(id) {
                b.blocking = None;
            }
        }
        self.changed.notify_waiters();
    }

    /// Reports the session `Suspended` (no answer for a while), unless it
    /// is gone.
    pub fn suspend(&self) {
        self.liveness.suspend();
    }

    /// Marks the session gone for `why`: its locks are free, every lease on
    /// it is lost. Its connection is closed by whoever holds it next.
    pub fn lose(&self, why: &str) {
        {
            let mut b = lock(&self.book);
            if b.gone {
                return;
            }
            b.gone = true;
            b.held.clear();
        }
        tracing::debug!(session = self.id, reason = why, "distlock.sql.session_lost");
        self.liveness.lose(why);
        self.changed.notify_waiters();
    }

    /// Takes the connection away for the one statement that keeps its
    /// dedicated hold after its release (the hold is no longer this
    /// session's to manage): the session is gone from then on (`why`).
    /// `None` when it was gone already.
    pub async fn detach(&self, why: &str) -> Option<Box<dyn SessionConn>> {
        let mut conn = self.conn.lock().await;
        let detached = if self.is_gone() {
            *conn = None;
            None
        } else {
            conn.take()
        };
        drop(conn);
        self.lose(why);
        detached
    }

    /// Closes the connection now, if no statement holds it; otherwise the
    /// statement's end closes it.
    pub fn close_now(&self) {
        if let Ok(mut conn) = self.conn.try_lock() {
            *conn = None;
        }
    }

    /// `take` on the connection, bounded by `limit` once sent (see
    /// [`turn`](Session::turn)).
    pub async fn take(
        &self,
        key: &Key,
        gate: Gate,
        patience: Patience,
        limit: Option<Duration>,
    ) -> Result<Answer, Failure> {
        let mut turn = self.turn().await;
        let sent = Instant::now();
        let result = within(limit, turn.conn()?.take(key, gate, patience)).await?;
        let busy = result.as_ref().map_or(Duration::ZERO, |a| a.busy);
        turn.settle(sent, busy, result)
    }

    /// `readers_left` on the connection, within the statement timeout once
    /// sent: its answer and when it was sent.
    pub async fn readers_left(&self, key: &Key) -> Result<(Outcome, Instant), Failure> {
        let mut turn = self.turn().await;
        let sent = Instant::now();
        let result = within(Some(self.timeout), turn.conn()?.readers_left(key)).await?;
        turn.settle(sent, Duration::ZERO, result).map(|o| (o, sent))
    }

    /// `token` on the connection, within the statement timeout once sent.
    pub async fn token(&self) -> Result<u64, Failure> {
        let mut turn = self.turn().await;
        let sent = Instant::now();
        let result = within(Some(self.timeout), turn.conn()?.token()).await?;
        turn.settle(sent, Duration::ZERO, result)
    }

    /// `give_back` on the connection, within the statement timeout once sent.
    pub async fn give_back(&self, key: &Key, gate: Gate) -> Result<bool, Failure> {
        let mut turn = self.turn().await;
        let sent = Instant::now();
        let result = within(Some(self.timeout), turn.conn()?.give_back(key, gate)).await?;
        turn.settle(sent, Duration::ZERO, result)
    }

    /// Pings the session, bounded by `limit` once sent: the instant the
    /// ping was sent, once the server answered. An answer from another
    /// server session than the one set up (a pooler in between) loses the
    /// session.
    pub async fn ping(&self, limit: Option<Duration>) -> Result<Instant, Failure> {
        let mut turn = self.turn().await;
        let sent = Instant::now();
        let result = within(limit, turn.conn()?.ping()).await?;
        let server_id = turn.settle(sent, Duration::ZERO, result)?;
        if server_id != self.server_id {
            let why = super::db::pooled(self.server_id, server_id).to_string();
            *turn.conn = None;
            self.lose(&why);
            return Err(Failure::Gone(why));
        }
        Ok(sent)
    }

    /// The connection, once the statements queued before are done (the
    /// statement counted on the queue meanwhile).
    ///
    /// A statement's bound starts when it is sent: its wait in the queue
    /// is not the server's silence. That wait is bounded by the statements
    /// ahead (each by its own bound, a waiting statement alone on its
    /// session), so a client with many requests in flight on few sessions
    /// waits its turn instead of failing with `Unavailable`.
    async fn turn(&self) -> Turn<'_> {
        lock(&self.book).queued += 1;
        let queued = Queued {
            session: self,
            done: false,
        };
        let conn = self.conn.lock().await;
        Turn {
            session: self,
            queued,
            conn,
        }
    }

    /// The connection, unless the session is gone (then it is closed).
    fn usable<'c>(
        &self,
        conn: &'c mut Option<Box<dyn SessionConn>>,
    ) -> Option<&'c mut Box<dyn SessionConn>> {
        if self.is_gone() {
            *conn = None;
        }
        conn.as_mut()
    }

    fn gone_failure(&self) -> Failure {
        let why = match self.liveness.current() {
            Liveness::Lost(why) => why,
            _ => "the session is closed".to_string(),
        };
        Failure::Gone(why)
    }

    /// Records what a statement sent at `sent` (on which the server spent
    /// `busy`) gave: an answer proves the session alive; a fatal error ends
    /// it; closes the connection of a session gone meanwhile.
    fn settle<T>(
        &self,
        conn: &mut Option<Box<dyn SessionConn>>,
        sent: Instant,
        busy: Duration,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, Failure> {
        let fatal = matches!(&result, Err(e) if self.db.is_fatal(e));
        if fatal || self.is_gone() {
            *conn = None;
        }
        match result {
            Err(e) if fatal => {
                let why = format!("the database session ended: {e}");
                self.lose(&why);
                Err(Failure::Gone(why))
            }
            other => {
                self.contacted(sent, busy);
                other.map_err(Failure::Db)
            }
        }
    }

    /// The server answered a statement sent at `sent` that it spent `busy`
    /// on: it heard from the session no earlier than `sent` plus that time
    /// (less 1 %, for its clock's rate).
    fn contacted(&self, sent: Instant, busy: Duration) {
        let heard = heard(sent, busy);
        {
            let mut b = lock(&self.book);
            if b.gone {
                return;
            }
            b.contact = b.contact.max(heard);
        }
        self.liveness.recover();
    }
}

/// The latest instant at which the server surely still had the session of
/// a statement sent at `sent` that it spent `busy` on (by its clock, so
/// less 1 % for that clock's rate): for a waiting take, when the lock was
/// granted, give or take the token's drawing.
pub(crate) fn heard(sent: Instant, busy: Duration) -> Instant {
    sent + busy.mul_f64(0.99)
}

/// A statement's turn on its session's connection (see [`Session::turn`]).
struct Turn<'a> {
    session: &'a Session,
    queued: Queued<'a>,
    conn: tokio::sync::MutexGuard<'a, Option<Box<dyn SessionConn>>>,
}

impl Turn<'_> {
    /// The connection, unless the session is gone (then it is closed).
    fn conn(&mut self) -> Result<&mut Box<dyn SessionConn>, Failure> {
        let Turn { session, conn, .. } = self;
        match session.usable(conn) {
            Some(c) => Ok(c),
            None => Err(session.gone_failure()),
        }
    }

    /// Ends the turn with what the statement sent at `sent` gave (see
    /// [`Session::settle`]).
    fn settle<T>(
        &mut self,
        sent: Instant,
        busy: Duration,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, Failure> {
        self.queued.done();
        self.session.settle(&mut self.conn, sent, busy, result)
    }
}

/// `statement` within `limit` (`None`: unbounded); past it, no answer.
async fn within<T>(
    limit: Option<Duration>,
    statement: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, statement)
            .await
            .map_err(|_| Failure::NoAnswer(limit)),
        None => Ok(statement.await),
    }
}

/// A statement counted on its session's queue.
struct Queued<'a> {
    session: &'a Session,
    done: bool,
}

impl Queued<'_> {
    fn done(&mut self) {
        if !self.done {
            self.done = true;
            let mut b = lock(&self.session.book);
            b.queued = b.queued.saturating_sub(1);
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// A key claimed on a session for one request: while it lives, no other
/// request for the key goes to that session. Dropping it ends the claim.
pub(crate) struct Claim {
    session: Arc<Session>,
    key: i64,
    id: u64,
}

impl Claim {
    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Whether its session is occupied by its waiting statement.
    pub fn is_blocking(&self) -> bool {
        lock(&self.session.book).blocking == Some(self.id)
    }

    /// Its waiting statement returned: the connection serves others again.
    pub fn unblock(&self) {
        self.session.unblock(self.id);
    }

    /// The request took the lock for `owner` through `gate`: the session
    /// holds it (the claim ends when dropped), dedicated to it if
    /// `dedicated`.
    pub fn hold(&self, gate: Gate, owner: OwnerToken, dedicated: bool) {
        self.session.hold(self.key, gate, owner, dedicated);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.session.unclaim(self.key, self.id);
    }
}
