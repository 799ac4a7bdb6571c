//! MySQL and MariaDB: readers, semaphore permits and waiting writers'
//! intents, in the holders table.
//!
//! Every change to a name's readers and permits locks the name's row in the
//! locks table first: a grant transaction with its first statement, the
//! single-statement release and renewal with `STRAIGHT_JOIN` (the locks
//! table first), so no two of them wait on each other in opposite orders.
//! The row's `shared_count` and `shared_until` are what the exclusive
//! acquire checks, so that it stays one statement on one row. MySQL cannot
//! return rows from `UPDATE`/`DELETE`: fencing tokens travel through
//! `LAST_INSERT_ID(expr)`, as for the exclusive acquire.
//!
//! InnoDB's gap locks can still make two of these wait on each other (a
//! writer's intent removed while a grant deletes and inserts holders rows
//! beside it); InnoDB then rolls one back with a deadlock error, which is
//! meant to be retried: every statement and transaction here is tried
//! again, up to [`DEADLOCK_RETRIES`] times.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::{Connection, Executor, MySql, MySqlConnection, MySqlPool, Row};

use super::text;
use crate::dialect::{extended_of, remaining_from_micros, repeat_rows, ttl_micros, Extension};
use crate::holds::{Decide, Decision, Held, NameState};

/// How many times a statement or transaction InnoDB rolled back as a
/// deadlock's victim is tried again.
const DEADLOCK_RETRIES: usize = 3;

/// The SQLSTATE of a deadlock victim ("try restarting transaction").
const DEADLOCK: &str = "40001";

/// Whether `outcome` is a deadlock victim's that may be tried again after
/// `tries` retries.
fn retry_after<T>(outcome: &Result<T, sqlx::Error>, tries: &mut usize) -> bool {
    let deadlock = matches!(outcome, Err(e) if e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == DEADLOCK));
    if deadlock && *tries < DEADLOCK_RETRIES {
        *tries += 1;
        tracing::debug!(tries = *tries, "distlock.mysql.deadlock_retried");
        true
    } else {
        false
    }
}

/// The holders statements, `{table}` replaced.
pub(crate) struct HolderSql {
    lock: String,
    expire: String,
    read: String,
    insert: String,
    grant: String,
    drop_own: String,
    take_over: String,
    intent: String,
    forget_intent: String,
    release: String,
    forget: String,
    /// With a `{rows}` placeholder (see [`repeat_rows`]).
    extend_batch: String,
    /// With a `{pairs}` placeholder.
    held_batch: String,
    downgrade: String,
    downgrade_free: String,
}

impl HolderSql {
    /// Loads the statement files for `table`.
    pub fn load(table: &str) -> Self {
        let load = |text: &str| text.replace("{table}", table);
        HolderSql {
            lock: load(include_str!("../sql/mysql/holders/lock.sql")),
            expire: load(include_str!("../sql/mysql/holders/expire.sql")),
            read: load(include_str!("../sql/mysql/holders/read.sql")),
            insert: load(include_str!("../sql/mysql/holders/insert.sql")),
            grant: load(include_str!("../sql/mysql/holders/grant.sql")),
            drop_own: load(include_str!("../sql/mysql/holders/drop_own.sql")),
            take_over: load(include_str!("../sql/mysql/holders/take_over.sql")),
            intent: load(include_str!("../sql/mysql/holders/intent.sql")),
            forget_intent: load(include_str!("../sql/mysql/holders/forget_intent.sql")),
            release: load(include_str!("../sql/mysql/holders/release.sql")),
            forget: load(include_str!("../sql/mysql/holders/forget.sql")),
            extend_batch: load(include_str!("../sql/mysql/holders/extend_batch.sql")),
            held_batch: load(include_str!("../sql/mysql/holders/held_batch.sql")),
            downgrade: load(include_str!("../sql/mysql/holders/downgrade.sql")),
            downgrade_free: load(include_str!("../sql/mysql/holders/downgrade_free.sql")),
        }
    }
}

/// One grant transaction (see `AttemptConnection::transact`). Round trips:
/// `BEGIN`, lock the row, delete the expired holders, read, `COMMIT`: 5,
/// plus 2 for a grant or upgrade, 1 for an intent; all again when InnoDB
/// chose it as a deadlock's victim (it was rolled back).
pub(crate) async fn transact(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
    ttl: Duration,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let mut tries = 0;
    loop {
        let outcome = transact_once(sql, conn, key, owner, ttl, decide).await;
        if !retry_after(&outcome, &mut tries) {
            return outcome;
        }
    }
}

