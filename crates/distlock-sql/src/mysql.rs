//! MySQL and MariaDB: the locks table, polled by waiters.
//!
//! MariaDB has no `RETURNING` on `INSERT … ON DUPLICATE KEY UPDATE`, so the
//! acquire statement reports its outcome through the OK packet's
//! last-insert-id (`LAST_INSERT_ID(expr)`, see `sql/mysql/acquire.sql`): one
//! round trip when the lock is taken. When it is held, a second statement
//! reads the holder's remaining ttl for the waiting loop. Readers and
//! permits: [`holders`].

mod holders;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, Executor, MySql, Row};

use crate::config::SqlConfig;
use crate::dialect::{
    extended_of, remaining_from_micros, repeat_rows, rolled_back, statements, ttl_micros,
    AttemptConnection, ConnectError, Dialect, Extension, Holder, Statements, Take,
};
use crate::holds::Decide;
use holders::HolderSql;

/// The locks table in a MySQL or MariaDB database.
pub(crate) struct MySqlDialect {
    pool: MySqlPool,
    sql: Arc<Statements>,
    holders: Arc<HolderSql>,
    /// Which leases of a batch are still held (see `held_batch.sql`).
    held_batch: String,
    /// Brings a table of an earlier version up to date.
    upgrade: String,
    table: String,
}

/// The statement files, in [`Statements::load`] order.
const TEXTS: [&str; 6] = [
    include_str!("sql/mysql/create.sql"),
    include_str!("sql/mysql/acquire.sql"),
    include_str!("sql/mysql/holder.sql"),
    include_str!("sql/mysql/extend.sql"),
    include_str!("sql/mysql/extend_batch.sql"),
    include_str!("sql/mysql/release.sql"),
];

/// Which leases of a batch are held now. `{pairs}` is `(?, ?)` per lease.
const HELD_BATCH: &str = include_str!("sql/mysql/held_batch.sql");

/// How far the table is ready, looked up in the current database. Returns
/// three counts.
const TABLE_EXISTS: &str = include_str!("sql/mysql/table_exists.sql");

/// Adds the reader columns to a table of an earlier version.
const UPGRADE: &str = include_str!("sql/mysql/upgrade.sql");

/// The SQLSTATE of "duplicate column name".
const DUPLICATE_COLUMN: &str = "42S21";

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    Statements::load(TEXTS, table).create
}

impl MySqlDialect {
    /// Opens one direct connection first: its error (refused, bad password)
    /// is the one to report, where a pool would retry until its timeout and
    /// then say only that it timed out. The pool connects lazily.
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        let options =
            MySqlConnectOptions::from_str(config.driver_url()).map_err(ConnectError::BadUrl)?;
        let probe = options.connect().await?;
        let _ = probe.close().await;
        let pool = MySqlPoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(config.timeout())
            .connect_lazy_with(options);
        Ok(MySqlDialect {
            pool,
            sql: Arc::new(Statements::load(TEXTS, config.table())),
            holders: Arc::new(HolderSql::load(config.table())),
            held_batch: HELD_BATCH.replace("{table}", config.table()),
            upgrade: UPGRADE.replace("{table}", config.table()),
            table: config.table().to_string(),
        })
    }

    /// Which of `batch` their owners hold now (one round trip).
    async fn held(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        let sql = self.held_batch.replace(
            "{pairs}",
            &repeat_rows("{rows}", "(?, ?)", ", (?, ?)", batch.len()),
        );
        let mut query = sqlx::query(&sql);
        for e in batch {
            query = query.bind(e.key.as_bytes()).bind(e.owner.as_bytes());
        }
        let held = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((text(row.try_get("name")?), text(row.try_get("owner")?))))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(extended_of(batch, &held))
    }
}

#[async_trait]
impl Dialect for MySqlDialect {
    fn cross_process(&self) -> bool {
        true
    }

