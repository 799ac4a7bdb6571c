//! The backend value: connecting to the database (picking its dialect),
//! creating the table, and what the application may read back (the
//! configuration, the pool).

use std::fmt;
use std::sync::Arc;

use distlock_core::{LockError, Result};

use crate::config::{Database, SqlConfig, Strategy};
use crate::dialect::{ConnectError, Dialect};
use crate::session::SessionEngine;
use crate::store::{driver_error, Store};

/// The SQL backend: a pool of connections to one locks table and, under
/// the session strategy, the session connections that hold locks.
///
/// Cloning is cheap and shares the pool and the sessions. It implements
/// [`LockBackend`](distlock_core::LockBackend), so `Arc::new(backend)` is an
/// `Arc<dyn DistributedLock>`.
#[derive(Clone)]
pub struct SqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqlConfig,
    store: Store,
    /// The session strategy's engine, under `strategy=session`.
    sessions: Option<SessionEngine>,
    /// Broken on purpose (tests only).
    broken: Option<BrokenOnPurpose>,
}

/// A way to break the backend on purpose, for the tests that prove the
/// conformance suite would catch it. Never use it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenOnPurpose {
    /// Under the session strategy, a hold released before its
    /// lock-at-least-for minimum is kept by this process (which gives it
    /// back once the minimum has passed) rather than by the database: it
    /// ends early when the process exits.
    MinimumKeptInProcess,
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("database", &self.inner.config.database())
            .field("url", &self.inner.config.redacted_url())
            .field("table", &self.inner.config.table())
            .field("strategy", &self.inner.config.strategy())
            .finish()
    }
}

impl SqlBackend {
    /// Connects with a URL (see the crate docs for the syntax), creating the
    /// locks table if it is missing (and, under the session strategy, its
    /// fencing sequence on PostgreSQL).
    ///
    /// Round trips: the connection, then one to check that the table exists
    /// (three more to create it); under the session strategy on
    /// PostgreSQL, one to check the sequence (four more to create it).
    /// Session connections are opened on the first acquire that needs
    /// one.
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
        Self::from_config(SqlConfig::from_url(url)?).await
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
    pub async fn from_config(config: SqlConfig) -> Result<Self> {
        let store = open(&config).await?;
        Self::on_store(config, store).await
    }

    /// A backend on the application's PostgreSQL pool, so that locks and
    /// application data share it: the table, strategy, timeouts and
    /// sessions of `config` ([`SqlConfig::new`]`(Database::Postgres)`, or one
    /// read from a URL: its address and `pool_size` are not used), creating
    /// what is missing as [`connect`](SqlBackend::connect) does.
    ///
    /// The table strategy runs its statements on the pool (and opens one
    /// more connection with the pool's options to listen for releases,
    /// once a waiter needs it). The session strategy opens its session
    /// connections with the pool's connect options, beside the pool — at
    /// most [`sessions`](SqlConfig::sessions) of them, each kept while it
    /// holds locks — and runs its other statements (the readers' and
    /// permits' rows, `status`) on the pool.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` when `config` is for another database; otherwise as
    /// for [`connect`](SqlBackend::connect).
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](SqlBackend::connect).
    #[cfg(feature = "postgres")]
    pub async fn from_pg_pool(pool: sqlx::PgPool, config: SqlConfig) -> Result<Self> {
        expect_database(&config, Database::Postgres)?;
        let tables = crate::postgres::on_pool(pool, &config);
        let store = store_of(&config, Arc::new(tables));
        Self::on_store(config, store).await
    }

    /// A backend on the application's MySQL/MariaDB pool; as
    /// [`from_pg_pool`](SqlBackend::from_pg_pool) (with
    /// [`SqlConfig::new`]`(Database::MySql)`).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` when `config` is for another database; otherwise as
    /// for [`connect`](SqlBackend::connect).
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](SqlBackend::connect).
    #[cfg(feature = "mysql")]
    pub async fn from_mysql_pool(pool: sqlx::MySqlPool, config: SqlConfig) -> Result<Self> {
        expect_database(&config, Database::MySql)?;
        let tables = crate::mysql::on_pool(pool, &config);
        let store = store_of(&config, Arc::new(tables));
        Self::on_store(config, store).await
    }

    /// A backend on the application's SQLite pool (the table strategy; the
    /// pool's file is shared across processes, unless it is `:memory:` or
    /// `config` says [`in_memory`](SqlConfig::in_memory)); as
    /// [`from_pg_pool`](SqlBackend::from_pg_pool) (with
    /// [`SqlConfig::new`]`(Database::Sqlite)`). Open the pool with a busy
    /// timeout and WAL mode, as [`connect`](SqlBackend::connect) does, so
    /// that processes queue for the file rather than fail.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` when `config` is for another database; otherwise as
    /// for [`connect`](SqlBackend::connect).
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](SqlBackend::connect).
    #[cfg(feature = "sqlite")]
    pub async fn from_sqlite_pool(pool: sqlx::SqlitePool, config: SqlConfig) -> Result<Self> {
        expect_database(&config, Database::Sqlite)?;
        let in_memory = config.in_memory() || sqlite_in_memory(&pool);
        let tables = crate::sqlite::on_pool(pool, &config, in_memory);
        let store = store_of(&config, Arc::new(tables));
        Self::on_store(config, store).await
    }

    /// The backend on an opened store: creates what is missing, starts the
    /// session strategy's engine if configured.
    async fn on_store(config: SqlConfig, store: Store) -> Result<Self> {
        if config.creates_table() {
            store.create_table().await?;
        }
        let sessions = match config.strategy() {
            Strategy::Session => Some(SessionEngine::start(&config, &store).await?),
            _ => None,
        };
        let backend = SqlBackend {
            inner: Arc::new(Inner {
                config,
                store,
                sessions,
                broken: None,
            }),
        };
        tracing::debug!(backend = ?backend, "distlock.sql.connected");
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
        self.inner.store.dialect().sqlite_pool()
    }

    /// The PostgreSQL pool, when this backend is on PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        self.inner.store.dialect().postgres_pool()
    }

    /// The MySQL/MariaDB pool, when this backend is on MySQL/MariaDB.
    #[cfg(feature = "mysql")]
    pub fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        self.inner.store.dialect().mysql_pool()
    }

    /// How locks are held.
    pub fn strategy(&self) -> Strategy {
        self.inner.config.strategy()
    }

    /// Under the session strategy: how many session connections are open
    /// now, and how many locks they hold between them (`(0, 0)` under the
    /// table strategy). Each session connection is a connection to the
    /// database beside the pool's.
    pub fn session_census(&self) -> (usize, usize) {
        self.inner
            .sessions
            .as_ref()
            .map_or((0, 0), SessionEngine::census)
    }

    /// This backend broken on purpose in the way `how`, for the tests that
    /// prove the suite catches it; unchanged unless called on a backend
    /// just connected (not cloned). Never use it.
    #[doc(hidden)]
    pub fn broken_on_purpose(mut self, how: BrokenOnPurpose) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.broken = Some(how);
        }
        self
    }

    /// How this backend was broken on purpose, if it was.
    pub(crate) fn broken(&self) -> Option<BrokenOnPurpose> {
        self.inner.broken
    }

    /// The locks table, for the algorithm.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The session strategy's engine, under `strategy=session`.
    pub(crate) fn sessions(&self) -> Option<&SessionEngine> {
        self.inner.sessions.as_ref()
    }
}