/// One try of [`transact`].
async fn transact_once(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
    ttl: Duration,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let (k, o) = (key.as_bytes(), owner.as_bytes());
    let mut tx = conn.begin().await?;
    sqlx::query(&sql.lock).bind(k).execute(&mut *tx).await?;
    sqlx::query(&sql.expire).bind(k).execute(&mut *tx).await?;
    let state = read(sql, &mut *tx, key).await?;
    let fence = match decide(&state) {
        Decision::Grant(hold) => {
            sqlx::query(&sql.insert)
                .bind(k)
                .bind(o)
                .bind(hold.kind().as_bytes())
                .bind(hold.permits())
                .bind(ttl_micros(ttl))
                .execute(&mut *tx)
                .await?;
            let count = state.shared_rows().saturating_add(1);
            let done = sqlx::query(&sql.grant)
                .bind(count)
                .bind(ttl_micros(ttl))
                .bind(k)
                .execute(&mut *tx)
                .await?;
            Some(done.last_insert_id())
        }
        Decision::Upgrade => {
            sqlx::query(&sql.drop_own)
                .bind(k)
                .bind(o)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(&sql.take_over)
                .bind(o)
                .bind(ttl_micros(ttl))
                .bind(k)
                .execute(&mut *tx)
                .await?;
            Some(done.last_insert_id())
        }
        Decision::Intent(life) => {
            record_intent(sql, &mut *tx, key, owner, life).await?;
            None
        }
        Decision::Nothing => None,
    };
    tx.commit().await?;
    Ok(fence)
}

/// Reads every hold and intent left on `key`.
async fn read<'c, E>(sql: &HolderSql, ex: E, key: &str) -> Result<NameState, sqlx::Error>
where
    E: Executor<'c, Database = MySql>,
{
    let rows = sqlx::query(&sql.read)
        .bind(key.as_bytes())
        .bind(key.as_bytes())
        .fetch_all(ex)
        .await?;
    let mut last_fence = None;
    let held = rows
        .iter()
        .map(|row| {
            let kind: Vec<u8> = row.try_get("kind")?;
            let permits: u64 = row.try_get("permits")?;
            last_fence = Some(row.try_get::<u64, _>("fence")?);
            Held::from_row(
                &kind,
                i64::try_from(permits).unwrap_or(i64::MAX),
                text(row.try_get("owner")?),
                remaining_from_micros(row.try_get("remaining_us")?).unwrap_or_default(),
            )
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(NameState {
        held,
        fence: last_fence,
    })
}

/// Records or refreshes `owner`'s intent on `key` for `life`.
pub(crate) async fn record_intent<'c, E>(
    sql: &HolderSql,
    ex: E,
    key: &str,
    owner: &str,
    life: Duration,
) -> Result<(), sqlx::Error>
where
    E: Executor<'c, Database = MySql>,
{
    sqlx::query(&sql.intent)
        .bind(key.as_bytes())
        .bind(owner.as_bytes())
        .bind(ttl_micros(life))
        .bind(ttl_micros(life))
        .execute(ex)
        .await?;
    Ok(())
}

/// [`record_intent`] on `conn`, tried again after a deadlock.
pub(crate) async fn record_intent_retrying(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
    life: Duration,
) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        let outcome = record_intent(sql, &mut *conn, key, owner, life).await;
        if !retry_after(&outcome, &mut tries) {
            return outcome;
        }
    }
}

/// [`forget_intent`] on the pool, tried again after a deadlock.
pub(crate) async fn forget_intent_retrying(
    sql: &HolderSql,
    pool: &MySqlPool,
    key: &str,
    owner: &str,
) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        let outcome = forget_intent(sql, pool, key, owner).await;
        if !retry_after(&outcome, &mut tries) {
            return outcome;
        }
    }
}

/// Removes `owner`'s intent on `key`.
pub(crate) async fn forget_intent<'c, E>(
    sql: &HolderSql,
    ex: E,
    key: &str,
    owner: &str,
) -> Result<(), sqlx::Error>
where
    E: Executor<'c, Database = MySql>,
{
    sqlx::query(&sql.forget_intent)
        .bind(key.as_bytes())
        .bind(owner.as_bytes())
        .execute(ex)
        .await?;
    Ok(())
}

/// Releases the reader or permit holder `owner` of `key`: one statement
/// over both tables, and a second that deletes the released row, each
/// tried again after a deadlock. Once the first has released the hold, the
/// answer is yes: a row the second could not delete is marked released,
/// and the name's next grant deletes it.
pub(crate) async fn release(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
) -> Result<bool, sqlx::Error> {
    let (k, o) = (key.as_bytes(), owner.as_bytes());
    let mut tries = 0;
    let released = loop {
        let outcome = sqlx::query(&sql.release)
            .bind(k)
            .bind(o)
            .execute(&mut *conn)
            .await;
        if !retry_after(&outcome, &mut tries) {
            break outcome?.rows_affected() > 0;
        }
    };
    if !released {
        return Ok(false);
    }
    let mut tries = 0;
    loop {
        let outcome = sqlx::query(&sql.forget)
            .bind(k)
            .bind(o)
            .execute(&mut *conn)
            .await;
        if !retry_after(&outcome, &mut tries) {
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "distlock.mysql.released_row_left");
            }
            return Ok(true);
        }
    }
}

