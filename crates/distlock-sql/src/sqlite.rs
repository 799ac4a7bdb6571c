//! SQLite: one database file shared by every process on the machine.
//!
//! Connections use WAL (readers never block the writer), `synchronous = FULL`
//! (a committed acquire survives power loss, so fencing tokens never repeat)
//! and a busy timeout equal to the configured operation timeout. Every
//! statement of the mutex path is a single autocommit statement; SQLite
//! takes the write lock at the start of a writing statement and retries
//! through the busy handler. The grant of a reader or permit reads, then
//! writes: it is a `BEGIN IMMEDIATE` transaction, which takes the write
//! lock up front, so no read-then-write upgrade (and no `SQLITE_BUSY`
//! failure) can occur ([`holders`]). "Round trips" here are statements:
//! there is no network.

mod holders;

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
    extended_of, fence, repeat_rows, rolled_back, statements, AttemptConnection, ConnectError,
    Dialect, Extension, Holder, Statements, Take,
};
use crate::holds::Decide;
use holders::HolderSql;

/// The locks table in a SQLite database.
pub(crate) struct SqliteDialect {
    pool: SqlitePool,
    sql: Arc<Statements>,
    holders: Arc<HolderSql>,
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
            holders: Arc::new(HolderSql::load(config.table())),
            in_memory,
        })
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    fn cross_process(&self) -> bool {
        !self.in_memory
    }

    /// Both tables' `CREATE TABLE IF NOT EXISTS`, in one call (a file made
    /// by an earlier version gains the holders table).
    async fn create_table(&self) -> Result<(), sqlx::Error> {
        for statement in statements(&self.sql.create) {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(SqliteAttempt {
            conn: self.pool.acquire().await?,
            sql: self.sql.clone(),
            holders: self.holders.clone(),
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

    async fn extend_holders(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        holders::extend_batch(&self.holders, &self.pool, batch).await
    }

    async fn release_holder(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        holders::release(&self.holders, &self.pool, key, owner).await
    }

    async fn forget_intent(&self, key: &str, owner: &str) -> Result<(), sqlx::Error> {
        holders::forget_intent(&self.holders, &self.pool, key, owner).await
    }

    fn sqlite_pool(&self) -> Option<&SqlitePool> {
        Some(&self.pool)
    }
}

/// One connection of the pool, for an acquire attempt.
struct SqliteAttempt {
    conn: PoolConnection<Sqlite>,
    sql: Arc<Statements>,
    holders: Arc<HolderSql>,
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

    async fn transact(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        decide: &mut Decide<'_>,
    ) -> Result<Option<u64>, sqlx::Error> {
        holders::transact(&self.holders, &mut self.conn, key, owner, ttl, decide).await
    }

    async fn record_intent(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
    ) -> Result<(), sqlx::Error> {
        holders::record_intent(&self.holders, &mut *self.conn, key, owner, life).await
    }

    async fn release_holder(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        holders::release(&self.holders, &mut *self.conn, key, owner).await
    }

    async fn abandon_transaction(&mut self) -> Result<(), sqlx::Error> {
        self.conn.close_on_drop();
        rolled_back(sqlx::query("ROLLBACK").execute(&mut *self.conn).await)
    }

    async fn downgrade(
        &mut self,
        key: &str,
        owner: &str,
        fence: Option<u64>,
    ) -> Result<bool, sqlx::Error> {
        holders::downgrade(&self.holders, &mut self.conn, key, owner, fence).await
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
        Ok(Holder {
            owner: row.try_get("owner")?,
            fence: fence(row.try_get("fence")?),
            remaining: millis(row.try_get("remaining_ms")?),
            shared: millis(row.try_get("shared_ms")?),
        })
    })
    .transpose()
}

/// A signed time left in milliseconds (negative once run out) as a duration.
fn millis(ms: Option<i64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
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
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}
