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
//! Query parameters `table`, `create_table`, `pool_size` and `timeout_ms` are
//! read by distlock (see [`SqlConfig`]); any other parameter goes to the
//! driver (`sslmode=…` and so on; TLS needs the `tls-rustls` feature).
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
//!   application's. The lease's validity is measured locally on the
//!   monotonic clock: the instant the request was sent plus the ttl, less
//!   0.1 % for clock-rate drift. Since the database's "now" is read after the
//!   request was sent, the row always outlives the validity the lease
//!   reports.
//! - **Fencing**: the row keeps a `fence` counter that every acquire
//!   increments in the same statement. Release keeps the row (it clears the
//!   owner and the expiry), so tokens rise across holders forever.
//! - **Ownership**: extend and release are single `UPDATE`s conditioned on
//!   the 128-bit random owner token and on the lease not having expired; a
//!   lease exported with `Lease::export` can be extended and released from
//!   another process (`lease_handoff`).
//! - **Cancellation**: dropping an `acquire` future leaves nothing held: an
//!   in-flight acquire statement is followed, in the background, by a release
//!   conditioned on that attempt's owner token.
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
//! | release | 1 (notification included) | 1 | 1 statement |
//! | status | 1 | 1 | 1 statement |
//!
//! `extend_many` issues its extends concurrently over the pool (no batching).
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
//! not answer within the timeout (default 5 s, `timeout_ms=`) or refuses the
//! connection is `Unavailable`; an error reported by the database (for
//! example missing privileges on the table) is `Backend`, naming the
//! operation, the lock and the table, and carrying the database's message.
//! Passwords never appear in errors, logs or `Debug` output.
//!
//! More detail, and measured overhead against the raw statements, in
//! `docs/backends/sql.md`.

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("distlock-sql needs at least one of the features `sqlite`, `postgres`, `mysql`");

mod config;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::waiting::{poll_acquire, Attempt};
use distlock_core::{
    async_trait, validate_ttl, AcquireOptions, Capabilities, DistributedLock, FencingToken, Lease,
    LockError, LockName, LockStatus, OwnerToken, Result,
};

pub use config::{validate_table, Database, SqlConfig, DEFAULT_TABLE};
/// The sqlx version this crate is built on (for the pool accessors).
pub use sqlx;

use store::{ConnectError, Store, Take};

/// The longest key stored for a lock name, in bytes; longer names are
/// shortened with a hash suffix.
pub const MAX_KEY_BYTES: usize = 255;

/// The shortest attempt timeout when a waiting deadline is near: an attempt
/// always gets at least this long (capped by the configured timeout), so a
/// busy but healthy database is not reported as unavailable.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

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
        other => Err(not_compiled_in(other)),
    }
}

fn not_compiled_in(database: Database) -> LockError {
    LockError::invalid_config(format!(
        "the {} database is not compiled in: enable the `{}` feature",
        database.backend_name(),
        database.feature()
    ))
}

/// The SQL backend: a pool of connections to one locks table.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct SqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqlConfig,
    store: Store,
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("database", &self.inner.config.database())
            .field("url", &self.inner.config.redacted_url())
            .field("table", &self.inner.config.table_name())
            .finish()
    }
}

