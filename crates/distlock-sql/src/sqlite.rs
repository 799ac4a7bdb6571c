//! SQLite: one database file shared by every process on the machine.
//!
//! Connections use WAL (readers never block the writer), `synchronous = FULL`
//! (a committed acquire survives power loss, so fencing tokens never repeat)
//! and a busy timeout equal to the configured operation timeout. Every
//! statement the backend issues is a single autocommit statement; SQLite
//! takes the write lock at the start of a writing statement and retries
//! through the busy handler, so no read-then-write transaction (and no
//! `SQLITE_BUSY` upgrade failure) can occur: `BEGIN IMMEDIATE` is never
//! needed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use crate::config::SqlConfig;
use crate::store::{ConnectError, Holder, Statements, Take};

pub(crate) struct SqliteStore {
    pool: SqlitePool,
    sql: Statements,
    in_memory: bool,
}

/// The statement files, in [`Statements::load`] order.
const TEXTS: [&str; 5] = [
    include_str!("sql/sqlite/create.sql"),
    include_str!("sql/sqlite/acquire.sql"),
    include_str!("sql/sqlite/holder.sql"),
    include_str!("sql/sqlite/extend.sql"),
    include_str!("sql/sqlite/release.sql"),
];

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    Statements::load(TEXTS, table).create
}

impl SqliteStore {
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        let url = config.driver_url();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(ConnectError::BadUrl)?
            .busy_timeout(config.timeout_value())
            .synchronous(SqliteSynchronous::Full);
        if !in_memory {
            // `sqlite://path` creates the file unless the URL says `mode=ro`/`rw`.
            if !url.contains("mode=") {
                options = options.create_if_missing(true);
            }
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.pool_size_value())
            .acquire_timeout(config.timeout_value())
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            pool,
            sql: Statements::load(TEXTS, config.table_name()),
            in_memory,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn cross_process(&self) -> bool {
        !self.in_memory
    }

    pub async fn create_table(&self) -> Result<(), sqlx::Error> {
        sqlx::query(&self.sql.create).execute(&self.pool).await?;
        Ok(())
    }

    /// Round trips: one statement (in-process: no network).
    pub async fn take(&self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        let row = sqlx::query(&self.sql.acquire)
            .bind(key)
            .bind(owner)
            .bind(ttl_millis(ttl))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Take::Acquired(fence(row.try_get("fence")?))),
            None => Ok(Take::HeldAskRemaining),
        }
    }

    pub async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        let row = sqlx::query(&self.sql.holder)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let remaining: Option<i64> = row.try_get("remaining_ms")?;
            Ok(Holder {
                owner: row.try_get("owner")?,
                fence: fence(row.try_get("fence")?),
                remaining: remaining
                    .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            })
        })
        .transpose()
    }

    pub async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.sql.extend)
            .bind(key)
            .bind(owner)
            .bind(ttl_millis(ttl))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.sql.release)
            .bind(key)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn fence(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The ttl in whole milliseconds (the resolution of the SQLite clock
/// expression), rounded up.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}
