//! Cases with several writers at once: holders of successive tokens whose
//! writes interleave, as they do when a paused holder wakes up beside its
//! successors.

use futures::future::join_all;

use super::{accepted, ensure, holds, refused, Failure};
use crate::{FenceError, FencedStore, FencingToken};

/// Holders writing at once, with tokens `BASE + 1 ..= BASE + HOLDERS`.
const HOLDERS: u64 = 6;
/// Writes per holder, each after yielding to the others.
const WRITES: usize = 4;
/// The first holder's token is `BASE + 1`.
const BASE: u64 = 1_000;

/// What one write of one holder answered.
struct Outcome<T> {
    holder: u64,
    write: usize,
    result: Result<T, FenceError>,
}

/// Runs every holder's `WRITES` writes at once (`write(holder, n)`), each
/// holder yielding between its writes so that their writes interleave, and
/// returns every outcome.
async fn interleave<'a, T, F, Fut>(write: F) -> Vec<Outcome<T>>
where
    F: Fn(u64, usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, FenceError>> + Send + 'a,
{
    let write = &write;
    let holders = (1..=HOLDERS).map(|holder| async move {
        let mut outcomes = Vec::new();
        for n in 0..WRITES {
            let result = write(holder, n).await;
            outcomes.push(Outcome {
                holder,
                write: n,
                result,
            });
            tokio::task::yield_now().await;
        }
        outcomes
    });
    join_all(holders).await.into_iter().flatten().collect()
}

/// Every refusal is of a lower token by a higher one; every write of the
/// highest token passed (nothing higher exists, and an equal token passes).
fn check_outcomes<T>(outcomes: &[Outcome<T>]) -> Result<(), Failure> {
    for o in outcomes {
        let offered = FencingToken(BASE + o.holder);
        match &o.result {
            Ok(_) => {}
            Err(FenceError::Stale(stale)) => ensure(
                stale.offered == offered && stale.recorded > offered && o.holder < HOLDERS,
                || {
                    format!(
                        "holder {} write {}: refused with offered {} and recorded {}",
                        o.holder, o.write, stale.offered, stale.recorded
                    )
                },
            )?,
            Err(e) => return Err(format!("holder {} write {}: {e}", o.holder, o.write)),
        }
    }
    Ok(())
}

/// After the interleaved writes, each lower holder writes once more: the
/// highest token is recorded, so every one of them must be refused.
async fn late_writes_are_refused(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    for holder in 1..HOLDERS {
        let token = BASE + holder;
        refused(
            &format!("late set of holder {holder}"),
            store.set(r, FencingToken(token), b"late").await,
            token,
            BASE + HOLDERS,
        )?;
        refused(
            &format!("late add of holder {holder}"),
            store.add(r, FencingToken(token), 1).await,
            token,
            BASE + HOLDERS,
        )?;
    }
    Ok(())
}

/// Holders of successive tokens set the value at once: the last write of
/// the highest token is what remains, with that token recorded; later
/// writes of lower tokens change nothing.
pub async fn interleaved_writers_leave_the_highest_tokens_value(
    store: &dyn FencedStore,
    r: &str,
) -> Result<(), Failure> {
    let value = |holder: u64, n: usize| format!("holder {holder} write {n}");
    let outcomes = interleave(|holder, n| async move {
        let v = value(holder, n);
        store
            .set(r, FencingToken(BASE + holder), v.as_bytes())
            .await
    })
    .await;
    check_outcomes(&outcomes)?;
    let last = value(HOLDERS, WRITES - 1);
    holds(store, r, last.as_bytes(), BASE + HOLDERS).await?;
    late_writes_are_refused(store, r).await?;
    holds(store, r, last.as_bytes(), BASE + HOLDERS).await
}

/// Holders of successive tokens add to one counter at once: the total is
/// exactly the sum of the accepted additions, the highest token is
/// recorded, and later additions of lower tokens change nothing.
pub async fn interleaved_contributions_add_up(
    store: &dyn FencedStore,
    r: &str,
) -> Result<(), Failure> {
    let outcomes = interleave(|holder, _| async move {
        store
            .add(r, FencingToken(BASE + holder), holder as i64)
            .await
    })
    .await;
    check_outcomes(&outcomes)?;
    let sum: i64 = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.holder as i64)
        .sum();
    let highest = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .copied()
        .max();
    ensure(highest == Some(sum), || {
        format!(
            "the accepted additions sum to {sum}, but the highest total answered was {highest:?}"
        )
    })?;
    let total = sum.to_string();
    holds(store, r, total.as_bytes(), BASE + HOLDERS).await?;
    late_writes_are_refused(store, r).await?;
    holds(store, r, total.as_bytes(), BASE + HOLDERS).await?;
    // The highest holder may go on adding.
    let more = accepted(
        "add of the highest holder",
        store.add(r, FencingToken(BASE + HOLDERS), 1).await,
    )?;
    ensure(more == sum + 1, || format!("{sum} + 1 answered {more}"))
}