impl SqlBackend {
    /// Connects with a URL (see the crate docs for the syntax), creating the
    /// locks table if it is missing.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for a malformed URL; `Unavailable` when the database
    /// does not answer within the timeout; `Backend` when it refuses (bad
    /// password, no privilege to create the table…).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes whatever connections it opened; a table
    /// created in the meantime stays (it is meant to).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(SqlConfig::from_url(url)?).await
    }

    /// Connects with a prepared [`SqlConfig`].
    ///
    /// # Errors
    ///
    /// As for [`connect`](SqlBackend::connect).
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](SqlBackend::connect).
    pub async fn connect_with(config: SqlConfig) -> Result<Self> {
        let backend = config.database().backend_name();
        let limit = config.timeout_value();
        let connecting = format!("connecting to {}", config.redacted_url());
        let store = match tokio::time::timeout(limit, Store::connect(&config)).await {
            Err(_) => {
                return Err(LockError::unavailable(
                    backend,
                    format!("{connecting}: no answer within {limit:?}"),
                ))
            }
            Ok(Err(ConnectError::NotCompiledIn(db))) => return Err(not_compiled_in(db)),
            Ok(Err(ConnectError::BadUrl(e))) => {
                return Err(LockError::invalid_config(format!(
                    "`{}`: {e}",
                    config.redacted_url()
                )))
            }
            Ok(Err(ConnectError::Db(e))) => return Err(map_error(backend, connecting, limit, e)),
            Ok(Ok(store)) => store,
        };
        let backend = SqlBackend {
            inner: Arc::new(Inner { config, store }),
        };
        if backend.inner.config.creates_table() {
            let table = backend.inner.config.table_name().to_string();
            backend
                .run(
                    format!("creating table {table}"),
                    backend.inner.store.create_table(),
                )
                .await?;
        }
        tracing::debug!(backend = ?backend, "sql backend connected");
        Ok(backend)
    }

    /// The configuration in use.
    pub fn config(&self) -> &SqlConfig {
        &self.inner.config
    }

    /// The database this backend talks to.
    pub fn database(&self) -> Database {
        self.inner.config.database()
    }

    /// The SQLite pool, when this backend is on SQLite (to keep application
    /// data in the same file).
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.store {
            Store::Sqlite(s) => Some(s.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL pool, when this backend is on PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.inner.store {
            Store::Postgres(s) => Some(s.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The MySQL/MariaDB pool, when this backend is on MySQL/MariaDB.
    #[cfg(feature = "mysql")]
    pub fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        match &self.inner.store {
            Store::MySql(s) => Some(s.pool()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn key(name: &LockName) -> String {
        name.key_within(MAX_KEY_BYTES, |s| s.to_string())
    }

    /// Runs one database operation under the configured timeout, mapping
    /// its errors.
    async fn run<T>(
        &self,
        context: String,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        run_within(
            &self.inner.config,
            self.inner.config.timeout_value(),
            context,
            op,
        )
        .await
    }

    /// One acquire attempt.
    ///
    /// Round trips: one statement when the lock is taken (all databases) or
    /// held on PostgreSQL; two when held on MySQL and SQLite (the second
    /// reads the holder's remaining ttl).
    async fn attempt(
        &self,
        name: &LockName,
        key: &str,
        owner: OwnerToken,
        ttl: Duration,
        deadline: Option<Instant>,
    ) -> Result<Attempt> {
        let config = &self.inner.config;
        let start = Instant::now();
        let limit = match deadline {
            Some(d) => d
                .saturating_duration_since(start)
                .max(MIN_ATTEMPT)
                .min(config.timeout_value()),
            None => config.timeout_value(),
        };
        let owner_hex = owner.to_hex();
        // From here until the outcome is known, dropping this future (or an
        // error) may leave the lock taken under `owner`: the guard then
        // releases it in the background.
        let mut pending = ReleaseOnDrop::new(&self.inner, key, &owner_hex);
        let context = format!("acquiring `{name}` in table {}", config.table_name());
        let taken = run_within(
            config,
            limit,
            context.clone(),
            self.inner.store.take(key, &owner_hex, ttl),
        )
        .await?;
        pending.disarm();
        let remaining = match taken {
            Take::Acquired(fence) => {
                let lease = Lease::new(
                    self.backend_name(),
                    name.clone(),
                    owner,
                    FencingToken(fence),
                    ttl,
                    valid_until(start, ttl),
                );
                tracing::debug!(lock = %name, fence, "sql lock acquired");
                return Ok(Attempt::Acquired(lease));
            }
            Take::Held(remaining) => remaining,
            Take::HeldAskRemaining => {
                let holder =
                    run_within(config, limit, context, self.inner.store.holder(key)).await?;
                // A row released or expired since the acquire statement:
                // retry at once.
                Some(holder.and_then(|h| h.remaining).unwrap_or(Duration::ZERO))
            }
        };
        tracing::trace!(lock = %name, ?remaining, "sql lock held by another owner");
        Ok(Attempt::Held { remaining })
    }

    #[cfg(feature = "postgres")]
    async fn acquire_notified(
        &self,
        pg: &postgres::PgStore,
        name: &LockName,
        key: &str,
        owner: OwnerToken,
        options: &AcquireOptions,
        deadline: Option<Instant>,
    ) -> Result<Option<Lease>> {
        // Subscribe before the first attempt, so a release that commits
        // between a failed attempt and the wait is not missed.
        let context = format!(
            "listening for releases on table {}",
            self.inner.config.table_name()
        );
        let subscription = self.run(context, pg.subscribe()).await?;
        let subscription = Arc::new(tokio::sync::Mutex::new(subscription));
        let key_owned: Arc<str> = Arc::from(key);
        distlock_core::waiting::notified_acquire(
            options,
            || self.attempt(name, key, owner, options.ttl, deadline),
            move |bound| {
                let (subscription, key) = (subscription.clone(), key_owned.clone());
                async move { subscription.lock().await.wait(&key, bound).await }
            },
        )
        .await
    }
}

/// Start of the request + ttl, less 0.1 % for clock-rate drift between this
/// machine and the database server.
fn valid_until(start: Instant, ttl: Duration) -> Instant {
    start + ttl - ttl / 1000
}

async fn run_within<T>(
    config: &SqlConfig,
    limit: Duration,
    context: String,
    op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    let backend = config.database().backend_name();
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_error(backend, context, config.timeout_value(), e)),
        Err(_) => Err(LockError::unavailable(
            backend,
            format!("{context}: no answer within {limit:?}"),
        )),
    }
}

/// Connection trouble is `Unavailable`; what the database itself reports is
/// `Backend` with the driver error as its source. Neither carries the URL
/// (driver errors never include it).
fn map_error(backend: &'static str, context: String, limit: Duration, e: sqlx::Error) -> LockError {
    match e {
        sqlx::Error::PoolTimedOut => LockError::unavailable(
            backend,
            format!("{context}: no database connection within {limit:?}"),
        ),
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            LockError::unavailable(backend, format!("{context}: {e}"))
        }
        // The driver's message goes into the context too: many callers
        // print only the top-level error.
        other => LockError::backend(backend, format!("{context}: {other}"), other),
    }
}

/// Releases an acquire attempt's owner token in the background unless
/// disarmed: what makes a dropped acquire leave nothing held.
struct ReleaseOnDrop {
    armed: Option<(Arc<Inner>, String, String)>,
}

impl ReleaseOnDrop {
    fn new(inner: &Arc<Inner>, key: &str, owner: &str) -> Self {
        ReleaseOnDrop {
            armed: Some((inner.clone(), key.to_string(), owner.to_string())),
        }
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some((inner, key, owner)) = self.armed.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let limit = inner.config.timeout_value();
            // One round trip; a no-op unless the attempt had taken the lock.
            match tokio::time::timeout(limit, inner.store.release(&key, &owner)).await {
                Ok(Ok(true)) => tracing::debug!("released a lock taken by a cancelled acquire"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "cleanup release after a cancelled acquire failed")
                }
                Err(_) => tracing::debug!("cleanup release after a cancelled acquire timed out"),
            }
        });
    }
}

