//! # distlock-sql
//!
//! A distlock backend over a locks table in SQLite, PostgreSQL or
//! MySQL/MariaDB, through [sqlx](https://docs.rs/sqlx): mutexes, reader-writer
//! locks (with upgrade) and semaphores. Each database is a Cargo feature
//! (`sqlite`, `postgres`, `mysql`) and a URL scheme:
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
//! let reader = client.read_lock("reports/daily").await?; // beside other readers
//! reader.release().await?;
//! let slots = client.semaphore("exports", 3)?; // at most 3 at once
//! let permit = slots.acquire().await?;
//! permit.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## The primitives
//!
//! Every primitive is a mode of one name (the core's
//! [`Mode`](distlock_core::Mode)), and every grant of every mode gets the
//! name's next fencing token. The mutex and the writer are the same hold.
//!
//! - **Mutex / writer** (`Mode::Exclusive`): the holder lives in the name's
//!   row of the locks table (`owner`, `expires_at`). One upsert takes it when
//!   the row is absent, or released or expired *and* no reader or permit
//!   holder lives, incrementing `fence` in the same statement. The readers'
//!   check is the one extra on this path, inside the same statement: on
//!   PostgreSQL and MySQL two columns of the same row (`shared_count`,
//!   `shared_until`, kept by the readers' grants, renewals and releases), on
//!   SQLite one primary-key probe of the holders table. Round trips: 1 when
//!   free; when held, 1 on PostgreSQL, 2 on MySQL and SQLite (the second
//!   reads the holders' remaining time).
//! - **Reader** (`Mode::Shared`) and **semaphore permit**
//!   (`Mode::Permit { limit }`): one row each in the holders table
//!   (`<table>_holders`), with its own expiry. A grant is one transaction:
//!   lock the name's row (creating it if missing), delete the name's expired
//!   holders, read the rest, decide with the core's one compatibility rule
//!   ([`Mode::fits`](distlock_core::Mode::fits): readers beside readers only;
//!   permits beside permits of the same count while fewer than that many; a
//!   permit of another count is [`PermitMismatch`](distlock_core::LockError::PermitMismatch),
//!   refused at once) and whether a writer waits (below), then insert the
//!   holder and bump the name's `fence`. Round trips: PostgreSQL 5 (`BEGIN`,
//!   lock, read with the expired rows deleted, insert-and-count, `COMMIT`), 4
//!   when it must wait; MySQL 7 (`BEGIN`, lock, delete expired, read, insert,
//!   count, `COMMIT`), 5 when it must wait; SQLite the same statements as
//!   MySQL, in one `BEGIN IMMEDIATE` transaction.
//! - **Upgrade** (reader to writer, in place; capability `upgrade`): one
//!   transaction per attempt that turns the owner's reader row into the
//!   exclusive hold of the name's row, with the next fencing token, only
//!   when that reader is the only holder; while others hold it, the attempt
//!   records the upgrade's intent instead (new readers then wait) and waits
//!   for them to leave. Round trips per attempt as for a reader's grant. An
//!   attempt dropped after its transaction committed is undone in the
//!   background (the exclusive hold becomes the reader again), conditioned
//!   on the fencing token it took, so a later upgrade is never undone.
//! - **Renew and release**, per owner, in every mode: one statement (MySQL
//!   releases a reader or permit with two: mark it and count it, then delete
//!   the row). `extend_many` renews a batch with one statement per kind of
//!   lease in it (the exclusive ones, the readers and permits), the two at
//!   once.
//!
//! ## Writers are not starved
//!
//! SQL keeps no queue of waiters. A writer that finds readers or permit
//! holders in its way records an *intent* in the holders table (kind `w`),
//! living one second on the database clock and refreshed by each of its
//! attempts (it polls, or waits for `NOTIFY`, at most 250 ms at a time while
//! it has one); while an intent lives, no new reader or permit is granted,
//! so the holders drain and the writer goes next. The intent is removed
//! when the writer is granted or gives up (one statement), or in the
//! background when its acquire is dropped; a writer that crashed holds
//! readers back for at most one second. Writers among themselves, and
//! readers among themselves, are served in no particular order (`fifo =
//! false`).
//!
//! ## What it guarantees
//!
//! - **Exclusion** while a lease is valid, by mode: a writer alone; readers
//!   together; at most `limit` permits. Every change to a name's holds locks
//!   (or, on SQLite, write-locks the file around) the name's row first, so
//!   the database serialises them, and each transaction reads the holders
//!   after taking that lock.
//! - **Liveness by ttl**: a holder that vanishes, in any mode, frees its
//!   hold once its ttl passes. Expiry is judged by the database's own clock
//!   inside each statement (`now()` on PostgreSQL, `UTC_TIMESTAMP(6)` on
//!   MySQL, `julianday('now')` in milliseconds on SQLite), never by the
//!   application's. The backend reports the instant it *sent* the statement
//!   or transaction that took or extended the hold; the lease's validity is
//!   computed from it by the one drift rule of the core
//!   ([`distlock_core::validity`]). Since the database's "now" is read after
//!   the request was sent, and the ttl is rounded up to the database's
//!   resolution, the row always outlives the validity the lease reports.
//!   Whatever judges a hold expired and acts on it makes that final: a grant
//!   deletes the expired holders it skipped, the writer's upsert clears the
//!   readers' columns, a reader's grant clears an expired writer — so a
//!   renewal whose clock was read earlier can never bring one back.
//! - **Fencing**: the name's row keeps a `fence` counter that every grant of
//!   every mode increments under the row's lock. Rows are never deleted, so
//!   tokens rise across holders and modes forever.
//! - **Ownership**: renew and release are conditioned on the 128-bit random
//!   owner token (drawn by the core for each acquire) and on the hold not
//!   having expired, so an expired lease is never brought back, even when
//!   nobody took the lock since; a lease exported with `Lease::export` can be
//!   renewed and released from another process (`lease_handoff`).
//! - **Cancellation**: dropping an `acquire` (or `upgrade`) future leaves
//!   nothing held: an attempt whose outcome is unknown is followed, in the
//!   background, by a release conditioned on that acquire's owner token (for
//!   an upgrade: by undoing it, so the reader stays as it was) through the
//!   core's [`CleanupOnDrop`](distlock_core::cleanup::CleanupOnDrop), issued
//!   on the attempt's own connection so that it runs after the attempt's
//!   statements even when the database is still running them. A grant
//!   transaction left open is rolled back first, and that connection leaves
//!   the pool. A writer's intent is removed in the background.
//!
//! It does not guarantee: safety across a jump of the database server's wall
//! clock (a clock stepped forward expires leases early, as with any
//! ttl-based lock; use fencing tokens for the resource); fairness among
//! writers or among readers; availability beyond the database's own (a
//! database that does not answer within the timeout gives `Unavailable`).
//!
//! ## Waiting
//!
//! - **PostgreSQL**: waiters are woken by `LISTEN`/`NOTIFY`. Every release
//!   (writer, reader, permit) and a writer's giving up call
//!   `pg_notify('<table>', <key>)`, delivered when they commit. Each backend
//!   opens one extra connection, on the first acquire that waits, that
//!   listens on the table's channel and fans notifications out to its
//!   waiters; a waiter subscribes before its first attempt, so a release in
//!   between is never missed. A hold abandoned without release sends
//!   nothing: waiters then retry when the remaining time of the holders in
//!   their way (reported by the attempt) runs out. If the listening
//!   connection drops, every waiter retries at once, and again once `LISTEN`
//!   is back in effect.
//! - **MySQL/MariaDB and SQLite** have no notification that a statement can
//!   send to another session, so waiters poll with jittered exponential
//!   backoff (the acquire options' [`Backoff`](distlock_core::Backoff)),
//!   never sleeping past the remaining time of the holders in their way as
//!   computed by the database.
//!
//! On MySQL, InnoDB may roll back one of two transactions that wait on each
//! other's gap locks (a deadlock, SQLSTATE 40001); the holders' statements
//! and transactions are then tried again, up to three times.
//!
//! ## Round trips per operation
//!
//! | operation | PostgreSQL | MySQL/MariaDB | SQLite |
//! |---|---|---|---|
//! | mutex/writer acquire, free | 1 | 1 | 1 statement |
//! | mutex/writer acquire, held (per attempt) | 1 | 2 | 2 statements |
//! | … with readers in the way: the intent | +1 per attempt, +1 at the end | +1 per attempt, +1 at the end | +1, +1 statement |
//! | reader or permit acquire (per attempt) | 5 (4 when it waits) | 7 (5 when it waits) | 7 (5) statements, one transaction |
//! | upgrade (per attempt) | 5 | 7 (6 when it waits) | 7 (6) statements, one transaction |
//! | extend, any mode | 1 | 1 | 1 statement |
//! | extend_many, per batch | 1 per kind of lease, at once | 1 per kind (2 when some lease was lost) | 1 statement per kind |
//! | release, mutex/writer | 1 (notification included) | 1 | 1 statement |
//! | release, reader or permit | 1 (notification included) | 2 | 1 statement |
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
//! On PostgreSQL an exclusive attempt on a visibly held lock is read-only (a
//! `NOT EXISTS` pre-check skips the upsert, which would otherwise lock the
//! holder's row and flush a commit). On MySQL the exclusive acquire reports
//! its outcome through `LAST_INSERT_ID(expr)` (MariaDB has no `RETURNING` on
//! `INSERT … ON DUPLICATE KEY UPDATE`), and so do the readers' grants; see
//! `src/sql/mysql/acquire.sql`.
//!
//! Connecting to PostgreSQL or MySQL opens one direct connection first, so
//! a refused connection or a wrong password is reported as such rather than
//! as a pool timeout, then checks that both tables exist and are current
//! (one round trip) and creates or updates what is missing, unless
//! `create_table=false`.
//!
//! ## The tables
//!
//! Default name `distlock_locks` (any identifier matching
//! `[A-Za-z_][A-Za-z0-9_]{0,54}` via `?table=`), and beside it
//! `distlock_locks_holders` (`<table>_holders`; the table name is kept
//! short enough for it to fit PostgreSQL's 63-byte identifiers). Lock names
//! are stored in a 255-byte key, bound as parameters (never spliced into
//! SQL) and compared case-sensitively on every database; names longer than
//! 255 bytes are shortened with
//! [`LockName::key_within`](distlock_core::LockName::key_within) (a prefix
//! plus 32 hex digits of the name's SHA-256). The DDL, which [`ddl`] also
//! returns for users who manage the schema themselves (`create_table=false`):
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
//! A locks table made by an earlier version (no readers) is brought up to
//! date on connect: SQLite gains the holders table; PostgreSQL and MySQL
//! also gain the `shared_count` and `shared_until` columns
//! (`src/sql/<database>/upgrade.sql`). With `create_table=false`, run the
//! holders table's `CREATE TABLE` above and that `ALTER TABLE` yourself.
//!
//! ## SQLite across processes
//!
//! The file is opened in WAL mode with `synchronous = FULL` (a committed
//! grant survives a power cut, so no fencing token is issued twice) and a
//! busy timeout equal to the operation timeout. Every statement of the
//! mutex path is one autocommit statement that takes SQLite's write lock up
//! front; the grants of readers and permits, which read before they write,
//! are `BEGIN IMMEDIATE` transactions, which take it up front too. So
//! concurrent processes queue on the busy handler instead of failing with
//! `SQLITE_BUSY`.
//!
//! ## Errors
//!
//! A malformed URL or table name is `InvalidConfig`; a database that does
//! not answer within the timeout (default 5 s, `timeout=`; connecting is
//! bounded by `connect_timeout`, by default the same) or refuses the
//! connection is `Unavailable`; an error reported by the database (for
//! example missing privileges on the table) is `Backend`, naming the
//! operation, the lock and the table, and carrying the database's message.
//! A permit request whose count differs from the name's holders' is
//! `PermitMismatch`. Passwords never appear in errors, logs or `Debug`
//! output.
//!
//! ## Code map
//!
//! `lock` is the entry point ([`LockBackend`](distlock_core::LockBackend),
//! each operation by mode); `acquire` is one acquire's attempts (the
//! writer's intent included), `upgrade` an upgrade's, both on `attempts`
//! (what the attempts of one request share: the waiting, the intent's
//! removal, an attempt's connection and its clean-up); `renew` the
//! renewals, `verdict` the decision on what a grant transaction read (the
//! core's rule plus the writer-waiting rule), `holds` what such a
//! transaction reads and decides. They use `store`, the tables with
//! timeouts and error context, which sees the database only through the
//! `dialect` trait. `tables` implements that trait once for every
//! database: it runs (`run`) the statements of a `statement::Sql`, and the
//! readers', permits' and intents' sequences of them (`grants`), on the
//! database's `flavor`; `sqlite`, `postgres` and `mysql` each give their
//! statements under `src/sql/` (what each binds, how each answers) and
//! implement `flavor::Flavor` (binding, rows, table creation, batches,
//! notifications). `backend` connects and picks the database; `notify`
//! fans PostgreSQL's notifications out to waiters; `config` reads the URL;
//! `key` turns a name into a row key.
//!
//! More detail, and measured overhead against the raw statements, in
//! `docs/backends/sql.md`.

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("distlock-sql needs at least one of the features `sqlite`, `postgres`, `mysql`");

mod acquire;
mod attempts;
mod backend;
mod config;
mod dialect;
mod flavor;
mod grants;
mod holds;
mod key;
mod lock;
#[cfg(feature = "mysql")]
mod mysql;
mod notify;
#[cfg(feature = "postgres")]
mod postgres;
mod renew;
mod run;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statement;
mod store;
mod tables;
mod upgrade;
mod verdict;

use distlock_core::Result;

pub use backend::SqlBackend;
pub use config::{validate_table, Database, SqlConfig, DEFAULT_TABLE, DEFAULT_TIMEOUT};
pub use key::MAX_KEY_BYTES;
pub use lock::MAX_BATCH;
/// The sqlx version this crate is built on (for the pool accessors).
pub use sqlx;

/// The `CREATE TABLE` statements for `database` and `table` (the locks
/// table and its holders table, `<table>_holders`, separated by `;`), as
/// the backend runs them when `create_table` is on.
///
/// ```
/// let sql = distlock_sql::ddl(distlock_sql::Database::Postgres, "app_locks")?;
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app_locks\""));
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app_locks_holders\""));
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
