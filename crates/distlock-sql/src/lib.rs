//! # distlock-sql
//!
//! A distlock backend over one locks table in SQLite, PostgreSQL or
//! MySQL/MariaDB, through [sqlx](https://docs.rs/sqlx). Each database is a
//! Cargo feature (`sqlite`, `postgres`, `mysql`) and a URL scheme:
//!
//! | URL | database |
//! |---|---|
//! | `sqlite://path/to/locks.db` | SQLite file (created if missing), shared by processes on this machine |
//! | `sqlite:///absolute/path.db` | the same, absolute path |
//! | `sqlite::memory:` | in-memory SQLite, this process only (`cross_process = false`) |
//! | `postgres://user:password@host:5432/db` (or `postgresql://`) | PostgreSQL |
//! | `mysql://user:password@host:3306/db` (or `mariadb://`) | MySQL or MariaDB |
//!
//! Query parameters `table`, `create_table`, `pool_size`, `timeout` (legacy
//! `timeout_ms`) and, for servers, `connect_timeout` are read by distlock
//! and never reach the driver; the driver's own parameters (`sslmode=…` and
//! so on; TLS needs the `tls-rustls` feature) pass through, and any other
//! parameter is refused by name (see [`SqlConfig`]). The port defaults to
//! 5432 (PostgreSQL) and 3306 (MySQL); IPv6 hosts go in brackets.
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use distlock_core::LockClient;
//! use distlock_sql::SqlBackend;
//!
//! let backend = SqlBackend::connect("sqlite://target/locks.db").await?;
//! let client = LockClient::new(std::sync::Arc::new(backend));
//! let guard = client.lock("reports/daily").await?;
//! // … write to the protected resource, passing guard.fencing_token() …
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## What it guarantees
//!
//! - **Mutual exclusion** while a lease is valid: one row per lock, taken by a
//!   single statement that succeeds only when the row is absent, released or
//!   expired. The database serialises the statements.
//! - **Liveness by ttl**: a holder that vanishes frees the lock once its ttl
//!   passes. Expiry is judged by the database's own clock inside each
//!   statement (`now()` on PostgreSQL, `UTC_TIMESTAMP(6)` on MySQL,
//!   `julianday('now')` in milliseconds on SQLite), never by the
//!   application's. The backend reports the instant it *sent* the statement
//!   that took or extended the lock; the lease's validity is computed from
//!   it by the one drift rule of the core
//!   ([`distlock_core::validity`]). Since the database's "now" is read after
//!   the request was sent, and the ttl is rounded up to the database's
//!   resolution, the row always outlives the validity the lease reports.
//! - **Fencing**: the row keeps a `fence` counter that every acquire
//!   increments in the same statement. Release keeps the row (it clears the
//!   owner and the expiry), so tokens rise across holders forever.
//! - **Ownership**: extend and release are single `UPDATE`s conditioned on
//!   the 128-bit random owner token (drawn by the core for each acquire) and
//!   on the lease not having expired, so an expired lease is never brought
//!   back, even when nobody took the lock since; a lease exported with
//!   `Lease::export` can be extended and released from another process
//!   (`lease_handoff`).
//! - **Cancellation**: dropping an `acquire` future leaves nothing held: an
//!   in-flight acquire statement is followed, in the background, by a release
//!   conditioned on that acquire's owner token (the core's
//!   [`CleanupOnDrop`](distlock_core::cleanup::CleanupOnDrop)), issued on
//!   the attempt's own connection so that it runs after the acquire
//!   statement even when the database is still running that one.
//!
//! It does not guarantee: safety across a jump of the database server's wall
//! clock (a clock stepped forward expires leases early, as with any
//! ttl-based lock; use fencing tokens for the resource); fairness (see
//! below); availability beyond the database's own (a database that does not
//! answer within the timeout gives `Unavailable`).
//!
//! ## Waiting
//!
//! - **PostgreSQL**: waiters are woken by `LISTEN`/`NOTIFY`. The release
//!   statement calls `pg_notify('<table>', <key>)`, delivered when it commits.
//!   Each backend opens one extra connection, on the first acquire that
//!   waits, that listens on the table's channel and fans notifications out to
//!   its waiters; a waiter subscribes before its first attempt, so a release
//!   in between is never missed. A lock abandoned without release sends
//!   nothing: waiters then retry when the holder's remaining ttl (reported by
//!   the acquire statement) runs out. If the listening connection drops,
//!   every waiter retries at once, and again once `LISTEN` is back in effect.
//! - **MySQL/MariaDB and SQLite** have no notification that a statement can
//!   send to another session, so waiters poll with jittered exponential
//!   backoff (the acquire options' [`Backoff`](distlock_core::Backoff)),
//!   never sleeping past the holder's remaining ttl as computed by the
//!   database.
//!
//! **Fairness**: none is promised (`fifo = false`). On PostgreSQL every
//! waiter of a name wakes on its release and the first statement to commit
//! wins; with polling, the first poll after the release wins. A client that
//! releases and immediately acquires again can win repeatedly, but every
//! waiter retries within its backoff ceiling (200 ms by default) and so gets
//! regular chances; under the conformance suite's contention (8 clients ×
//! 125 acquisitions of one name) every client gets its turns. No waiters'
//! queue is kept.
//!
//! ## Round trips per operation
//!
//! | operation | PostgreSQL | MySQL/MariaDB | SQLite |
//! |---|---|---|---|
//! | acquire, lock free | 1 | 1 | 1 statement |
//! | acquire, lock held (per attempt) | 1 | 2 (acquire + read the holder's ttl) | 2 statements |
//! | extend | 1 | 1 | 1 statement |
//! | extend_many, per batch | 1 | 1 (2 when some lease was lost) | 1 statement |
//! | release | 1 (notification included) | 1 | 1 statement |
//! | status | 1 | 1 | 1 statement |
//!
//! `extend_many` extends a batch with one `UPDATE` joined to the batch's
//! `(key, owner, ttl)` rows (arrays on PostgreSQL, a bound `VALUES` list on
//! SQLite, a bound `UNION ALL` list on MySQL), judged by the database clock
//! like a single extend; PostgreSQL and SQLite return the rows extended.
//! MySQL cannot return rows from an `UPDATE`: its matched-rows count says
//! whether every lease was extended, and only when it falls short does a
//! second statement read which leases are still held (a lease is held then
//! only if the `UPDATE` extended it). A batch carries at most [`MAX_BATCH`]
//! leases; the core splits larger ones.
//!
//! On PostgreSQL an attempt on a visibly held lock is read-only (a
//! `NOT EXISTS` pre-check skips the upsert, which would otherwise lock the
//! holder's row and flush a commit). On MySQL the acquire statement reports
//! its outcome through `LAST_INSERT_ID(expr)` (MariaDB has no `RETURNING` on
//! `INSERT … ON DUPLICATE KEY UPDATE`); see `src/sql/mysql/acquire.sql`.
//!
//! Connecting to PostgreSQL or MySQL opens one direct connection first, so
//! a refused connection or a wrong password is reported as such rather than
//! as a pool timeout, then checks that the table exists (one round trip) and
//! creates it when missing, unless `create_table=false`.
//!
//! ## The table
//!
//! Default name `distlock_locks` (any identifier matching
//! `[A-Za-z_][A-Za-z0-9_]{0,62}` via `?table=`). Lock names are stored in a
//! 255-byte key, bound as parameters (never spliced into SQL) and compared
//! case-sensitively on every database; names longer than 255 bytes are
//! shortened with [`LockName::key_within`](distlock_core::LockName::key_within)
//! (a prefix plus 32 hex digits of the name's SHA-256). The DDL, which
//! [`ddl`] also returns for users who manage the schema themselves
//! (`create_table=false`):
//!
//! SQLite:
//! ```sql
#![doc = include_str!("sql/sqlite/create.sql")]
//! ```
//! PostgreSQL:
//! ```sql
#![doc = include_str!("sql/postgres/create.sql")]
//! ```
//! MySQL/MariaDB:
//! ```sql
#![doc = include_str!("sql/mysql/create.sql")]
//! ```
//! (with `{table}` replaced by the table name).
//!
//! ## SQLite across processes
//!
//! The file is opened in WAL mode with `synchronous = FULL` (a committed
//! acquire survives a power cut, so no fencing token is issued twice) and a
//! busy timeout equal to the operation timeout. Every statement the backend
//! runs is one autocommit statement that takes SQLite's write lock up front,
//! so concurrent processes queue on the busy handler instead of failing with
//! `SQLITE_BUSY`; no read-then-write transaction exists that would need
//! `BEGIN IMMEDIATE`.
//!
//! ## Errors
//!
//! A malformed URL or table name is `InvalidConfig`; a database that does
//! not answer within the timeout (default 5 s, `timeout=`; connecting is
//! bounded by `connect_timeout`, by default the same) or refuses the
//! connection is `Unavailable`; an error reported by the database (for
//! example missing privileges on the table) is `Backend`, naming the
//! operation, the lock and the table, and carrying the database's message.
//! Passwords never appear in errors, logs or `Debug` output.
//!
//! ## Code map
//!
//! `lock` is the algorithm (acquire attempt, waiting, extend, release,
//! status) over `store`, the locks table with timeouts and error context.
//! `store` sees the database only through the `dialect` trait, which
//! `sqlite`, `postgres` and `mysql` implement with the statements under
//! `src/sql/`; `backend` connects and picks the dialect; `notify` fans
//! PostgreSQL's release notifications out to waiters; `config` reads the URL.
//!
//! More detail, and measured overhead against the raw statements, in
//! `docs/backends/sql.md`.

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("distlock-sql needs at least one of the features `sqlite`, `postgres`, `mysql`");