/// Whether `pool` is on an in-memory SQLite database: `:memory:` (which
/// sqlx names `file:sqlx-in-memory-<n>`), or no file at all.
#[cfg(feature = "sqlite")]
fn sqlite_in_memory(pool: &sqlx::SqlitePool) -> bool {
    let options = pool.connect_options();
    let file = options.get_filename().to_string_lossy();
    file.is_empty() || file == ":memory:" || file.starts_with("file:sqlx-in-memory-")
}

/// Refuses `config` unless it is for `database`.
fn expect_database(config: &SqlConfig, database: Database) -> Result<()> {
    if config.database() == database {
        return Ok(());
    }
    Err(LockError::invalid_config(format!(
        "a {} pool was given with a configuration for {}",
        database.backend_name(),
        config.database().backend_name()
    )))
}

/// The store of `config` on `dialect`.
fn store_of(config: &SqlConfig, dialect: Arc<dyn Dialect>) -> Store {
    Store::new(
        dialect,
        config.database().backend_name(),
        config.table(),
        config.timeout(),
    )
    .with_waiter_timeout(config.place_life())
}

/// Opens the database's dialect within the connect timeout.
async fn open(config: &SqlConfig) -> Result<Store> {
    let backend = config.database().backend_name();
    let limit = config.connect_timeout();
    let connecting = || format!("connecting to {}", config.redacted_url());
    let dialect = match tokio::time::timeout(limit, open_dialect(config)).await {
        Err(_) => {
            return Err(LockError::unavailable(
                backend,
                format!("{}: no answer within {limit:?}", connecting()),
            ))
        }
        Ok(Err(ConnectError::BadUrl(e))) => {
            return Err(LockError::invalid_config(format!(
                "`{}`: {e}",
                config.redacted_url()
            )))
        }
        Ok(Err(ConnectError::Db(e))) => return Err(driver_error(backend, connecting(), limit, e)),
        Ok(Err(ConnectError::NotCompiledIn(database))) => return Err(not_compiled_in(database)),
        Ok(Ok(dialect)) => dialect,
    };
    Ok(store_of(config, dialect))
}

/// The dialect of the configured database (its pool open).
async fn open_dialect(config: &SqlConfig) -> Result<Arc<dyn Dialect>, ConnectError> {
    Ok(match config.database() {
        #[cfg(feature = "sqlite")]
        Database::Sqlite => Arc::new(crate::sqlite::connect(config).await?),
        #[cfg(feature = "postgres")]
        Database::Postgres => Arc::new(crate::postgres::connect(config).await?),
        #[cfg(feature = "mysql")]
        Database::MySql => Arc::new(crate::mysql::connect(config).await?),
        #[allow(unreachable_patterns)]
        other => return Err(ConnectError::NotCompiledIn(other)),
    })
}

/// The error for a database whose Cargo feature is off.
pub(crate) fn not_compiled_in(database: Database) -> LockError {
    LockError::invalid_config(format!(
        "the {} database is not compiled in: enable the `{}` feature",
        database.backend_name(),
        database.feature()
    ))
}
