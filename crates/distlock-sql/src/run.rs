//! Running a [`Statement`] on any database: bind its values in its order,
//! execute or fetch it as its [`Answer`] says, and read that answer.

use std::future::Future;
use std::time::Duration;

use distlock_core::Backoff;

use crate::flavor::{Conn, Flavor, Query, Runner};
use crate::statement::{Answer, Outcome, Param, Statement, Value, Values};

/// `query` with `params` of `values` bound, in order.
fn bind<'q, F: Flavor>(
    mut query: Query<'q, F::Db>,
    params: &[Param],
    values: &Values<'q>,
) -> Query<'q, F::Db> {
    for &param in params {
        query = match values.value(param) {
            Value::Text(text) => F::bind_text(query, text),
            Value::Label(label) => F::bind_label(query, label),
            Value::Time(time) => F::Db::bind_int(query, F::ttl(time)),
            Value::Int(n) => F::Db::bind_int(query, n),
        };
    }
    query
}

/// `statement` with `values` bound.
fn bound<'q, F: Flavor>(statement: &'q Statement, values: &Values<'q>) -> Query<'q, F::Db> {
    bind::<F>(sqlx::query(&statement.text), statement.params, values)
}

/// Runs `statement` on `conn`: executed, or fetched (at most one row), as
/// its answer says. One round trip.
pub(crate) async fn run<F: Flavor>(
    statement: &Statement,
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<Outcome<F::Db>, sqlx::Error> {
    let query = bound::<F>(statement, values);
    Ok(match statement.answer {
        Answer::Row => Outcome::Row(F::Db::fetch_optional(query, conn).await?),
        Answer::One | Answer::Any => Outcome::Done(F::Db::execute(query, conn).await?),
    })
}

/// Runs `statement` on `conn`; whether it did its work. One round trip.
pub(crate) async fn done<F: Flavor>(
    statement: &Statement,
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<bool, sqlx::Error> {
    let outcome = run::<F>(statement, values, conn).await?;
    Ok(did::<F>(statement, &outcome))
}

/// Whether `statement` did its work, by its `outcome`, as its answer says.
pub(crate) fn did<F: Flavor>(statement: &Statement, outcome: &Outcome<F::Db>) -> bool {
    match outcome {
        Outcome::Row(row) => row.is_some(),
        Outcome::Done(result) if statement.answer == Answer::Any => F::rows_affected(result) > 0,
        Outcome::Done(result) => F::rows_affected(result) == 1,
    }
}

/// Runs each of `statements` on `conn`, in order: the last one's outcome.
/// One round trip each.
pub(crate) async fn steps<F: Flavor>(
    statements: &[Statement],
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<Outcome<F::Db>, sqlx::Error> {
    let mut last = Outcome::Done(Default::default());
    for statement in statements {
        last = run::<F>(statement, values, conn).await?;
    }
    Ok(last)
}

/// Fetches every row of `statement` on `conn`. One round trip.
pub(crate) async fn rows<F: Flavor>(
    statement: &Statement,
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<Vec<<F::Db as sqlx::Database>::Row>, sqlx::Error> {
    F::Db::fetch_all(bound::<F>(statement, values), conn).await
}

/// Runs a plain statement (`BEGIN`, `COMMIT`…) on `conn`.
pub(crate) async fn plain<F: Flavor>(
    text: &str,
    conn: &mut Conn<F::Db>,
) -> Result<(), sqlx::Error> {
    F::Db::execute(sqlx::query(text), conn).await?;
    Ok(())
}

/// The pauses before a statement or transaction is tried again
/// ([`retrying`]): jittered, growing from 1 ms to 32 ms, so that
/// transactions a deadlock set against each other do not meet again in
/// step (eight grants at once on names new to the table, whose gap locks
/// meet, were still deadlocked on their third immediate retry).
const RETRY_PAUSES: Backoff = Backoff {
    initial: Duration::from_millis(1),
    max: Duration::from_millis(32),
    factor: 2.0,
};

/// Runs `op` until it succeeds, or fails in a way the database does not
/// ask to retry ([`Flavor::retry_after`]), pausing before each retry
/// ([`RETRY_PAUSES`]). Each try borrows `state` (the connection, and
/// whatever else it needs to change) and hands it back with its outcome.
///
/// # Cancel safety
///
/// As `op`'s: a retry starts only after the failed try ended (and the
/// database rolled it back); a pause dropped runs nothing more.
pub(crate) async fn retrying<F: Flavor, S, T, Fut>(
    mut state: S,
    mut op: impl FnMut(S) -> Fut,
) -> Result<T, sqlx::Error>
where
    Fut: Future<Output = (S, Result<T, sqlx::Error>)>,
{
    let (mut tries, mut pauses) = (0, RETRY_PAUSES.delays());
    loop {
        let (back, outcome) = op(state).await;
        if !F::retry_after(&outcome, &mut tries) {
            return outcome;
        }
        tokio::time::sleep(pauses.next_delay()).await;
        state = back;
    }
}

/// Runs `statement` on `conn` ([`run`]), tried again as
/// [`retrying`] says.
pub(crate) async fn run_retrying<F: Flavor>(
    statement: &Statement,
    values: &Values<'_>,
    conn: &mut Conn<F::Db>,
) -> Result<Outcome<F::Db>, sqlx::Error> {
    retrying::<F, _, _, _>(conn, |conn| async move {
        let outcome = run::<F>(statement, values, conn).await;
        (conn, outcome)
    })
    .await
}