#[async_trait]
impl DistributedLock for SqlBackend {
    fn backend_name(&self) -> &'static str {
        self.inner.config.database().backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(false)
            .wait_notification(self.database() == Database::Postgres)
            .session_liveness(false)
            .ttl_expiry(true)
            .lease_handoff(true)
            .cross_process(self.inner.store.cross_process())
            .batch_extend(false)
            .min_ttl(Duration::from_millis(1))
            .max_ttl(Duration::from_secs(7 * 24 * 3600))
            .build()
    }

    /// Round trips per attempt: see [`SqlBackend`]'s crate docs (1, or 2 when
    /// held on MySQL/SQLite); waiting on PostgreSQL costs no round trips.
    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        options.validate(&self.capabilities())?;
        let key = Self::key(name);
        // One owner token for every attempt of this acquire.
        let owner = OwnerToken::random();
        let deadline = options.wait.deadline(Instant::now());
        tracing::debug!(lock = %name, ttl = ?options.ttl, wait = ?options.wait, "sql acquire");
        #[cfg(feature = "postgres")]
        #[allow(irrefutable_let_patterns)]
        if let Store::Postgres(pg) = &self.inner.store {
            if options.wait != distlock_core::Wait::NoWait {
                return self
                    .acquire_notified(pg, name, &key, owner, options, deadline)
                    .await;
            }
        }
        poll_acquire(options, || {
            self.attempt(name, &key, owner, options.ttl, deadline)
        })
        .await
    }

    /// One round trip.
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        lease.check_backend(self.backend_name())?;
        validate_ttl(ttl, &self.capabilities())?;
        let name = lease.name();
        let start = Instant::now();
        let context = format!(
            "extending `{name}` in table {}",
            self.inner.config.table_name()
        );
        let extended = self
            .run(
                context,
                self.inner
                    .store
                    .extend(&Self::key(name), &lease.owner().to_hex(), ttl),
            )
            .await?;
        if extended {
            tracing::debug!(lock = %name, ?ttl, "sql lock extended");
            Ok(lease.renewed(ttl, valid_until(start, ttl)))
        } else {
            tracing::warn!(lock = %name, "sql lock lost: extend found it released, expired or taken");
            Err(LockError::not_held(name.as_str()))
        }
    }

    /// One round trip (on PostgreSQL the waiters' notification rides on it).
    async fn release(&self, lease: &Lease) -> Result<()> {
        lease.check_backend(self.backend_name())?;
        let name = lease.name();
        let context = format!(
            "releasing `{name}` in table {}",
            self.inner.config.table_name()
        );
        let released = self
            .run(
                context,
                self.inner
                    .store
                    .release(&Self::key(name), &lease.owner().to_hex()),
            )
            .await?;
        if released {
            tracing::debug!(lock = %name, "sql lock released");
            Ok(())
        } else {
            tracing::debug!(lock = %name, "sql release found the lock not held");
            Err(LockError::not_held(name.as_str()))
        }
    }

    /// One round trip.
    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        let context = format!(
            "reading `{name}` in table {}",
            self.inner.config.table_name()
        );
        let holder = self
            .run(context, self.inner.store.holder(&Self::key(name)))
            .await?;
        Ok(match holder {
            None => LockStatus::new(false, None, None, None),
            Some(h) => {
                let held = h.is_held();
                LockStatus::new(
                    held,
                    (h.fence > 0).then_some(FencingToken(h.fence)),
                    if held { h.remaining } else { None },
                    None,
                )
            }
        })
    }
}
