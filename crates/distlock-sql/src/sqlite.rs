//! SQLite: one database file shared by every process on the machine.
//!
//! Connections use WAL (readers never block the writer), `synchronous = FULL`
//! (a committed acquire survives power loss, so fencing tokens never repeat)
//! and a busy timeout equal to the configured operation timeout. Every
//! statement the backend issues is a single autocommit statement; SQLite
//! takes the write lock at the start of a writing statement and retries
//! through the busy handler, so no read-then-write transaction (and no
//! `SQLITE_BUSY` upgrade failure) can occur: `BEGIN IMMEDIATE` is never
//! needed. "Round trips" here are statements: there is no network.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Row, Sqlite};

use crate::config::SqlConfig;
use crate::dialect::{
    extended_of, fence, repeat_rows, AttemptConnection, ConnectError, Dialect, Extension, Holder,
    Statements, Take,
};

/// The locks table in a SQLite database.
pub(crate) struct SqliteDialect {
    pool: SqlitePool,
    sql: Arc<Statements>,
    in_memory: bool,
}

/// The statement files, in [`Statements::load`] order.
const TEXTS: [&str; 6] = [
    include_str!("sql/sqlite/create.sql"),
    include_str!("sql/sqlite/acquire.sql"),
    include_str!("sql/sqlite/holder.sql"),
    include_str!("sql/sqlite/extend.sql"),
    include_str!("sql/sqlite/extend_batch.sql"),
    include_str!("sql/sqlite/release.sql"),
];

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    Statements::load(TEXTS, table).create
}

impl SqliteDialect {
    /// Opens the file (creating it unless the URL gives a `mode`) and the
    /// pool, with one connection made at once.
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        let in_memory = config.in_memory();
        let mut options = SqliteConnectOptions::from_str(config.driver_url())
            .map_err(ConnectError::BadUrl)?
            .busy_timeout(config.timeout())
            .synchronous(SqliteSynchronous::Full);
        if !in_memory {
            if config.driver_param("mode").is_none() {
                options = options.create_if_missing(true);
            }
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(config.timeout())
            .connect_with(options)
            .await?;
        Ok(SqliteDialect {
            pool,
            sql: Arc::new(Statements::load(TEXTS, config.table())),
            in_memory,
        })
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    fn cross_process(&self) -> bool {
        !self.in_memory
    }

    async fn create_table(&self) -> Result<(), sqlx::Error> {
        sqlx::query(&self.sql.create).execute(&self.pool).await?;
        Ok(())
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(SqliteAttempt {
            conn: self.pool.acquire().await?,
            sql: self.sql.clone(),
        }))
    }

    async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        holder(&self.sql, &self.pool, key).await
    }

    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.sql.extend)
            .bind(key)
            .bind(owner)
            .bind(ttl_millis(ttl))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn extend_batch(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        let sql = repeat_rows(
            &self.sql.extend_batch,
            "(?, ?, ?)",
            ", (?, ?, ?)",
            batch.len(),
        );
        let mut query = sqlx::query(&sql);
        for e in batch {
            query = query.bind(&e.key).bind(&e.owner).bind(ttl_millis(e.ttl));
        }
        let rows = query.fetch_all(&self.pool).await?;
        let extended = rows
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("owner")?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        Ok(extended_of(batch, &extended))
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release(&self.sql, &self.pool, key, owner).await
    }

    fn sqlite_pool(&self) -> Option<&SqlitePool> {
        Some(&self.pool)
    }
}

/// One connection of the pool, for an acquire attempt.
struct SqliteAttempt {
    conn: PoolConnection<Sqlite>,
    sql: Arc<Statements>,
}

#[async_trait]
impl AttemptConnection for SqliteAttempt {
    /// One statement; a second ([`holder`](AttemptConnection::holder)) is
    /// needed for the holder's remaining ttl when the lock is held.
    async fn take(&mut self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        let row = sqlx::query(&self.sql.acquire)
            .bind(key)
            .bind(owner)
            .bind(ttl_millis(ttl))
            .fetch_optional(&mut *self.conn)
            .await?;
        match row {
            Some(row) => Ok(Take::Acquired(fence(row.try_get("fence")?))),
            None => Ok(Take::HeldAskRemaining),
        }
    }

    async fn holder(&mut self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        holder(&self.sql, &mut *self.conn, key).await
    }

    async fn release(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release(&self.sql, &mut *self.conn, key, owner).await
    }
}

/// Reads the row for `key`.
async fn holder<'c, E>(sql: &Statements, ex: E, key: &str) -> Result<Option<Holder>, sqlx::Error>
where
    E: Executor<'c, Database = Sqlite>,
{
    let row = sqlx::query(&sql.holder)
        .bind(key)
        .fetch_optional(ex)
        .await?;
    row.map(|row| {
        let remaining: Option<i64> = row.try_get("remaining_ms")?;
        Ok(Holder {
            owner: row.try_get("owner")?,
            fence: fence(row.try_get("fence")?),
            remaining: remaining.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    })
    .transpose()
}

/// Releases `key` when `owner` holds it unexpired.
async fn release<'c, E>(
    sql: &Statements,
    ex: E,
    key: &str,
    owner: &str,
) -> Result<bool, sqlx::Error>
where
    E: Executor<'c, Database = Sqlite>,
{
    let done = sqlx::query(&sql.release)
        .bind(key)
        .bind(owner)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The ttl in whole milliseconds (the resolution of the SQLite clock
/// expression), rounded up.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}
