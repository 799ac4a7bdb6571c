//! MySQL and MariaDB: the locks table, polled by waiters.
//!
//! MariaDB has no `RETURNING` on `INSERT … ON DUPLICATE KEY UPDATE`, so the
//! acquire statement reports its outcome through the OK packet's
//! last-insert-id (`LAST_INSERT_ID(expr)`, see `sql/mysql/acquire.sql`): one
//! round trip when the lock is taken. When it is held, a second statement
//! reads the holder's remaining ttl for the waiting loop.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::SqlConfig;
use crate::store::{remaining_from_micros, ttl_micros, ConnectError, Holder, Statements, Take};

pub(crate) struct MySqlStore {
    pool: MySqlPool,
    sql: Statements,
    table: String,
}

/// The statement files, in [`Statements::load`] order.
const TEXTS: [&str; 5] = [
    include_str!("sql/mysql/create.sql"),
    include_str!("sql/mysql/acquire.sql"),
    include_str!("sql/mysql/holder.sql"),
    include_str!("sql/mysql/extend.sql"),
    include_str!("sql/mysql/release.sql"),
];

/// Looks the table up in the current database. Returns one count.
const TABLE_EXISTS: &str = include_str!("sql/mysql/table_exists.sql");

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    Statements::load(TEXTS, table).create
}

impl MySqlStore {
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        let options =
            MySqlConnectOptions::from_str(config.driver_url()).map_err(ConnectError::BadUrl)?;
        // One direct connection first: its error (refused, bad password) is
        // the one to report, where a pool would retry until its timeout and
        // then say only that it timed out.
        let probe = options.connect().await?;
        let _ = probe.close().await;
        let pool = MySqlPoolOptions::new()
            .max_connections(config.pool_size_value())
            .acquire_timeout(config.timeout_value())
            .connect_lazy_with(options);
        Ok(MySqlStore {
            pool,
            sql: Statements::load(TEXTS, config.table_name()),
            table: config.table_name().to_string(),
        })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub fn cross_process(&self) -> bool {
        true
    }

    /// Round trips: one (the existence check) when the table exists, two when
    /// it does not. Concurrent `CREATE TABLE IF NOT EXISTS` is safe in MySQL.
    pub async fn create_table(&self) -> Result<(), sqlx::Error> {
        let exists: i64 = sqlx::query_scalar(TABLE_EXISTS)
            .bind(&self.table)
            .fetch_one(&self.pool)
            .await?;
        if exists > 0 {
            return Ok(());
        }
        sqlx::query(&self.sql.create).execute(&self.pool).await?;
        Ok(())
    }

    /// Round trips: one statement; the caller reads the holder's remaining
    /// ttl with a second one when the lock is held.
    pub async fn take(&self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        let ttl = ttl_micros(ttl);
        let done = sqlx::query(&self.sql.acquire)
            .bind(key.as_bytes())
            .bind(owner.as_bytes())
            .bind(ttl)
            .bind(owner.as_bytes())
            .bind(ttl)
            .execute(&self.pool)
            .await?;
        match done.last_insert_id() {
            0 => Ok(Take::HeldAskRemaining),
            fence => Ok(Take::Acquired(fence)),
        }
    }

    pub async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        let row = sqlx::query(&self.sql.holder)
            .bind(key.as_bytes())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let owner: Option<Vec<u8>> = row.try_get("owner")?;
            Ok(Holder {
                owner: owner.map(|o| String::from_utf8_lossy(&o).into_owned()),
                fence: row.try_get("fence")?,
                remaining: remaining_from_micros(row.try_get("remaining_us")?),
            })
        })
        .transpose()
    }

    pub async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.sql.extend)
            .bind(ttl_micros(ttl))
            .bind(key.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.sql.release)
            .bind(key.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
