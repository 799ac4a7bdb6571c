//! The waiter-liveness window: a node that had to wait is *marked* as a
//! waiter and must *claim* its turn before it holds.
//!
//! An acquire lists the directory before it creates its node. When nothing
//! there would keep its node from holding, the node is created as a holder
//! (its data: the label, if any); otherwise it is created **marked**: its
//! data is [`WAITING`] and its window. If the first list after the create
//! shows that it must wait after all (someone came in between), it is
//! marked then. When a marked node's turn comes, its contender **claims**
//! it: one `setData` of the holder data, checked against the node's
//! version, so it fails if the node was deleted meanwhile.
//!
//! The client that hands a turn on (a release, a waiter giving up, a waiter
//! passed over) and the waiters behind a marked node look at the head of
//! the line: a marked node whose turn came and that stays unclaimed for its
//! window is deleted, checked against the version they read (see
//! [`super::hand_over`]). A waiter that died in line so holds the others up
//! about its window, not its session timeout.
//!
//! Versions keep the two apart: a marked node is at an even version (0
//! when created marked, 2 when marked after its create: two `setData` in
//! one request), the claim makes it odd, and a hold kept after its release
//! is re-created at version 1 (see the `hold` module). A pass-over that
//! read a marked node at version `v` deletes "`path` at version `v`": it
//! can delete neither a claimed node nor a kept one at the same path.

use std::time::{Duration, Instant};

use distlock_core::Mode;
use zookeeper_client as zk;

use super::Want;
use crate::rpc::{call_until, call_while_live};
use crate::session::Session;
use crate::sessions::Sessions;

/// The first byte of a marked node's data: no UTF-8 text holds it, so no
/// label is read as a mark (a kept node's data starts with NUL).
const WAITING: u8 = 0xff;

/// The data of a marked node: its [waiting mark](distlock_core::line::waiting_mark)
/// under [`WAITING`].
pub(crate) fn waiting_data(window: Duration) -> Vec<u8> {
    distlock_core::line::waiting_mark(WAITING, window)
}

/// The window of a marked node, from its data; `None` for a holder's data.
pub(crate) fn window_of(data: &[u8]) -> Option<Duration> {
    distlock_core::line::window_of_mark(WAITING, data)
}

/// Marks the node at `path`, created as a holder (version 0), as a waiter:
/// two `setData` in one request, so it is at version 2.
///
/// Round trips: one (a multi-request).
///
/// # Cancel safety
///
/// Dropping the future may or may not have marked the node (both writes or
/// neither); the caller's clean-up deletes the node either way.
pub(crate) async fn mark(
    session: &Session,
    path: &str,
    data: &[u8],
    deadline: Option<Instant>,
) -> Result<i32, zk::Error> {
    let mut writes = session.client.new_multi_writer();
    writes.add_set_data(path, data, Some(0))?;
    writes.add_set_data(path, data, Some(1))?;
    call_until(session, deadline, async {
        writes.commit().await.map_err(zk::Error::from)
    })
    .await?;
    Ok(2)
}

/// How a claim ended.
pub(crate) enum Claim {
    /// The node holds now.
    Claimed,
    /// The node is gone: passed over (or its session ended).
    Gone,
}

/// Claims the turn of the marked node at `path` (at version `version`):
/// writes the holder data `held`, checked against that version. A node
/// found at another version (an earlier claim whose answer was lost) is
/// read: still marked, it is claimed at its version; holding, it was ours
/// already.
///
/// Round trips: one (`setData`); two more after a lost answer.
///
/// # Cancel safety
///
/// Dropping the future may or may not have claimed the turn; the caller's
/// clean-up deletes the node either way (a `setData` never creates one).
pub(crate) async fn claim(
    session: &Session,
    path: &str,
    version: i32,
    held: &[u8],
    deadline: Option<Instant>,
) -> Result<Claim, zk::Error> {
    let mut version = version;
    for _ in 0..2 {
        let written = session.client.set_data(path, held, Some(version));
        match call_until(session, deadline, written).await {
            Ok(_) => return Ok(Claim::Claimed),
            Err(zk::Error::NoNode) => return Ok(Claim::Gone),
            Err(zk::Error::BadVersion) => {}
            Err(e) => return Err(e),
        }
        let read = session.client.get_data(path);
        match call_until(session, deadline, read).await {
            Ok((data, stat)) if window_of(&data).is_some() => version = stat.version,
            Ok(_) => return Ok(Claim::Claimed),
            Err(zk::Error::NoNode) => return Ok(Claim::Gone),
            Err(e) => return Err(e),
        }
    }
    Err(zk::Error::BadVersion)
}

/// A waiter's mark and window, from the backend's settings (`None` without
/// waiter claims).
pub(super) fn waiting(sessions: &Sessions) -> Option<(Vec<u8>, Duration)> {
    let config = sessions.config();
    let window = config.waiter_timeout();
    config
        .waiter_claims()
        .then(|| (waiting_data(window), window))
}

/// Whether our node must be created marked: it may wait (nothing marks an
/// upgrade's node) and a list shows a node that would keep it from holding.
///
/// Round trips: one (list), for an acquire that may wait.
pub(super) async fn born_waiting(
    session: &Session,
    want: &Want<'_>,
    deadline: Option<Instant>,
) -> Result<bool, zk::Error> {
    if want.waiting.is_none() {
        return Ok(false);
    }
    let listed = call_while_live(session, deadline, session.client.list_children(&want.dir));
    let children = match listed.await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut modes: Vec<Mode> = crate::queue::queue(&children)
        .iter()
        .map(|n| n.mode)
        .collect();
    modes.push(want.mode);
    Ok(Mode::admitted(&[], &modes) < modes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_data::NodeData;

    #[test]
    fn the_mark_reads_back_its_window_and_no_label_is_a_mark() {
        for ms in [50, 1000, 3_600_000] {
            let window = Duration::from_millis(ms);
            let data = waiting_data(window);
            assert_eq!(window_of(&data), Some(window));
            assert_eq!(NodeData::parse(&data), NodeData::default());
        }
        for label in ["", "leader-1", "\u{1}1000", "ÿ100"] {
            assert_eq!(
                window_of(&NodeData::labelled(Some(label))),
                None,
                "{label:?}"
            );
        }
        assert_eq!(window_of(&NodeData::kept(7, Some("x"))), None);
        assert_eq!(window_of(&[WAITING]), None);
        let huge = waiting_data(Duration::from_secs(u64::MAX / 1000));
        assert_eq!(
            window_of(&huge),
            Some(distlock_core::line::MAX_WAITER_TIMEOUT),
            "a mark never waits past the longest window"
        );
    }
}