    /// Round trips: one (the check) when both tables exist and are
    /// current; one more to create what is missing (both statements in one
    /// call), and one to add the reader columns to a table of an earlier
    /// version. Concurrent `CREATE TABLE IF NOT EXISTS` is safe in MySQL;
    /// a concurrent addition of the columns is recognised and let be.
    async fn create_table(&self) -> Result<(), sqlx::Error> {
        let (locks, current, holders): (i64, i64, i64) = sqlx::query_as(TABLE_EXISTS)
            .bind(&self.table)
            .bind(&self.table)
            .bind(&self.table)
            .fetch_one(&self.pool)
            .await?;
        if locks > 0 && current > 0 && holders > 0 {
            return Ok(());
        }
        for statement in statements(&self.sql.create) {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        if locks > 0 && current == 0 {
            match sqlx::query(&self.upgrade).execute(&self.pool).await {
                Err(e) if duplicate_column(&e) => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(MySqlAttempt {
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
            .bind(ttl_micros(ttl))
            .bind(key.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One statement when every lease was extended (its matched-rows count
    /// says so); when the count falls short, a second one reads which
    /// leases are still held, since MySQL cannot return rows from an
    /// `UPDATE`.
    async fn extend_batch(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        let sql = repeat_rows(
            &self.sql.extend_batch,
            "SELECT ? AS name, ? AS owner, ? AS ttl_us",
            " UNION ALL SELECT ?, ?, ?",
            batch.len(),
        );
        let mut query = sqlx::query(&sql);
        for e in batch {
            query = query
                .bind(e.key.as_bytes())
                .bind(e.owner.as_bytes())
                .bind(ttl_micros(e.ttl));
        }
        let matched = query.execute(&self.pool).await?.rows_affected();
        if usize::try_from(matched).is_ok_and(|m| m == batch.len()) {
            return Ok(vec![true; batch.len()]);
        }
        self.held(batch).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release(&self.sql, &self.pool, key, owner).await
    }

    /// One statement when every lease was extended; two when the count
    /// falls short (see `holders::extend_batch`).
    async fn extend_holders(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        holders::extend_batch(&self.holders, &self.pool, batch).await
    }

    async fn release_holder(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        holders::release(&self.holders, &mut conn, key, owner).await
    }

    async fn forget_intent(&self, key: &str, owner: &str) -> Result<(), sqlx::Error> {
        holders::forget_intent_retrying(&self.holders, &self.pool, key, owner).await
    }

    fn mysql_pool(&self) -> Option<&MySqlPool> {
        Some(&self.pool)
    }
}

/// One connection of the pool, for an acquire attempt.
struct MySqlAttempt {
    conn: PoolConnection<MySql>,
    sql: Arc<Statements>,
    holders: Arc<HolderSql>,
}

#[async_trait]
impl AttemptConnection for MySqlAttempt {
    /// One statement; a second ([`holder`](AttemptConnection::holder)) is
    /// needed for the holder's remaining ttl when the lock is held.
    async fn take(&mut self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        let ttl = ttl_micros(ttl);
        let done = sqlx::query(&self.sql.acquire)
            .bind(key.as_bytes())
            .bind(owner.as_bytes())
            .bind(ttl)
            .bind(owner.as_bytes())
            .bind(ttl)
            .execute(&mut *self.conn)
            .await?;
        match done.last_insert_id() {
            0 => Ok(Take::HeldAskRemaining),
            fence => Ok(Take::Acquired(fence)),
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
        holders::record_intent_retrying(&self.holders, &mut self.conn, key, owner, life).await
    }

    async fn release_holder(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        holders::release(&self.holders, &mut self.conn, key, owner).await
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
    E: Executor<'c, Database = MySql>,
{
    let row = sqlx::query(&sql.holder)
        .bind(key.as_bytes())
        .bind(key.as_bytes())
        .fetch_optional(ex)
        .await?;
    row.map(|row| {
        let owner: Option<Vec<u8>> = row.try_get("owner")?;
        Ok(Holder {
            owner: owner.map(text),
            fence: row.try_get("fence")?,
            remaining: remaining_from_micros(row.try_get("remaining_us")?),
            shared: remaining_from_micros(row.try_get("shared_us")?),
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
    E: Executor<'c, Database = MySql>,
{
    let done = sqlx::query(&sql.release)
        .bind(key.as_bytes())
        .bind(owner.as_bytes())
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `e` is MySQL's "duplicate column name".
fn duplicate_column(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == DUPLICATE_COLUMN)
}

/// A `VARBINARY` column as text (keys and owner tokens are UTF-8).
pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
