//! The waiter-liveness window: an entry that had to wait is *marked* as a
//! waiter and must *claim* its turn before it holds.
//!
//! An entry is put in line in one of two ways, decided by the queueing
//! transaction itself: when nothing that would block it exists, it is put
//! as a holder (the owner token, and the label if any), on the client's
//! etcd lease; otherwise it is put as a **waiter**: its value is the
//! waiting mark below, and it lives on the client's waiter lease (ttl: the
//! waiter-liveness window, rounded up to etcd's minimum). When a waiter's
//! turn comes it **claims** it: one transaction that puts the holder value
//! on the client's etcd lease, only if the key still has its create
//! revision and the waiting mark. A put keeps the create revision, so the
//! entry keeps its place and its fencing token.
//!
//! The mark carries the waiter's window. The client that hands a turn on (a
//! release, a waiter giving up, a waiter passed over) reads which entries
//! it made due; a marked one that has not claimed within its window is
//! deleted (guarded by its create and mod revisions, so a claim that landed
//! meanwhile wins), see [`super::hand_over`]. A waiter that died in line so
//! holds the others up for its window, never for a session timeout; when
//! no live client hands the turn on (the holder died too), the waiter lease
//! frees its key.

use std::time::Duration;

use distlock_core::line;
use distlock_core::Result;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::cluster::Cluster;

/// The first byte of a waiter's value: below every hex digit (no owner
/// token's value starts with it, so no owner check ever matches a waiter)
/// and no newline follows (no label is read from it).
const WAITING: u8 = 1;

/// The value of a waiter's key: its [waiting mark](distlock_core::line::waiting_mark)
/// under [`WAITING`].
pub(crate) fn waiting_value(window: Duration) -> Vec<u8> {
    line::waiting_mark(WAITING, window)
}

/// The window of a waiter's key, from its value; `None` for an entry that
/// holds (or was put as a holder and waits for nothing but its turn's
/// grant, as an upgrade's writer entry).
pub(crate) fn window_of(value: &[u8]) -> Option<Duration> {
    line::window_of_mark(WAITING, value)
}

/// How an entry was put in line.
#[derive(Clone, Debug)]
pub(crate) struct Waiter {
    /// Its waiting mark.
    pub(crate) value: Vec<u8>,
    /// The waiter lease it lives on.
    pub(crate) lease_id: i64,
}

/// Claims the turn of the waiter `key` (created at `mine`, marked
/// `waiting`): puts `held` on etcd lease `lease_id` if the key still has
/// that create revision and that mark. True if the claim landed; false if
/// the key is gone (passed over, or its waiter lease ended).
///
/// Round trips: one (Txn: compare, then put).
///
/// # Cancel safety
///
/// Dropping the future may or may not have claimed the turn; the caller's
/// clean-up deletes the key either way (a claim landing after the delete
/// finds no key and creates none).
pub(crate) async fn claim(
    cluster: &Cluster,
    key: &str,
    mine: i64,
    waiting: &[u8],
    held: Vec<u8>,
    lease_id: i64,
) -> Result<bool> {
    let txn = Txn::new()
        .when([
            Compare::create_revision(key, CompareOp::Equal, mine),
            Compare::value(key, CompareOp::Equal, waiting.to_vec()),
        ])
        .and_then([TxnOp::put(
            key,
            held,
            Some(PutOptions::new().with_lease(lease_id)),
        )]);
    let resp = cluster
        .call("claiming a turn", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
    Ok(resp.succeeded())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_reads_back_its_window_and_holders_have_none() {
        for ms in [50, 1000, 3_600_000] {
            let window = Duration::from_millis(ms);
            let value = waiting_value(window);
            assert_eq!(window_of(&value), Some(window));
            assert!(!value.contains(&b'\n'), "no label is read from it");
        }
        assert_eq!(window_of(b"0123456789abcdef0123456789abcdef"), None);
        assert_eq!(window_of(b"0123\nleader"), None);
        assert_eq!(window_of(&[WAITING]), None);
        let huge = waiting_value(Duration::from_secs(u64::MAX / 1000));
        assert_eq!(
            window_of(&huge),
            Some(line::MAX_WAITER_TIMEOUT),
            "a mark never waits past the longest window"
        );
        assert_eq!(window_of(&[WAITING, b'x']), None);
    }
}
