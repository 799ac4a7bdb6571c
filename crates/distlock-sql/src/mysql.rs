//! MySQL and MariaDB: the locks table, polled by waiters.
//!
//! MariaDB has no `RETURNING` on `INSERT … ON DUPLICATE KEY UPDATE`, and
//! MySQL none on `UPDATE`/`DELETE`: the acquire statement and the grants of
//! readers and permits report their fencing tokens through the OK packet's
//! last-insert-id (`LAST_INSERT_ID(expr)`, see `sql/mysql/acquire.sql`):
//! one round trip when the lock is taken. When it is held, a second
//! statement reads the holders' remaining time for the waiting loop.
//!
//! Every change to a name's readers and permits locks the name's row in the
//! locks table first: a grant transaction with its first statement, the
//! single-statement release and renewal with `STRAIGHT_JOIN` (the locks
//! table first), so no two of them wait on each other in opposite orders.
//! The row's `shared_count` and `shared_until` are what the exclusive
//! acquire checks, so that it stays one statement on one row.
//!
//! InnoDB's gap locks can still make two of these wait on each other (a
//! writer's intent removed while a grant deletes and inserts holders rows
//! beside it; grants at once on names new to the table, whose deletions of
//! expired holders lock the same gap their insertions then wait for);
//! InnoDB then rolls one back with a deadlock error, which is meant to be
//! retried: every statement and transaction on the holders table is tried
//! again, up to [`DEADLOCK_RETRIES`] times, after a short jittered pause
//! (`run::retrying`) so that the same transactions do not meet again in
//! step.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlQueryResult, MySqlRow};
use sqlx::{ConnectOptions, Connection, MySql, Row};

use crate::config::SqlConfig;
use crate::dialect::{remaining_from_micros, statements, ttl_micros};
use crate::dialect::{ConnectError, Extension, Holder, Queue, Take};
use crate::flavor::{json_rows, Batches, Cell, Flavor, Query};
use crate::holds::Held;
use crate::run::retrying;
use crate::statement::Answer::{Any, One, Row as Fetched};
use crate::statement::Param::{self, Count, Fence, Key, Kind, Label, Owner, Permits, Ttl};
use crate::statement::{granted_channel, HolderSql, Outcome, QueueSql, Sql, Statement};
use crate::tables::Tables;

/// How many times a statement or transaction InnoDB rolled back as a
/// deadlock's victim is tried again.
const DEADLOCK_RETRIES: usize = 10;

/// The SQLSTATE of a deadlock victim ("try restarting transaction").
const DEADLOCK: &str = "40001";

/// How far the table is ready, looked up in the current database. Returns
/// three counts.
const TABLE_EXISTS: &str = include_str!("sql/mysql/table_exists.sql");

/// The SQLSTATE of "duplicate column name".
const DUPLICATE_COLUMN: &str = "42S21";

/// What is particular to MySQL: the table's creation and batches.
pub(crate) struct MySqlFlavor {
    table: String,
    /// Both tables' `CREATE TABLE IF NOT EXISTS`.
    create: String,
    /// Brings a table of an earlier version up to date (the reader
    /// columns).
    upgrade: String,
    /// Gives a locks table of an earlier version its label column.
    upgrade_label: String,
    /// Gives a holders table of an earlier version its label column.
    upgrade_holders_label: String,
}

/// A batched extension on MySQL: one `UPDATE` joined to the batch (one
/// JSON parameter read by `JSON_TABLE`), whose matched-rows count says
/// whether every lease was extended, and, when it falls short, one
/// statement that reads which leases are still held (MySQL cannot return
/// rows from an `UPDATE`).
pub(crate) struct Batch {
    /// The update.
    update: String,
    /// Which leases are held: their positions in the JSON array, from 1.
    held: String,
    /// Whether the update also matches one row per name (the readers'
    /// batch raises each name's `shared_until`, with each row's cover),
    /// and is tried again after a deadlock (it locks rows of both tables).
    per_name: bool,
}

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    include_str!("sql/mysql/create.sql").replace("{table}", table)
}

/// Opens one direct connection first: its error (refused, bad password) is
/// the one to report, where a pool would retry until its timeout and then
/// say only that it timed out. The pool connects lazily.
pub(crate) async fn connect(config: &SqlConfig) -> Result<Tables<MySqlFlavor>, ConnectError> {
    let options = config.mysql_connect_options()?;
    let probe = options.connect().await?;
    let _ = probe.close().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(config.pool_size())
        .acquire_timeout(config.timeout())
        .connect_lazy_with(options);
    Ok(on_pool(pool, config))
}

