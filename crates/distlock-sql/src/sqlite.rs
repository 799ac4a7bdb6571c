//! SQLite: one database file shared by every process on the machine.
//!
//! Connections use WAL (readers never block the writer), `synchronous = FULL`
//! (a committed acquire survives power loss, so fencing tokens never repeat)
//! and a busy handler that looks for the write lock every millisecond up to
//! the configured operation timeout ([`busy`]; a pool of the application's
//! own keeps the busy handling it was opened with). Every
//! statement of the mutex path is a single autocommit statement; SQLite
//! takes the write lock at the start of a writing statement and retries
//! through the busy handler. The grant of a reader or permit reads, then
//! writes: it is a `BEGIN IMMEDIATE` transaction, which takes the write
//! lock up front, so it reads the latest state, no read-then-write upgrade
//! (and no `SQLITE_BUSY` failure) can occur, and no other writer (in any
//! process) runs until it commits. Every statement reads the clock once it
//! holds the lock. "Round trips" here are statements: there is no network.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::Backoff;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::config::SqlConfig;
use crate::dialect::{extended_of, fence, statements, ConnectError, Extension};
use crate::dialect::{Holder, Queue, Take};
use crate::flavor::{json_rows, Batches, Cell, Flavor};
use crate::holds::Held;
use crate::statement::Answer::{One, Row as Fetched};
use crate::statement::Param::{self, Fence, Key, Kind, Label, Owner, Permits, Ticket, Ttl};
use crate::statement::{granted_channel, HolderSql, Outcome, QueueSql, Sql, Statement};
use crate::tables::Tables;

mod busy;

/// What is particular to SQLite.
pub(crate) struct SqliteFlavor {
    in_memory: bool,
    /// The locks table's name.
    table: String,
    /// Both tables' `CREATE TABLE IF NOT EXISTS`.
    create: String,
    /// Gives a locks table of an earlier version its label column.
    upgrade: String,
}

/// Whether the locks table has its label column. Returns one count.
const LABEL_EXISTS: &str = include_str!("sql/sqlite/label_exists.sql");

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    include_str!("sql/sqlite/create.sql").replace("{table}", table)
}

/// Opens the file (creating it unless the URL gives a `mode`) and the
/// pool, with one connection made at once.
pub(crate) async fn connect(config: &SqlConfig) -> Result<Tables<SqliteFlavor>, ConnectError> {
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
    let pool = open_pool(config, options).await?;
    Ok(on_pool(pool, config, in_memory))
}

/// Opens the pool, trying again while the file is busy: processes that
/// open a new file at the same moment race to turn it to WAL mode, and
/// SQLite answers the losers `SQLITE_BUSY` without waiting for them (the
/// busy timeout does not cover that switch). Bounded by the connect
/// timeout.
async fn open_pool(
    config: &SqlConfig,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    let deadline = Instant::now() + config.connect_timeout();
    let mut delays = Backoff::default().delays();
    let timeout = config.timeout();
    loop {
        let opened = SqlitePoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(config.timeout())
            .after_connect(move |conn, _| Box::pin(busy::install(conn, timeout)))
            .connect_with(options.clone())
            .await;
        match opened {
            Err(e) if busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(delays.next_delay()).await;
            }
            other => return other,
        }
    }
}

/// Whether SQLite answered `SQLITE_BUSY` (any of its extended codes): the
/// file's write lock stayed with another connection until the busy handler
/// gave up.
pub(crate) fn busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// The tables of `config` on `pool` (the one [`connect`] opened, or an
/// application's own), an in-memory database if `in_memory`.
pub(crate) fn on_pool(
    pool: SqlitePool,
    config: &SqlConfig,
    in_memory: bool,
) -> Tables<SqliteFlavor> {
    let table = config.table();
    let batches = Batches {
        exclusive: include_str!("sql/sqlite/extend_batch.sql").replace("{table}", table),
        holders: include_str!("sql/sqlite/holders/extend_batch.sql").replace("{table}", table),
    };
    let flavor = SqliteFlavor {
        in_memory,
        table: table.to_string(),
        create: ddl(table),
        upgrade: include_str!("sql/sqlite/upgrade.sql").replace("{table}", table),
    };
    Tables::new(pool, sql(table), batches, flavor)
}

