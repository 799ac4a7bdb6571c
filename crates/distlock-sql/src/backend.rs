//! The backend value: connecting to the database (picking its dialect),
//! creating the table, and what the application may read back (the
//! configuration, the pool).

use std::fmt;
use std::sync::Arc;

use distlock_core::{LockError, Result};

use crate::config::{Database, SqlConfig};
use crate::dialect::{ConnectError, Dialect};
use crate::store::{driver_error, Store};

/// The SQL backend: a pool of connections to one locks table.
///
/// Cloning is cheap and shares the pool. It implements
/// [`LockBackend`](distlock_core::LockBackend), so `Arc::new(backend)` is an
/// `Arc<dyn DistributedLock>`.
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
            .field("table", &self.inner.config.table())
            .finish()
    }
}

impl SqlBackend {
    /// Connects with a URL (see the crate docs for the syntax), creating the
    /// locks table if it is missing.
    ///
    /// Round trips: the connection, then one to check that the table exists
    /// (three more to create it).
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
        if config.creates_table() {
            store.create_table().await?;
        }
        let backend = SqlBackend {
            inner: Arc::new(Inner { config, store }),
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

    /// The locks table, for the algorithm.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }
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
    Ok(Store::new(
        dialect,
        backend,
        config.table(),
        config.timeout(),
    ))
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