/// The tables of `config` on `pool` (the one [`connect`] opened, or an
/// application's own).
pub(crate) fn on_pool(pool: MySqlPool, config: &SqlConfig) -> Tables<MySqlFlavor> {
    let table = config.table();
    let load = |text: &str| text.replace("{table}", table);
    let batches = Batches {
        exclusive: Batch {
            update: load(include_str!("sql/mysql/extend_batch.sql")),
            held: load(include_str!("sql/mysql/held_batch.sql")),
            per_name: false,
        },
        holders: Batch {
            update: load(include_str!("sql/mysql/holders/extend_batch.sql")),
            held: load(include_str!("sql/mysql/holders/held_batch.sql")),
            per_name: true,
        },
    };
    let flavor = MySqlFlavor {
        table: table.to_string(),
        create: ddl(table),
        upgrade: load(include_str!("sql/mysql/upgrade.sql")),
        upgrade_label: load(include_str!("sql/mysql/upgrade_label.sql")),
        upgrade_holders_label: load(include_str!("sql/mysql/holders/upgrade_label.sql")),
    };
    Tables::new(pool, sql(table), batches, flavor)
}

/// The statements for `table`. The acquire, grant and upgrade statements
/// answer through the last-insert-id; the release of a reader or permit
/// matches two rows (the name's and the holder's) and only marks the
/// holder's row released, `forget` deletes it. Exclusive waiters queue.
fn sql(table: &str) -> Sql {
    let exec = |text: &str, params| Statement::new(text, table, params, One);
    let key_owner_fence: &[Param] = &[Key, Owner, Fence];
    let lock = || exec(include_str!("sql/mysql/holders/lock.sql"), &[Key]);
    let acquire: &[Param] = &[
        Key, Owner, Ttl, Label, // the insert branch
        Owner, Owner, // the queue check
        Owner, Owner, Owner, Owner, Owner, Ttl, Owner, Label, // the update branch
    ];
    Sql {
        table: table.to_string(),
        granted: granted_channel(table),
        acquire: exec(include_str!("sql/mysql/acquire.sql"), acquire),
        holder: Statement::new(
            include_str!("sql/mysql/holder.sql"),
            table,
            &[Key, Key],
            Fetched,
        ),
        extend: exec(include_str!("sql/mysql/extend.sql"), &[Ttl, Key, Owner]),
        // Waiters poll.
        keep: None,
        release: exec(include_str!("sql/mysql/release.sql"), &[Key, Owner]),
        holders: HolderSql {
            // The driver's `BEGIN`; REPEATABLE READ, the snapshot taken by the read.
            begin: None,
            lock: lock(),
            expire: Some(exec(include_str!("sql/mysql/holders/expire.sql"), &[Key])),
            read: Statement::new(
                include_str!("sql/mysql/holders/read.sql"),
                table,
                &[Key, Key],
                Fetched,
            ),
            grant: vec![
                exec(
                    include_str!("sql/mysql/holders/insert.sql"),
                    &[Key, Owner, Kind, Permits, Ttl],
                ),
                exec(
                    include_str!("sql/mysql/holders/grant.sql"),
                    &[Count, Ttl, Key],
                ),
            ],
            upgrade: vec![
                exec(
                    include_str!("sql/mysql/holders/drop_own.sql"),
                    &[Key, Owner],
                ),
                exec(
                    include_str!("sql/mysql/holders/take_over.sql"),
                    &[Owner, Ttl, Key],
                ),
            ],
            intent: exec(
                include_str!("sql/mysql/holders/intent.sql"),
                &[Key, Owner, Ttl, Ttl],
            ),
            forget_intent: exec(
                include_str!("sql/mysql/holders/forget_intent.sql"),
                &[Key, Owner],
            ),
            release: Statement::new(
                include_str!("sql/mysql/holders/release.sql"),
                table,
                &[Key, Owner],
                Any,
            ),
            forget: Some(exec(
                include_str!("sql/mysql/holders/forget.sql"),
                &[Key, Owner],
            )),
            undo_begin: Some("BEGIN"),
            undo: vec![
                lock(),
                exec(
                    include_str!("sql/mysql/holders/downgrade.sql"),
                    key_owner_fence,
                ),
                exec(
                    include_str!("sql/mysql/holders/downgrade_free.sql"),
                    key_owner_fence,
                ),
            ],
        },
        queue: Some(QueueSql {
            waiting: Statement::new(
                include_str!("sql/mysql/waiting.sql"),
                table,
                &[Owner, Owner, Owner, Key],
                Fetched,
            ),
            enqueue: exec(
                include_str!("sql/mysql/holders/enqueue.sql"),
                &[Key, Owner, Ttl, Ttl],
            ),
        }),
    }
}

