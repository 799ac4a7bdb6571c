//! Readers, semaphore permits and waiting writers' intents in the holders
//! table, on any database: the grant transaction, the release, and the
//! undoing of an upgrade, each as the sequence of statements its
//! [`HolderSql`](crate::statement::HolderSql) lists.
//!
//! Every change to a name's readers and permits locks the name's row in the
//! locks table first (the grant transaction with its first statement, the
//! single statements in their own way), so the database serialises them.
//! Where the database may roll one back as a deadlock's victim (MySQL),
//! each statement and transaction here is tried again
//! ([`Flavor::retry_after`]).

use std::time::Duration;

use sqlx::Connection;

use crate::flavor::{Conn, Flavor};
use crate::holds::{Decide, Decision, NameState};
use crate::run::{did, done, plain, retrying, rows, run, run_retrying, steps};
use crate::statement::{Sql, Values};

/// One grant transaction (see `AttemptConnection::transact`), tried again
/// after a deadlock. Round trips: `BEGIN`, lock the row, delete the
/// expired holders (where the read does not), read, the decision's
/// statements, `COMMIT`.
pub(crate) async fn transact<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    key: &str,
    owner: &str,
    ttl: Duration,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let values = &Values {
        ttl,
        ..sql.values(key, owner)
    };
    retrying::<F, _, _, _>((conn, decide), |(conn, decide)| async move {
        let outcome = transact_once::<F>(sql, conn, values, decide).await;
        ((conn, decide), outcome)
    })
    .await
}

/// One try of [`transact`].
async fn transact_once<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    values: &Values<'_>,
    decide: &mut Decide<'_>,
) -> Result<Option<u64>, sqlx::Error> {
    let h = &sql.holders;
    let mut tx = match h.begin {
        Some(begin) => conn.begin_with(begin).await?,
        None => conn.begin().await?,
    };
    run::<F>(&h.lock, values, &mut tx).await?;
    if let Some(expire) = &h.expire {
        run::<F>(expire, values, &mut tx).await?;
    }
    let state = read::<F>(sql, values, &mut tx).await?;
    let fence = match decide(&state) {
        Decision::Grant(hold) => {
            let values = Values {
                kind: hold.kind(),
                permits: hold.permits(),
                count: state.shared_rows().saturating_add(1),
                ..*values
            };
            Some(F::fence(steps::<F>(&h.grant, &values, &mut tx).await?)?)
        }
        Decision::Upgrade => Some(F::fence(steps::<F>(&h.upgrade, values, &mut tx).await?)?),
        Decision::Intent(life) => {
            let values = Values {
                ttl: life,
                ..*values
            };
            run::<F>(&h.intent, &values, &mut tx).await?;
            None
        }
        Decision::Nothing => None,
    };
    tx.commit().await?;
    Ok(fence)
}

/// Reads every hold and intent left on the name.
async fn read<F: Flavor>(
    sql: &Sql,
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<NameState, sqlx::Error> {
    let rows = rows::<F>(&sql.holders.read, values, conn).await?;
    let mut last_fence = None;
    let held = rows
        .iter()
        .map(|row| {
            let (held, fence) = F::held(row)?;
            last_fence = Some(fence);
            Ok(held)
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(NameState {
        held,
        fence: last_fence,
    })
}

/// Releases the reader or permit holder `owner` of `key`, each statement
/// tried again after a deadlock. Where the release only marks the row
/// released (MySQL), a second statement deletes it; once the first has
/// released the hold, the answer is yes: a row the second could not delete
/// is deleted by the name's next grant.
pub(crate) async fn release<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    key: &str,
    owner: &str,
) -> Result<bool, sqlx::Error> {
    let h = &sql.holders;
    let values = sql.values(key, owner);
    let released = run_retrying::<F>(&h.release, &values, conn).await?;
    if !did::<F>(&h.release, &released) {
        return Ok(false);
    }
    if let Some(forget) = &h.forget {
        if let Err(e) = run_retrying::<F>(forget, &values, conn).await {
            tracing::debug!(error = %e, "distlock.mysql.released_row_left");
        }
    }
    Ok(true)
}

/// Undoes an upgrade of `owner` on `key` that took `fence` (the undoing
/// statements run only with a `fence`), then forgets its intent, tried
/// again after a deadlock. Where that is several statements they make one
/// transaction, opened and ended with plain statements: this runs on a
/// connection whose earlier transaction was abandoned, where sqlx's
/// transaction bookkeeping may be off.
pub(crate) async fn downgrade<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    key: &str,
    owner: &str,
    fence: Option<u64>,
) -> Result<bool, sqlx::Error> {
    let values = &sql.values(key, owner);
    retrying::<F, _, _, _>(conn, |conn| async move {
        let outcome = downgrade_once::<F>(sql, conn, values, fence).await;
        (conn, outcome)
    })
    .await
}

/// One try of [`downgrade`].
async fn downgrade_once<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    values: &Values<'_>,
    fence: Option<u64>,
) -> Result<bool, sqlx::Error> {
    let h = &sql.holders;
    if let Some(begin) = h.undo_begin {
        plain::<F>(begin, conn).await?;
    }
    let undone = async {
        let mut undone = false;
        if let Some(fence) = fence.and_then(|f| i64::try_from(f).ok()) {
            let values = Values { fence, ..*values };
            for statement in &h.undo {
                undone = done::<F>(statement, &values, conn).await?;
            }
        }
        run::<F>(&h.forget_intent, values, conn).await?;
        Ok::<_, sqlx::Error>(undone)
    }
    .await;
    if h.undo_begin.is_some() {
        let end = if undone.is_ok() { "COMMIT" } else { "ROLLBACK" };
        plain::<F>(end, conn).await?;
    }
    undone
}