/// The statements for `table`. Exclusive waiters queue.
fn sql(table: &str) -> Sql {
    let exec = |text: &str, params| Statement::new(text, table, params, One);
    let fetch = |text: &str, params| Statement::new(text, table, params, Fetched);
    let key_owner_fence: &[Param] = &[Key, Owner, Fence];
    Sql {
        table: table.to_string(),
        granted: granted_channel(table),
        acquire: fetch(
            include_str!("sql/sqlite/acquire.sql"),
            &[Key, Owner, Ttl, Label],
        ),
        holder: fetch(include_str!("sql/sqlite/holder.sql"), &[Key]),
        extend: exec(include_str!("sql/sqlite/extend.sql"), &[Key, Owner, Ttl]),
        // Waiters poll.
        keep: None,
        release: exec(include_str!("sql/sqlite/release.sql"), &[Key, Owner]),
        holders: HolderSql {
            begin: Some("BEGIN IMMEDIATE"),
            lock: exec(include_str!("sql/sqlite/holders/lock.sql"), &[Key]),
            expire: Some(exec(include_str!("sql/sqlite/holders/expire.sql"), &[Key])),
            read: fetch(include_str!("sql/sqlite/holders/read.sql"), &[Key]),
            grant: vec![
                exec(
                    include_str!("sql/sqlite/holders/insert.sql"),
                    &[Key, Owner, Kind, Permits, Ttl],
                ),
                fetch(include_str!("sql/sqlite/holders/grant.sql"), &[Key]),
            ],
            upgrade: vec![
                exec(
                    include_str!("sql/sqlite/holders/drop_own.sql"),
                    &[Key, Owner],
                ),
                fetch(
                    include_str!("sql/sqlite/holders/take_over.sql"),
                    &[Key, Owner, Ttl],
                ),
            ],
            intent: exec(
                include_str!("sql/sqlite/holders/intent.sql"),
                &[Key, Owner, Ttl],
            ),
            forget_intent: exec(
                include_str!("sql/sqlite/holders/forget_intent.sql"),
                &[Key, Owner],
            ),
            release: exec(
                include_str!("sql/sqlite/holders/release.sql"),
                &[Key, Owner],
            ),
            forget: None,
            undo_begin: Some("BEGIN IMMEDIATE"),
            undo: vec![
                exec(
                    include_str!("sql/sqlite/holders/downgrade.sql"),
                    key_owner_fence,
                ),
                exec(include_str!("sql/sqlite/holders/free.sql"), key_owner_fence),
            ],
        },
        queue: Some(QueueSql {
            waiting: fetch(include_str!("sql/sqlite/waiting.sql"), &[Key, Owner]),
            enqueue: exec(
                include_str!("sql/sqlite/holders/enqueue.sql"),
                &[Key, Owner, Ttl, Ticket],
            ),
        }),
    }
}

#[async_trait]
impl Flavor for SqliteFlavor {
    type Db = Sqlite;
    /// The statement (one JSON parameter).
    type Batch = String;

    /// Whole milliseconds, the resolution of the SQLite clock expression.
    fn ttl(ttl: Duration) -> i64 {
        ttl_millis(ttl)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// One row (the fence) when acquired, none when held: the holders'
    /// remaining time takes a second statement.
    fn take(outcome: Outcome<Sqlite>) -> Result<Take, sqlx::Error> {
        match outcome.row() {
            Some(row) => Ok(Take::Acquired(fence(row.try_get("fence")?))),
            None => Ok(Take::HeldAskRemaining),
        }
    }

    fn fence(outcome: Outcome<Sqlite>) -> Result<u64, sqlx::Error> {
        Ok(fence(outcome.one_row()?.try_get("fence")?))
    }

    fn holder(row: &SqliteRow) -> Result<Holder, sqlx::Error> {
        Ok(Holder {
            owner: row.try_get("owner")?,
            fence: fence(row.try_get("fence")?),
            label: row.try_get("label")?,
            remaining: millis(row.try_get("remaining_ms")?),
            shared: millis(row.try_get("shared_ms")?),
        })
    }

    fn queue(row: &SqliteRow) -> Result<Queue, sqlx::Error> {
        let ahead: i64 = row.try_get("ahead")?;
        Ok(Queue {
            ahead: u64::try_from(ahead).unwrap_or(0),
            mine: millis(row.try_get("queued_ms")?),
        })
    }

    fn held(row: &SqliteRow) -> Result<(Held, u64), sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let remaining = millis(Some(row.try_get("remaining_ms")?)).unwrap_or_default();
        let last_fence = fence(row.try_get("fence")?);
        let held = Held::from_row(
            kind.as_bytes(),
            row.try_get("permits")?,
            row.try_get("owner")?,
            remaining,
        )?;
        Ok((held, last_fence))
    }

    fn cross_process(&self) -> bool {
        !self.in_memory
    }

    /// One: SQLite runs one writer at a time, and nearly every statement
    /// here writes. This backend's statements then queue in order for their
    /// turn, where on several connections they would sleep and retry in
    /// SQLite's busy handler, which serves no one in particular (a
    /// statement could wait there for seconds while others get through).
    /// Other processes still meet them in the busy handler.
    fn slots(_size: usize) -> usize {
        1
    }

    /// Both tables' `CREATE TABLE IF NOT EXISTS`, in one call (a file made
    /// by an earlier version gains the holders table), then a look for the
    /// label column, and its addition to a locks table of an earlier
    /// version (another process adding it at the same moment is let be).
    async fn create_table(&self, pool: &SqlitePool) -> Result<(), sqlx::Error> {
        for statement in statements(&self.create) {
            sqlx::query(statement).execute(pool).await?;
        }
        let labelled: i64 = sqlx::query_scalar(LABEL_EXISTS)
            .bind(&self.table)
            .fetch_one(pool)
            .await?;
        if labelled > 0 {
            return Ok(());
        }
        match sqlx::query(&self.upgrade).execute(pool).await {
            Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// One statement whatever the batch's size: the batch goes as one
    /// JSON array of `[key, owner token, ttl in milliseconds]`, read with
    /// `json_each`, and the statement returns the rows it extended.
    async fn extend_batch(
        pool: &SqlitePool,
        statement: &String,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let rows = json_rows(batch.iter().map(|e| {
            [
                Cell::Text(&e.key),
                Cell::Text(&e.owner),
                Cell::Int(ttl_millis(e.ttl)),
            ]
        }));
        let extended = sqlx::query(statement)
            .bind(rows)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("owner")?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        Ok(extended_of(batch, &extended))
    }

    fn sqlite_pool(pool: &SqlitePool) -> Option<&SqlitePool> {
        Some(pool)
    }
}

/// A signed time left in milliseconds (negative once run out) as a duration.
fn millis(ms: Option<i64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The ttl in whole milliseconds (the resolution of the SQLite clock
/// expression), rounded up.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}