#[async_trait]
impl Flavor for MySqlFlavor {
    type Db = MySql;
    type Batch = Batch;

    /// As bytes: keys and owner tokens are `VARBINARY`.
    fn bind_text<'q>(query: Query<'q, MySql>, text: &'q str) -> Query<'q, MySql> {
        query.bind(text.as_bytes())
    }

    /// As bytes (or NULL): labels are `VARBINARY`.
    fn bind_label<'q>(query: Query<'q, MySql>, label: Option<&'q str>) -> Query<'q, MySql> {
        query.bind(label.map(str::as_bytes))
    }

    /// The rows matched (sqlx asks for found rows).
    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    /// No rows: the last-insert-id is the new fence, 0 when held; the
    /// holders' remaining time takes a second statement.
    fn take(outcome: Outcome<MySql>) -> Result<Take, sqlx::Error> {
        match Self::fence(outcome)? {
            0 => Ok(Take::HeldAskRemaining),
            fence => Ok(Take::Acquired(fence)),
        }
    }

    /// The last-insert-id.
    fn fence(outcome: Outcome<MySql>) -> Result<u64, sqlx::Error> {
        match outcome {
            Outcome::Done(done) => Ok(done.last_insert_id()),
            Outcome::Row(_) => Err(sqlx::Error::RowNotFound),
        }
    }

    fn holder(row: &MySqlRow) -> Result<Holder, sqlx::Error> {
        let owner: Option<Vec<u8>> = row.try_get("owner")?;
        let label: Option<Vec<u8>> = row.try_get("label")?;
        Ok(Holder {
            owner: owner.map(text),
            fence: row.try_get("fence")?,
            label: label.map(text),
            remaining: remaining_from_micros(row.try_get("remaining_us")?),
            shared: remaining_from_micros(row.try_get("shared_us")?),
        })
    }

    fn queue(row: &MySqlRow) -> Result<Queue, sqlx::Error> {
        let ahead: i64 = row.try_get("ahead")?;
        Ok(Queue {
            ahead: u64::try_from(ahead).unwrap_or(0),
            mine: remaining_from_micros(row.try_get("queued_us")?),
        })
    }

    fn held(row: &MySqlRow) -> Result<(Held, u64), sqlx::Error> {
        let kind: Vec<u8> = row.try_get("kind")?;
        let permits: u64 = row.try_get("permits")?;
        let last_fence = row.try_get::<u64, _>("fence")?;
        let held = Held::from_row(
            &kind,
            i64::try_from(permits).unwrap_or(i64::MAX),
            text(row.try_get("owner")?),
            remaining_from_micros(row.try_get("remaining_us")?).unwrap_or_default(),
        )?;
        Ok((held, last_fence))
    }

    /// A deadlock's victim, at most [`DEADLOCK_RETRIES`] times.
    fn retry_after<T>(outcome: &Result<T, sqlx::Error>, tries: &mut usize) -> bool {
        let deadlock = matches!(outcome, Err(e) if sqlstate_is(e, DEADLOCK));
        if deadlock && *tries < DEADLOCK_RETRIES {
            *tries += 1;
            tracing::debug!(tries = *tries, "distlock.mysql.deadlock_retried");
            true
        } else {
            false
        }
    }

    fn cross_process(&self) -> bool {
        true
    }

