//! SQLite: readers, semaphore permits and waiting writers' intents, in the
//! holders table.
//!
//! A grant is one `BEGIN IMMEDIATE` transaction: it takes SQLite's write
//! lock before its first statement, so it reads the latest state and no
//! other writer (in any process) runs until it commits. Every statement
//! reads the clock once it holds the lock.

use std::time::Duration;

use sqlx::{Connection, Executor, Row, Sqlite, SqliteConnection, SqlitePool};

use super::ttl_millis;
use crate::dialect::{extended_of, fence, repeat_rows, Extension};
use crate::holds::{Decide, Decision, Held, NameState};

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
    /// With a `{rows}` placeholder (see [`repeat_rows`]).
    extend_batch: String,
    downgrade: String,
    free: String,
}

impl HolderSql {
    /// Loads the statement files for `table`.
    pub fn load(table: &str) -> Self {
        let load = |text: &str| text.replace("{table}", table);
        HolderSql {
            lock: load(include_str!("../sql/sqlite/holders/lock.sql")),
            expire: load(include_str!("../sql/sqlite/holders/expire.sql")),
            read: load(include_str!("../sql/sqlite/holders/read.sql")),
            insert: load(include_str!("../sql/sqlite/holders/insert.sql")),
            grant: load(include_str!("../sql/sqlite/holders/grant.sql")),
            drop_own: load(include_str!("../sql/sqlite/holders/drop_own.sql")),
            take_over: load(include_str!("../sql/sqlite/holders/take_over.sql")),
            intent: load(include_str!("../sql/sqlite/holders/intent.sql")),
            forget_intent: load(include_str!("../sql/sqlite/holders/forget_intent.sql")),
            release: load(include_str!("../sql/sqlite/holders/release.sql")),
            extend_batch: load(include_str!("../sql/sqlite/holders/extend_batch.sql")),
            downgrade: load(include_str!("../sql/sqlite/holders/downgrade.sql")),
            free: load(include_str!("../sql/sqlite/holders/free.sql")),
        }
    }
}

/// One grant transaction (see `AttemptConnection::transact`): begin, make
/// sure the row exists, delete the expired holders, read the rest, carry
/// out the decision, commit. Statements: 5, plus 2 for a grant or upgrade,
/// 1 for an intent.
pub(crate) async fn transact(
    sql: &HolderSql,
    conn: &mut SqliteConnection,
    key: &str,
    owner: &str,
    ttl: Duration,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(&sql.lock).bind(key).execute(&mut *tx).await?;
    sqlx::query(&sql.expire).bind(key).execute(&mut *tx).await?;
    let state = read(sql, &mut *tx, key).await?;
    let fence = match decide(&state) {
        Decision::Grant(hold) => {
            sqlx::query(&sql.insert)
                .bind(key)
                .bind(owner)
                .bind(hold.kind())
                .bind(hold.permits())
                .bind(ttl_millis(ttl))
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(&sql.grant)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            Some(fence(row.try_get("fence")?))
        }
        Decision::Upgrade => {
            sqlx::query(&sql.drop_own)
                .bind(key)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(&sql.take_over)
                .bind(key)
                .bind(owner)
                .bind(ttl_millis(ttl))
                .fetch_one(&mut *tx)
                .await?;
            Some(fence(row.try_get("fence")?))
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
    E: Executor<'c, Database = Sqlite>,
{
    let rows = sqlx::query(&sql.read).bind(key).fetch_all(ex).await?;
    let mut last_fence = None;
    let held = rows
        .iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            let remaining: i64 = row.try_get("remaining_ms")?;
            last_fence = Some(fence(row.try_get("fence")?));
            Held::from_row(
                kind.as_bytes(),
                row.try_get("permits")?,
                row.try_get("owner")?,
                Duration::from_millis(u64::try_from(remaining).unwrap_or(0)),
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
    E: Executor<'c, Database = Sqlite>,
{
    sqlx::query(&sql.intent)
        .bind(key)
        .bind(owner)
        .bind(ttl_millis(life))
        .execute(ex)
        .await?;
    Ok(())
}

/// Removes `owner`'s intent on `key`.
pub(crate) async fn forget_intent<'c, E>(
    sql: &HolderSql,
    ex: E,
    key: &str,
    owner: &str,
) -> Result<(), sqlx::Error>
where
    E: Executor<'c, Database = Sqlite>,
{
    sqlx::query(&sql.forget_intent)
        .bind(key)
        .bind(owner)
        .execute(ex)
        .await?;
    Ok(())
}

/// Releases the reader or permit holder `owner` of `key`.
pub(crate) async fn release<'c, E>(
    sql: &HolderSql,
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

/// Extends a batch of readers and permit holders in one statement.
pub(crate) async fn extend_batch(
    sql: &HolderSql,
    pool: &SqlitePool,
    batch: &[Extension],
) -> Result<Vec<bool>, sqlx::Error> {
    let text = repeat_rows(&sql.extend_batch, "(?, ?, ?)", ", (?, ?, ?)", batch.len());
    let mut query = sqlx::query(&text);
    for e in batch {
        query = query.bind(&e.key).bind(&e.owner).bind(ttl_millis(e.ttl));
    }
    let rows = query.fetch_all(pool).await?;
    let extended = rows
        .iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("owner")?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
    Ok(extended_of(batch, &extended))
}

/// Undoes an upgrade of `owner` on `key` that took `fence` (one
/// transaction: copy the exclusive hold back into a reader row, give up the
/// exclusive hold, forget the intent; only the last without a `fence`).
/// Runs on a connection whose earlier transaction was abandoned, where
/// sqlx's transaction bookkeeping may be off: `BEGIN` and `COMMIT` are
/// plain statements here.
pub(crate) async fn downgrade(
    sql: &HolderSql,
    conn: &mut SqliteConnection,
    key: &str,
    owner: &str,
    fence: Option<u64>,
) -> Result<bool, sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let undone = async {
        let mut undone = false;
        if let Some(fence) = fence.and_then(|f| i64::try_from(f).ok()) {
            for statement in [&sql.downgrade, &sql.free] {
                let done = sqlx::query(statement)
                    .bind(key)
                    .bind(owner)
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
