//! PostgreSQL: the locks table plus LISTEN/NOTIFY for waiters.
//!
//! The release statement calls `pg_notify(<table name>, <key>)`; PostgreSQL
//! delivers it when the release commits. Each backend keeps one extra
//! connection (opened on the first acquire that waits) that `LISTEN`s on the
//! table's channel and fans notifications out to its waiters. Releases of
//! readers and permits, and a waiting writer giving up, notify the same way
//! ([`holders`]).

mod holders;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, Postgres, Row};
use tokio::sync::{broadcast, OnceCell};

use crate::config::SqlConfig;
use crate::dialect::{
    extended_of, fence, remaining_from_micros, rolled_back, statements, ttl_micros,
    AttemptConnection, ConnectError, Dialect, Extension, Holder, Statements, Take,
};
use crate::holds::Decide;
use crate::notify::{Subscription, Wake, BACKLOG};
use holders::HolderSql;

/// The locks table in a PostgreSQL database, and its release listener.
pub(crate) struct PostgresDialect {
    pool: PgPool,
    options: PgConnectOptions,
    timeout: Duration,
    table: Arc<Table>,
    notifier: OnceCell<Notifier>,
}

/// The statements, and the channel the release statements notify.
struct Table {
    sql: Statements,
    holders: HolderSql,
    /// Brings a table of an earlier version up to date.
    upgrade: String,
    /// The LISTEN channel: the table name.
    channel: String,
}

/// The statement files, in [`Statements::load`] order.
const TEXTS: [&str; 6] = [
    include_str!("sql/postgres/create.sql"),
    include_str!("sql/postgres/acquire.sql"),
    include_str!("sql/postgres/holder.sql"),
    include_str!("sql/postgres/extend.sql"),
    include_str!("sql/postgres/extend_batch.sql"),
    include_str!("sql/postgres/release.sql"),
];

/// Adds the reader columns to a table of an earlier version.
const UPGRADE: &str = include_str!("sql/postgres/upgrade.sql");

/// Whether the table is ready (current, with its holders table), looked up
/// in the search path. Returns one boolean.
const TABLE_EXISTS: &str = include_str!("sql/postgres/table_exists.sql");

/// Serialises concurrent `CREATE TABLE IF NOT EXISTS` of the same table
/// (which can otherwise fail on a catalog unique index). Returns nothing.
const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('distlock-create-table'))::text";

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    Statements::load(TEXTS, table).create
}

impl PostgresDialect {
    /// Opens one direct connection first: its error (refused, bad password)
    /// is the one to report, where a pool would retry until its timeout and
    /// then say only that it timed out. The pool connects lazily.
    pub async fn connect(config: &SqlConfig) -> Result<Self, ConnectError> {
        let options =
            PgConnectOptions::from_str(config.driver_url()).map_err(ConnectError::BadUrl)?;
        let probe = PgConnection::connect_with(&options).await?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(config.timeout())
            .connect_lazy_with(options.clone());
        Ok(PostgresDialect {
            pool,
            options,
            timeout: config.timeout(),
            table: Arc::new(Table {
                sql: Statements::load(TEXTS, config.table()),
                holders: HolderSql::load(config.table()),
                upgrade: UPGRADE.replace("{table}", config.table()),
                channel: config.table().to_string(),
            }),
            notifier: OnceCell::new(),
        })
    }
}

#[async_trait]
impl Dialect for PostgresDialect {
    fn cross_process(&self) -> bool {
        true
    }

    /// Round trips: one (the check) when both tables exist and are
    /// current, four more (lock, create both, add the reader columns to an
    /// older table, commit) when not.
    async fn create_table(&self) -> Result<(), sqlx::Error> {
        let ready: bool = sqlx::query_scalar(TABLE_EXISTS)
            .bind(&self.table.channel)
            .fetch_one(&self.pool)
            .await?;
        if ready {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(CREATE_LOCK).execute(&mut *tx).await?;
        for statement in statements(&self.table.sql.create) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(&self.table.upgrade).execute(&mut *tx).await?;
        tx.commit().await
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(PgAttempt {
            conn: self.pool.acquire().await?,
            table: self.table.clone(),
        }))
    }

    async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        holder(&self.table, &self.pool, key).await
    }

    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.table.sql.extend)
            .bind(key)
            .bind(owner)
            .bind(ttl_micros(ttl))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One statement, whatever the batch's size: the leases go as three
    /// arrays, and the statement returns the rows it extended.
    async fn extend_batch(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
        let owners: Vec<&str> = batch.iter().map(|e| e.owner.as_str()).collect();
        let ttls: Vec<i64> = batch.iter().map(|e| ttl_micros(e.ttl)).collect();
        let extended: Vec<(String, String)> = sqlx::query_as(&self.table.sql.extend_batch)
            .bind(keys)
            .bind(owners)
            .bind(ttls)
            .fetch_all(&self.pool)
            .await?;
        Ok(extended_of(batch, &extended))
    }

    /// One statement (the notification rides on its commit).
    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release(&self.table, &self.pool, key, owner).await
    }

    async fn extend_holders(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        holders::extend_batch(&self.table.holders, &self.pool, batch).await
    }

    /// One statement (the notification rides on its commit).
    async fn release_holder(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let t = &self.table;
        holders::release(&t.holders, &self.pool, key, owner, &t.channel).await
    }

    async fn forget_intent(&self, key: &str, owner: &str) -> Result<(), sqlx::Error> {
        let t = &self.table;
        holders::forget_intent(&t.holders, &self.pool, key, owner, &t.channel).await
    }

    /// Round trips: none once the listener runs; the first call opens its
    /// connection and issues `LISTEN`.
    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        let notifier = self
            .notifier
            .get_or_try_init(|| {
                Notifier::start(self.options.clone(), self.timeout, &self.table.channel)
            })
            .await?;
        Ok(Some(Subscription::new(&notifier.tx)))
    }

    fn postgres_pool(&self) -> Option<&PgPool> {
        Some(&self.pool)
    }
}

