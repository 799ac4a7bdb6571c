//! What the session engine needs of a database, as two traits: one open
//! connection's statements ([`SessionConn`]), and the database as a whole
//! ([`SessionDb`]: opening connections, the fencing sequence, the status
//! read, and the rows of the holders table that stand beside session
//! locks — a leader's label, a hold kept after its release). PostgreSQL
//! and MySQL/MariaDB implement both; the engine knows neither.

use std::time::Duration;

use async_trait::async_trait;

use super::keys::Key;

/// Which session lock a statement takes or gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Gate {
    /// The exclusive lock (the mutex, the writer); on MySQL the writer's
    /// statement also checks that no reader or permit holds a row.
    Exclusive,
    /// The readers' and permits' gate: PostgreSQL's shared advisory lock,
    /// held with the hold; MySQL's `GET_LOCK`, held only around the grant.
    Shared,
    /// MySQL's readers and permit holders: one of the name's presence
    /// slots (`GET_LOCK` on `<name>:<i>`, never waiting), held with the
    /// hold — one per session, whatever the number of local holders; the
    /// writer's statement reads the holders table only while some slot is
    /// held.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Presence,
}

/// How long a take statement may wait in the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Not at all: a try.
    Try,
    /// Up to this long.
    Upto(Duration),
    /// Until granted.
    Forever,
}

impl Patience {
    /// Whether the statement may wait (and so occupies its connection).
    pub fn waits(self) -> bool {
        self != Patience::Try
    }
}

/// What a take statement found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The lock is this session's now, with this fencing token (drawn in
    /// the same statement, after the grant).
    Taken(u64),
    /// Not taken: others hold it, or the wait ran out.
    Refused,
    /// MySQL's writer: the lock is this session's, but readers' or permit
    /// holders' rows are still in the way; the soonest of them ends within
    /// this much (if any was read). No token was drawn.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Readers(Option<Duration>),
}

/// A take statement's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// What it found.
    pub outcome: Outcome,
    /// How long the server spent on it (its wait), by the server's clock.
    pub busy: Duration,
}

/// One open connection, a database session of its own; each method is one
/// statement (one round trip).
#[async_trait]
pub(crate) trait SessionConn: Send + 'static {
    /// Takes `gate` of `key`, waiting in the server as `patience` says;
    /// the token is drawn in the same statement once it is taken.
    async fn take(
        &mut self,
        key: &Key,
        gate: Gate,
        patience: Patience,
    ) -> Result<Answer, sqlx::Error>;

    /// MySQL's writer, holding `key`: whether readers or permit holders
    /// are still in; a token ([`Outcome::Taken`]) once they are gone.
    async fn readers_left(&mut self, key: &Key) -> Result<Outcome, sqlx::Error>;

    /// A fresh fencing token.
    async fn token(&mut self) -> Result<u64, sqlx::Error>;

    /// Gives `gate` of `key` back; whether this session held it.
    async fn give_back(&mut self, key: &Key, gate: Gate) -> Result<bool, sqlx::Error>;

    /// Proves the session alive; the server's id of the session (a
    /// process or connection id).
    async fn ping(&mut self) -> Result<i64, sqlx::Error>;

    /// Readies the session to keep its one lock after its release
    /// ([`hold_then_give_back`](SessionConn::hold_then_give_back)): the
    /// server must run a statement to its end even when the client is gone.
    async fn ready_to_hold(&mut self) -> Result<(), sqlx::Error>;

    /// Keeps `gate` of `key` for `hold`, on the server, then gives it back
    /// and deletes `owner`'s label row of it (if any): one statement that
    /// runs to its end whether or not the client stays. Whether the lock
    /// was given back.
    async fn hold_then_give_back(
        &mut self,
        key: &Key,
        gate: Gate,
        hold: Duration,
        owner: &str,
    ) -> Result<bool, sqlx::Error>;
}

/// A newly opened session.
pub(crate) struct Opened {
    /// Its connection.
    pub conn: Box<dyn SessionConn>,
    /// The server's id of the session.
    pub server_id: i64,
}

/// What the locks look like from outside, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Some session holds the name (in any mode), or a reader's, permit
    /// holder's or kept hold's row lives.
    pub held: bool,
    /// How many sessions wait for it in the server, where it can tell.
    pub waiters: Option<usize>,
    /// The exclusive holder known by its row: a labelled holder of the
    /// session lock, or a hold kept after its release.
    pub holder: Option<SeenHolder>,
}

/// An exclusive holder known by its row of the holders table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeenHolder {
    /// Its fencing token (a leader's term).
    pub term: u64,
    /// Its label, if it has one.
    pub label: Option<String>,
    /// The row's time left on the database clock.
    pub remaining: Duration,
}

