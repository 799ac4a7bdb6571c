//! PostgreSQL: readers, semaphore permits and waiting writers' intents, in
//! the holders table.
//!
//! Every change to a name's readers and permits locks the name's row in the
//! locks table first. A grant is a transaction (READ COMMITTED) whose first
//! statement locks that row; each later statement takes a fresh snapshot,
//! so it sees every change committed before the lock was granted, and none
//! can come in until the transaction ends. Single statements (release,
//! renew) lock the row in their first CTE and judge it on its latest
//! version. The row's `shared_count` and `shared_until` are what the
//! exclusive acquire checks, so that it stays one statement on one row.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres, Row};

use crate::dialect::{extended_of, fence, remaining_from_micros, ttl_micros, Extension};
use crate::holds::{Decide, Decision, Held, NameState};

/// The holders statements, `{table}` replaced.
pub(crate) struct HolderSql {
    lock: String,
    read: String,
    grant: String,
    take_over: String,
    intent: String,
    forget_intent: String,
    release: String,
    extend_batch: String,
    downgrade: String,
}

impl HolderSql {
    /// Loads the statement files for `table`.
    pub fn load(table: &str) -> Self {
        let load = |text: &str| text.replace("{table}", table);
        HolderSql {
            lock: load(include_str!("../sql/postgres/holders/lock.sql")),
            read: load(include_str!("../sql/postgres/holders/read.sql")),
            grant: load(include_str!("../sql/postgres/holders/grant.sql")),
            take_over: load(include_str!("../sql/postgres/holders/take_over.sql")),
            intent: load(include_str!("../sql/postgres/holders/intent.sql")),
            forget_intent: load(include_str!("../sql/postgres/holders/forget_intent.sql")),
            release: load(include_str!("../sql/postgres/holders/release.sql")),
            extend_batch: load(include_str!("../sql/postgres/holders/extend_batch.sql")),
            downgrade: load(include_str!("../sql/postgres/holders/downgrade.sql")),
        }
    }
}

/// One grant transaction (see `AttemptConnection::transact`). Round trips:
/// `BEGIN`, lock the row, read (deleting the expired holders), the
/// decision's statement if any, `COMMIT`: 4, or 5 for a grant, an upgrade
/// or an intent.
pub(crate) async fn transact(
    sql: &HolderSql,
    conn: &mut PgConnection,
    key: &str,
    owner: &str,
    ttl: Duration,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query(&sql.lock).bind(key).execute(&mut *tx).await?;
    let state = read(sql, &mut *tx, key).await?;
    let fence = match decide(&state) {
        Decision::Grant(hold) => {
            let count = state.shared_rows().saturating_add(1);
            let row = sqlx::query(&sql.grant)
                .bind(key)
                .bind(owner)
                .bind(hold.kind())
                .bind(hold.permits())
                .bind(ttl_micros(ttl))
                .bind(count)
                .fetch_one(&mut *tx)
                .await?;
            Some(fence(row.try_get("fence")?))
        }
        Decision::Upgrade => {
            let row = sqlx::query(&sql.take_over)
                .bind(key)
                .bind(owner)
                .bind(ttl_micros(ttl))
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

/// Deletes the expired holders of `key` and reads every hold and intent
/// left.
async fn read<'c, E>(sql: &HolderSql, ex: E, key: &str) -> Result<NameState, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let rows = sqlx::query(&sql.read).bind(key).fetch_all(ex).await?;
    let mut last_fence = None;
    let held = rows
        .iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            last_fence = Some(fence(row.try_get("fence")?));
            Held::from_row(
                kind.as_bytes(),
                row.try_get("permits")?,
                row.try_get("owner")?,
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
    E: Executor<'c, Database = Postgres>,
{
    sqlx::query(&sql.intent)
        .bind(key)
        .bind(owner)
        .bind(ttl_micros(life))
        .execute(ex)
        .await?;
    Ok(())
}

/// Removes `owner`'s intent on `key`, notifying `channel` when there was
/// one (readers it held back may go).
pub(crate) async fn forget_intent<'c, E>(
    sql: &HolderSql,
    ex: E,
    key: &str,
    owner: &str,
    channel: &str,
) -> Result<(), sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    sqlx::query(&sql.forget_intent)
        .bind(key)
        .bind(owner)
        .bind(channel)
        .fetch_optional(ex)
        .await?;
    Ok(())
}

/// Releases the reader or permit holder `owner` of `key`, notifying
/// `channel`.
pub(crate) async fn release<'c, E>(
    sql: &HolderSql,
    ex: E,
    key: &str,
    owner: &str,
    channel: &str,
) -> Result<bool, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let row = sqlx::query(&sql.release)
        .bind(key)
        .bind(owner)
        .bind(channel)
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some())
}

/// Extends a batch of readers and permit holders in one statement (three
/// array parameters, whatever the batch's size).
pub(crate) async fn extend_batch(
    sql: &HolderSql,
    pool: &PgPool,
    batch: &[Extension],
) -> Result<Vec<bool>, sqlx::Error> {
    let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
    let owners: Vec<&str> = batch.iter().map(|e| e.owner.as_str()).collect();
    let ttls: Vec<i64> = batch.iter().map(|e| ttl_micros(e.ttl)).collect();
    let extended: Vec<(String, String)> = sqlx::query_as(&sql.extend_batch)
        .bind(keys)
        .bind(owners)
        .bind(ttls)
        .fetch_all(pool)
        .await?;
    Ok(extended_of(batch, &extended))
}

/// Undoes an upgrade of `owner` on `key` that took `fence` (one
/// statement, none without a `fence`), then forgets its intent (a second).
pub(crate) async fn downgrade(
    sql: &HolderSql,
    conn: &mut PgConnection,
    key: &str,
    owner: &str,
    fence: Option<u64>,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    let mut undone = false;
    if let Some(fence) = fence.and_then(|f| i64::try_from(f).ok()) {
        undone = sqlx::query(&sql.downgrade)
            .bind(key)
            .bind(owner)
            .bind(channel)
            .bind(fence)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
    }
    forget_intent(sql, &mut *conn, key, owner, channel).await?;
    Ok(undone)
}