/// Extends a batch of readers and permit holders: one statement when its
/// matched-rows count says every lease was extended (one row per lease
/// plus one per name), a second to read which are still held when not.
pub(crate) async fn extend_batch(
    sql: &HolderSql,
    pool: &MySqlPool,
    batch: &[Extension],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut cover: BTreeMap<&str, Duration> = BTreeMap::new();
    for e in batch {
        let longest = cover.entry(e.key.as_str()).or_insert(e.ttl);
        *longest = (*longest).max(e.ttl);
    }
    let text = repeat_rows(
        &sql.extend_batch,
        "SELECT ? AS name, ? AS owner, ? AS ttl_us, ? AS cover_us",
        " UNION ALL SELECT ?, ?, ?, ?",
        batch.len(),
    );
    let query = || {
        let mut query = sqlx::query(&text);
        for e in batch {
            let covered = cover.get(e.key.as_str()).copied().unwrap_or(e.ttl);
            query = query
                .bind(e.key.as_bytes())
                .bind(e.owner.as_bytes())
                .bind(ttl_micros(e.ttl))
                .bind(ttl_micros(covered));
        }
        query
    };
    let mut tries = 0;
    let matched = loop {
        let outcome = query().execute(pool).await;
        if !retry_after(&outcome, &mut tries) {
            break outcome?.rows_affected();
        }
    };
    let all = batch.len() + cover.len();
    if usize::try_from(matched).is_ok_and(|m| m == all) {
        return Ok(vec![true; batch.len()]);
    }
    held(sql, pool, batch).await
}

/// Which of `batch` their owners hold now (one round trip).
async fn held(
    sql: &HolderSql,
    pool: &MySqlPool,
    batch: &[Extension],
) -> Result<Vec<bool>, sqlx::Error> {
    let pairs = repeat_rows("{rows}", "(?, ?)", ", (?, ?)", batch.len());
    let text = sql.held_batch.replace("{pairs}", &pairs);
    let mut query = sqlx::query(&text);
    for e in batch {
        query = query.bind(e.key.as_bytes()).bind(e.owner.as_bytes());
    }
    let held = query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok((text_of(row, "name")?, text_of(row, "owner")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(extended_of(batch, &held))
}

/// A `VARBINARY` column of `row` as text.
fn text_of(row: &sqlx::mysql::MySqlRow, column: &str) -> Result<String, sqlx::Error> {
    Ok(text(row.try_get(column)?))
}

/// Undoes an upgrade of `owner` on `key` that took `fence`, in one
/// transaction: lock the row, copy the exclusive hold back into a reader
/// row, give up the exclusive hold (counting the reader), forget the intent
/// (only the last without a `fence`). Runs on a connection whose earlier
/// transaction was abandoned, where sqlx's transaction bookkeeping may be
/// off: `BEGIN` and `COMMIT` are plain statements here. Tried again after
/// a deadlock.
pub(crate) async fn downgrade(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
    fence: Option<u64>,
) -> Result<bool, sqlx::Error> {
    let mut tries = 0;
    loop {
        let outcome = downgrade_once(sql, conn, key, owner, fence).await;
        if !retry_after(&outcome, &mut tries) {
            return outcome;
        }
    }
}

/// One try of [`downgrade`].
async fn downgrade_once(
    sql: &HolderSql,
    conn: &mut MySqlConnection,
    key: &str,
    owner: &str,
    fence: Option<u64>,
) -> Result<bool, sqlx::Error> {
    let (k, o) = (key.as_bytes(), owner.as_bytes());
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let undone = async {
        let mut undone = false;
        if let Some(fence) = fence {
            sqlx::query(&sql.lock).bind(k).execute(&mut *conn).await?;
            for statement in [&sql.downgrade, &sql.downgrade_free] {
                let done = sqlx::query(statement)
                    .bind(k)
                    .bind(o)
                    .bind(fence)
                    .execute(&mut *conn)
                    .await?;
                undone = done.rows_affected() == 1;
            }
        }
        forget_intent(sql, &mut *conn, key, owner).await?;
        Ok::<_, sqlx::Error>(undone)
    }
    .await;
    let end = if undone.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::query(end).execute(&mut *conn).await?;
    undone
}
