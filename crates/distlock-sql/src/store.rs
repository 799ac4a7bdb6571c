//! The locks table, one implementation per database, behind one enum.
//!
//! Each database module loads its statements (the `.sql` files under
//! `src/sql/<database>/`), splices in the validated table name, and runs them
//! with bound parameters. This module only dispatches.

use std::time::Duration;

use crate::config::SqlConfig;

/// What one acquire statement found.
#[derive(Debug)]
pub(crate) enum Take {
    /// The lock was taken with this fencing token.
    Acquired(u64),
    /// Someone holds it; their remaining ttl on the database clock, if the
    /// statement could tell.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Held(Option<Duration>),
    /// Someone holds it; ask [`Store::holder`] for their remaining ttl.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    HeldAskRemaining,
}

/// A row of the locks table as seen now.
#[derive(Debug)]
pub(crate) struct Holder {
    /// The owner token, `None` when released.
    pub owner: Option<String>,
    /// The last fencing token issued.
    pub fence: u64,
    /// Time left on the database clock; `None` when released, zero when
    /// expired.
    pub remaining: Option<Duration>,
}

impl Holder {
    /// Whether the row is held right now.
    pub fn is_held(&self) -> bool {
        self.owner.is_some() && self.remaining.is_some_and(|r| !r.is_zero())
    }
}

/// Converts a signed remaining time (negative once expired) to a duration.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn remaining_from_micros(us: Option<i64>) -> Option<Duration> {
    us.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0)))
}

/// A ttl in whole microseconds, rounded up so the database never keeps the
/// lock for less than the lease reports.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn ttl_micros(ttl: Duration) -> i64 {
    let us = ttl.as_nanos().div_ceil(1000);
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// The statements for one database and table.
#[derive(Debug)]
pub(crate) struct Statements {
    pub create: String,
    pub acquire: String,
    pub holder: String,
    pub extend: String,
    pub release: String,
}

impl Statements {
    pub fn load(texts: [&str; 5], table: &str) -> Self {
        let [create, acquire, holder, extend, release] = texts.map(|t| t.replace("{table}", table));
        Statements {
            create,
            acquire,
            holder,
            extend,
            release,
        }
    }
}

/// The locks table in one of the compiled-in databases.
pub(crate) enum Store {
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::postgres::PgStore>),
    #[cfg(feature = "mysql")]
    MySql(crate::mysql::MySqlStore),
}

/// Runs the same method on whichever database the store holds.
macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Store::MySql($s) => $body,
        }
    };
}

impl Store {
    /// Opens the pool (one connection eagerly, so a bad address or password
    /// shows at once).
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        use crate::config::Database;
        match config.database() {
            #[cfg(feature = "sqlite")]
            Database::Sqlite => Ok(Store::Sqlite(
                crate::sqlite::SqliteStore::connect(config).await?,
            )),
            #[cfg(feature = "postgres")]
            Database::Postgres => Ok(Store::Postgres(Box::new(
                crate::postgres::PgStore::connect(config).await?,
            ))),
            #[cfg(feature = "mysql")]
            Database::MySql => Ok(Store::MySql(
                crate::mysql::MySqlStore::connect(config).await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(ConnectError::NotCompiledIn(other)),
        }
    }

    /// Creates the table unless it exists.
    pub async fn create_table(&self) -> Result<(), sqlx::Error> {
        dispatch!(self, s => s.create_table().await)
    }

    /// One acquire statement (one round trip).
    pub async fn take(&self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        dispatch!(self, s => s.take(key, owner, ttl).await)
    }

    /// Reads the row for `key` (one round trip).
    pub async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        dispatch!(self, s => s.holder(key).await)
    }

    /// Extends when `owner` holds `key`; false otherwise (one round trip).
    pub async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        dispatch!(self, s => s.extend(key, owner, ttl).await)
    }

    /// Releases when `owner` holds `key`; false otherwise (one round trip).
    pub async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        dispatch!(self, s => s.release(key, owner).await)
    }

    /// Whether several processes can share this store.
    pub fn cross_process(&self) -> bool {
        dispatch!(self, s => s.cross_process())
    }
}

/// Why a store could not be opened.
pub(crate) enum ConnectError {
    /// The URL did not parse as the driver's options.
    BadUrl(sqlx::Error),
    /// The database answered with an error or not at all.
    Db(sqlx::Error),
    /// The database's feature is not enabled.
    #[allow(dead_code)]
    NotCompiledIn(crate::config::Database),
}

impl From<sqlx::Error> for ConnectError {
    fn from(e: sqlx::Error) -> Self {
        ConnectError::Db(e)
    }
}