mod backend;
mod config;
mod dialect;
mod lock;
#[cfg(feature = "mysql")]
mod mysql;
mod notify;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use distlock_core::Result;

pub use backend::SqlBackend;
pub use config::{validate_table, Database, SqlConfig, DEFAULT_TABLE, DEFAULT_TIMEOUT};
pub use lock::{MAX_BATCH, MAX_KEY_BYTES};
/// The sqlx version this crate is built on (for the pool accessors).
pub use sqlx;

/// The `CREATE TABLE` statement for `database` and `table`, as the backend
/// runs it when `create_table` is on.
///
/// ```
/// let sql = distlock_sql::ddl(distlock_sql::Database::Postgres, "app_locks")?;
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app_locks\""));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
///
/// # Errors
///
/// `InvalidConfig` for a table name that is not a plain identifier, or a
/// database whose feature is not compiled in.
pub fn ddl(database: Database, table: &str) -> Result<String> {
    validate_table(table)?;
    match database {
        #[cfg(feature = "sqlite")]
        Database::Sqlite => Ok(sqlite::ddl(table)),
        #[cfg(feature = "postgres")]
        Database::Postgres => Ok(postgres::ddl(table)),
        #[cfg(feature = "mysql")]
        Database::MySql => Ok(mysql::ddl(table)),
        #[allow(unreachable_patterns)]
        other => Err(backend::not_compiled_in(other)),
    }
}