    /// Round trips: one (the check) when both tables exist and are
    /// current; one more to create what is missing (both statements in one
    /// call), and one for each change a table of an earlier version needs
    /// (the reader columns, the label column of each table). Concurrent
    /// `CREATE TABLE IF NOT EXISTS` is safe in MySQL; a concurrent addition
    /// of the columns is recognised and let be.
    async fn create_table(&self, pool: &MySqlPool) -> Result<(), sqlx::Error> {
        let mut query = sqlx::query_as(TABLE_EXISTS);
        for _ in 0..5 {
            query = query.bind(&self.table);
        }
        let found: (i64, i64, i64, i64, i64) = query.fetch_one(pool).await?;
        let (locks, current, holders, labelled, holders_labelled) = found;
        if [locks, current, holders, labelled, holders_labelled]
            .iter()
            .all(|&n| n > 0)
        {
            return Ok(());
        }
        for statement in statements(&self.create) {
            sqlx::query(statement).execute(pool).await?;
        }
        let changes = [
            (locks > 0 && current == 0, &self.upgrade),
            (locks > 0 && labelled == 0, &self.upgrade_label),
            (
                holders > 0 && holders_labelled == 0,
                &self.upgrade_holders_label,
            ),
        ];
        for (needed, change) in changes {
            if needed {
                add_columns(pool, change).await?;
            }
        }
        Ok(())
    }

    /// One statement when every lease was extended (its matched-rows count
    /// says so: one row per lease, plus one per name for readers and
    /// permits), whatever the batch's size: the batch is one JSON
    /// parameter. When the count falls short, a second one reads which
    /// leases are still held. The readers' statement is tried again after
    /// a deadlock.
    async fn extend_batch(
        pool: &MySqlPool,
        b: &Batch,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let (rows, names) = batch_json(batch, b.per_name);
        let update = || sqlx::query(&b.update).bind(rows.as_str()).execute(pool);
        let matched = if b.per_name {
            retrying::<Self, _, _, _>((), |()| async { ((), update().await) }).await
        } else {
            update().await
        }?
        .rows_affected();
        let all = batch.len() + if b.per_name { names } else { 0 };
        if usize::try_from(matched).is_ok_and(|m| m == all) {
            return Ok(vec![true; batch.len()]);
        }
        held(&b.held, pool, &rows, batch.len()).await
    }

    fn mysql_pool(pool: &MySqlPool) -> Option<&MySqlPool> {
        Some(pool)
    }
}

/// The batch as the JSON array its statements read: `[key in hex, owner
/// token, ttl in microseconds]` per lease, and with `covers` the longest
/// ttl asked for the lease's key in the batch as a fourth value; and how
/// many distinct keys it has.
fn batch_json(batch: &[Extension], covers: bool) -> (String, usize) {
    let mut cover: BTreeMap<&str, Duration> = BTreeMap::new();
    for e in batch {
        let longest = cover.entry(e.key.as_str()).or_insert(e.ttl);
        *longest = (*longest).max(e.ttl);
    }
    let rows = batch.iter().map(|e| {
        let longest = cover.get(e.key.as_str()).copied().unwrap_or(e.ttl);
        let mut row = vec![
            Cell::Hex(e.key.as_bytes()),
            Cell::Text(&e.owner),
            Cell::Int(ttl_micros(e.ttl)),
        ];
        if covers {
            row.push(Cell::Int(ttl_micros(longest)));
        }
        row
    });
    (json_rows(rows), cover.len())
}

/// Which of the `n` leases of the JSON array `rows` their owners hold now,
/// by the statement `held` (one round trip).
async fn held(
    held: &str,
    pool: &MySqlPool,
    rows: &str,
    n: usize,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut answer = vec![false; n];
    for row in sqlx::query(held).bind(rows).fetch_all(pool).await? {
        let position: u64 = row.try_get("i")?;
        let index = usize::try_from(position)
            .ok()
            .and_then(|p| p.checked_sub(1));
        match index.and_then(|i| answer.get_mut(i)) {
            Some(slot) => *slot = true,
            None => {
                return Err(sqlx::Error::Decode(
                    format!("no lease at position {position} of the batch").into(),
                ))
            }
        }
    }
    Ok(answer)
}

/// Runs `change` (adding columns to a table of an earlier version); a
/// client that added them at the same moment is let be.
async fn add_columns(pool: &MySqlPool, change: &str) -> Result<(), sqlx::Error> {
    match sqlx::query(change).execute(pool).await {
        Err(e) if sqlstate_is(&e, DUPLICATE_COLUMN) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Whether `e` is a database error with SQLSTATE `code`.
fn sqlstate_is(e: &sqlx::Error, code: &str) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == code)
}

/// A `VARBINARY` column as text (keys and owner tokens are UTF-8).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