/// One connection of the pool, for an acquire attempt.
struct PgAttempt {
    conn: PoolConnection<Postgres>,
    table: Arc<Table>,
}

#[async_trait]
impl AttemptConnection for PgAttempt {
    /// One statement, whether acquired or held (it reports the holder's
    /// remaining ttl too).
    async fn take(&mut self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error> {
        let row = sqlx::query(&self.table.sql.acquire)
            .bind(key)
            .bind(owner)
            .bind(ttl_micros(ttl))
            .fetch_optional(&mut *self.conn)
            .await?;
        let Some(row) = row else {
            return Ok(Take::Held {
                remaining: None,
                shared: false,
            });
        };
        let acquired: bool = row.try_get("acquired")?;
        if acquired {
            return Ok(Take::Acquired(fence(row.try_get("fence")?)));
        }
        let exclusive = remaining_from_micros(row.try_get("remaining_us")?);
        let shared = remaining_from_micros(row.try_get("shared_us")?);
        Ok(Take::Held {
            remaining: match (exclusive, shared) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or_default().max(b.unwrap_or_default())),
            },
            shared: shared.is_some_and(|r| !r.is_zero()),
        })
    }

    async fn holder(&mut self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        holder(&self.table, &mut *self.conn, key).await
    }

    async fn release(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release(&self.table, &mut *self.conn, key, owner).await
    }

    async fn transact(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        decide: &mut Decide<'_>,
    ) -> Result<Option<u64>, sqlx::Error> {
        holders::transact(&self.table.holders, &mut self.conn, key, owner, ttl, decide).await
    }

    async fn record_intent(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
    ) -> Result<(), sqlx::Error> {
        holders::record_intent(&self.table.holders, &mut *self.conn, key, owner, life).await
    }

    async fn release_holder(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        let t = &self.table;
        holders::release(&t.holders, &mut *self.conn, key, owner, &t.channel).await
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
        let t = &self.table;
        holders::downgrade(&t.holders, &mut self.conn, key, owner, fence, &t.channel).await
    }
}

/// Reads the row for `key`.
async fn holder<'c, E>(table: &Table, ex: E, key: &str) -> Result<Option<Holder>, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let row = sqlx::query(&table.sql.holder)
        .bind(key)
        .fetch_optional(ex)
        .await?;
    row.map(|row| {
        Ok(Holder {
            owner: row.try_get("owner")?,
            fence: fence(row.try_get("fence")?),
            remaining: remaining_from_micros(row.try_get("remaining_us")?),
            shared: remaining_from_micros(row.try_get("shared_us")?),
        })
    })
    .transpose()
}

/// Releases `key` when `owner` holds it unexpired, notifying the waiters.
async fn release<'c, E>(table: &Table, ex: E, key: &str, owner: &str) -> Result<bool, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let row = sqlx::query(&table.sql.release)
        .bind(key)
        .bind(owner)
        .bind(&table.channel)
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some())
}

/// The listening connection's task and its fan-out channel; the task stops
/// when the dialect is dropped.
struct Notifier {
    tx: broadcast::Sender<Wake>,
    task: tokio::task::AbortHandle,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifier {
    async fn start(
        options: PgConnectOptions,
        timeout: Duration,
        channel: &str,
    ) -> Result<Notifier, sqlx::Error> {
        // Its own pool of one, so the listener never takes a connection from
        // the statements' pool; the pool only serves reconnects.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let listener = new_listener(&pool, channel).await?;
        let (tx, _) = broadcast::channel(BACKLOG);
        let task = tokio::spawn(listen(listener, pool, channel.to_string(), tx.clone()));
        Ok(Notifier {
            tx,
            task: task.abort_handle(),
        })
    }
}

/// A listener with `LISTEN` in effect on `channel`.
async fn new_listener(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Forwards notifications to the waiters. Whenever notifications may have
/// been missed (the connection dropped), every waiter is told to retry —
/// once when the drop is seen and again once `LISTEN` is back in effect, so
/// a release during the outage never leaves a waiter asleep until its bound.
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    tx: broadcast::Sender<Wake>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let _ = tx.send(Wake::Released(Arc::from(n.payload())));
            }
            // The connection dropped and was re-established, listening again.
            Ok(None) => {
                tracing::debug!("distlock.postgres.listener_reconnected");
                let _ = tx.send(Wake::Missed);
            }
            Err(e) => {
                tracing::debug!(error = %e, "distlock.postgres.listener_lost");
                let _ = tx.send(Wake::Missed);
                listener = relisten(&pool, &channel).await;
                tracing::debug!("distlock.postgres.listener_reconnected");
                let _ = tx.send(Wake::Missed);
            }
        }
    }
}

/// Reconnects the listener, retrying every 250 ms until `LISTEN` is back.
async fn relisten(pool: &PgPool, channel: &str) -> PgListener {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match new_listener(pool, channel).await {
            Ok(fresh) => return fresh,
            Err(e) => tracing::debug!(error = %e, "distlock.postgres.listener_reconnect_failed"),
        }
    }
}