/// A label row: what a labelled grant stores beside its session lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Label<'a> {
    /// The holder's label (an elected leader's identity).
    pub label: &'a str,
    /// The hold's fencing token (the leader's term).
    pub term: u64,
    /// How long the row lives unless renewed.
    pub ttl: Duration,
}

/// A database with session locks.
#[async_trait]
pub(crate) trait SessionDb: Send + Sync + 'static {
    /// Whether a reader or permit keeps its [`Gate::Shared`] for the whole
    /// hold (PostgreSQL), rather than only around its grant (MySQL).
    fn keeps_shared_gate(&self) -> bool;

    /// Whether readers and permit holders hold a [`Gate::Presence`] slot
    /// with their hold (MySQL), which their leases then live by.
    fn marks_presence(&self) -> bool;

    /// Whether storing and deleting a label row notifies observers
    /// (PostgreSQL's `NOTIFY`), so that the engine can claim `watch`.
    fn notifies(&self) -> bool;

    /// Opens a session: a new connection, set up so that the server ends
    /// the session (and frees its locks) once it has heard nothing from
    /// the client for the session timeout. Several round trips.
    async fn open(&self) -> Result<Opened, sqlx::Error>;

    /// Creates what the strategy needs beside the tables (PostgreSQL's
    /// fencing sequence) unless it exists.
    async fn prepare(&self) -> Result<(), sqlx::Error>;

    /// Whether `key` is held, its waiters, and its exclusive holder known
    /// by its row (one round trip, on the table's pool).
    async fn seen(&self, key: &Key) -> Result<Seen, sqlx::Error>;

    /// Stores the label row of `owner`'s exclusive hold of `key`,
    /// notifying the labelled grant where the database notifies (one round
    /// trip, on the table's pool).
    async fn label(&self, key: &Key, owner: &str, label: Label<'_>) -> Result<(), sqlx::Error>;

    /// Renews `owner`'s label row of `key` to `ttl` from now: whether it
    /// lived (one round trip, on the table's pool).
    async fn relabel(&self, key: &Key, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error>;

    /// Deletes `owner`'s label row of `key` after its release, notifying
    /// it where the database notifies (one round trip, on the table's
    /// pool).
    async fn unlabel(&self, key: &Key, owner: &str) -> Result<(), sqlx::Error>;

    /// Whether the statement that keeps a hold after its release
    /// ([`hold_then_give_back`](SessionConn::hold_then_give_back)) also
    /// deletes the hold's label row (PostgreSQL); if not (MySQL), the row
    /// is made to end with the minimum.
    fn deletes_kept_label(&self) -> bool;

    /// Whether the session whose server id is `server_id` is running its
    /// [`hold_then_give_back`](SessionConn::hold_then_give_back) statement
    /// (one round trip, on the table's pool).
    async fn holding(&self, server_id: i64) -> Result<bool, sqlx::Error>;

    /// Whether `e` means the session is gone (its connection broken, or
    /// ended by the server): every lock it held is free.
    fn is_fatal(&self, e: &sqlx::Error) -> bool;
}

/// The errors after which a connection is gone, on any database: the
/// connection broke, or the driver gave up on it.
pub(crate) fn broken(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// A time the server reported in microseconds, as a duration (zero when
/// negative or absent).
pub(crate) fn micros(us: Option<i64>) -> Duration {
    Duration::from_micros(us.and_then(|us| u64::try_from(us).ok()).unwrap_or(0))
}

/// `text` without its comment lines (those starting with `--`): what the
/// client hashes to find the prepared statement at every run.
pub(crate) fn uncommented(text: &str) -> String {
    let lines = text.lines().filter(|l| !l.trim_start().starts_with("--"));
    lines.collect::<Vec<_>>().join("\n")
}

/// The error for a session whose statements reach another server session
/// than the one that set it up (`first`, then `then`).
/// A new session, whose server session was `id`, once the same server
/// session answers a ping again: a pooler that hands each statement to
/// another server session (PgBouncer in transaction mode) is refused.
///
/// Round trips: one.
pub(crate) async fn confirmed<S: SessionConn + 'static>(
    mut session: S,
    id: i64,
) -> Result<Opened, sqlx::Error> {
    let again = session.ping().await?;
    if again != id {
        return Err(pooled(id, again));
    }
    Ok(Opened {
        conn: Box::new(session),
        server_id: id,
    })
}

pub(crate) fn pooled(first: i64, then: i64) -> sqlx::Error {
    sqlx::Error::Configuration(
        format!(
            "the session strategy needs one database session per connection, but session \
             {first} was set up and {then} answered next: a connection pooler in transaction \
             mode (PgBouncer `pool_mode = transaction`, ProxySQL multiplexing) is in between; \
             use session pooling, a direct connection, or `strategy=table`"
        )
        .into(),
    )
}
