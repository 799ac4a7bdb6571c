//! Whose turn it is: the core's compatibility rule ([`Mode::admitted`])
//! applied to the line of nodes in a lock directory, and the nodes a
//! waiting contender watches.
//!
//! The line is the directory's children in sequence order; each node
//! carries its mode in its name. A node may hold once it and every node
//! before it fit together: the longest prefix of the line that
//! [`Mode::admitted`] lets go holds the name. A node never overtakes an
//! earlier one, so a reader behind a waiting writer waits too, and permits
//! go in arrival order.
//!
//! A node that may not hold yet watches only what decides its turn:
//!
//! - the **last earlier node it cannot hold beside** (for a writer: the
//!   node right before it; for a reader: the last earlier writer or permit;
//!   for a permit: the last earlier writer or reader). Nothing changes for
//!   it while that node stays, and once it goes the line is read again;
//! - otherwise (a permit with only permits of its count before it, `limit`
//!   or more of them) **the `limit` nodes right before it**: the deletion
//!   of any one of them moves it up a place, and no single one of them
//!   decides (the holders leave in any order). Deleting a node further
//!   ahead does not change which nodes are right before it. So one node's
//!   deletion wakes at most `limit` waiters — for one permit, the classic
//!   single predecessor.

use distlock_core::{Fit, Mode};

use crate::queue::{queue, QueueNode};

/// Where a contender stands in its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// It and every node before it fit together: it holds.
    Holds,
    /// It must wait; the deletion of any of these nodes (child names, never
    /// empty) may make it its turn.
    Waits {
        /// The nodes to watch.
        watch: Vec<String>,
    },
    /// Our node is not in the directory (any more).
    Gone,
    /// Other nodes carry our owner token: a create retried after a lost
    /// reply that landed twice, or the node of an earlier attempt on a
    /// session this client gave up on and the server has not expired yet.
    /// They must go before ours may count.
    Others {
        /// Their child names.
        extra: Vec<String>,
    },
    /// A permit whose count differs from the count of the earliest permit
    /// before it: refused, never granted.
    Mismatch {
        /// The count the earlier permit declared.
        declared: u32,
    },
    /// An upgrade's reader node is gone: the shared hold it upgrades was
    /// lost.
    ReaderGone,
}

/// The contender whose place is asked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seat<'a> {
    /// Our owner token, in hex.
    pub(crate) owner: &'a str,
    /// Our node's child name.
    pub(crate) node: &'a str,
    /// The mode our node queues for.
    pub(crate) mode: Mode,
    /// For an upgrade: our reader node (child name). It stays in the line
    /// for everyone else, but not for us: our writer node holds once it is
    /// the only node before us.
    pub(crate) reader: Option<&'a str>,
}

/// Where `seat` stands among `children` (the directory's listing).
pub(crate) fn place(children: &[String], seat: &Seat<'_>) -> Place {
    let mut line = queue(children);
    if !line.iter().any(|n| n.name == seat.node) {
        return Place::Gone;
    }
    if let Some(reader) = seat.reader {
        let Some(at) = line.iter().position(|n| n.name == reader) else {
            return Place::ReaderGone;
        };
        line.remove(at);
    }
    let Some(position) = line.iter().position(|n| n.name == seat.node) else {
        return Place::Gone;
    };
    let extra: Vec<String> = line
        .iter()
        .filter(|n| n.owner == seat.owner && n.name != seat.node)
        .map(|n| n.name.clone())
        .collect();
    if !extra.is_empty() {
        return Place::Others { extra };
    }
    let before = &line[..position];
    if let Fit::Mismatch { declared } = seat.mode.fits(first_permit(before)) {
        return Place::Mismatch { declared };
    }
    let modes: Vec<Mode> = line[..=position].iter().map(|n| n.mode).collect();
    if Mode::admitted(&[], &modes) == modes.len() {
        return Place::Holds;
    }
    Place::Waits {
        watch: deciders(before, seat.mode),
    }
}

/// The mode of the earliest permit in `before`, if any: the count a
/// semaphore's name was declared with. Later permits of another count
/// refuse themselves as they see it, so only the earliest one counts.
fn first_permit(before: &[QueueNode]) -> Option<Mode> {
    before
        .iter()
        .map(|n| n.mode)
        .find(|m| matches!(m, Mode::Permit { .. }))
}

/// The nodes whose deletion may make it the turn of a node in `mode` that
/// has `before` ahead of it and may not hold yet (see the module docs).
fn deciders(before: &[QueueNode], mode: Mode) -> Vec<String> {
    if let Some(blocker) = before
        .iter()
        .rev()
        .find(|n| mode.fits([n.mode]) != Fit::Fits)
    {
        return vec![blocker.name.clone()];
    }
    let window = match mode {
        Mode::Permit { limit } => usize::try_from(limit).unwrap_or(usize::MAX),
        _ => 1,
    };
    before[before.len().saturating_sub(window)..]
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

/// A status read of a line: the nodes whose turn it is, and how many wait
/// behind them.
pub(crate) struct Holders<'a> {
    /// The nodes whose turn it is, in order (an upgraded pair as its
    /// writer node); the last one's czxid is the greatest among them.
    pub(crate) holding: &'a [QueueNode],
    /// How many wait behind the holders.
    pub(crate) waiting: usize,
}

/// Who holds in `line` (sorted, from [`queue`]). A writer node right behind
/// a reader node of the same owner is an upgraded hold: the two count as
/// one holder, the writer.
pub(crate) fn holders(line: &[QueueNode]) -> Holders<'_> {
    let line = match line {
        [first, second, ..] if first.owner == second.owner => &line[1..],
        _ => line,
    };
    let modes: Vec<Mode> = line.iter().map(|n| n.mode).collect();
    let count = Mode::admitted(&[], &modes);
    Holders {
        holding: &line[..count],
        waiting: line.len() - count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "";
    const S: &str = "s-";

    /// A child name for owner letter `o` (repeated to 32 hex digits), tag
    /// and sequence.
    fn node(o: char, tag: &str, seq: u32) -> String {
        format!("{}-{tag}{seq:010}", o.to_string().repeat(32))
    }

    fn seat<'a>(owner: &'a str, node: &'a str, mode: Mode) -> Seat<'a> {
        Seat {
            owner,
            node,
            mode,
            reader: None,
        }
    }

    fn place_of(children: &[String], o: char, mode: Mode, at: usize) -> Place {
        let owner = o.to_string().repeat(32);
        place(children, &seat(&owner, &children[at], mode))
    }

    #[test]
    fn a_writer_holds_when_first_and_watches_its_predecessor() {
        let line = vec![node('a', S, 1), node('b', X, 2), node('c', X, 3)];
        assert_eq!(
            place_of(&line, 'b', Mode::Exclusive, 1),
            Place::Waits {
                watch: vec![line[0].clone()]
            }
        );
        assert_eq!(
            place_of(&line, 'c', Mode::Exclusive, 2),
            Place::Waits {
                watch: vec![line[1].clone()]
            }
        );
        assert_eq!(place_of(&line[1..], 'b', Mode::Exclusive, 0), Place::Holds);
    }

    #[test]
    fn readers_hold_together_and_watch_the_last_earlier_writer() {
        let line = vec![
            node('a', S, 1),
            node('b', S, 2),
            node('c', X, 3),
            node('d', S, 4),
            node('e', S, 5),
        ];
        assert_eq!(place_of(&line, 'b', Mode::Shared, 1), Place::Holds);
        // Behind a waiting writer, a reader waits (the writer is not
        // starved), watching that writer only.
        let behind = Place::Waits {
            watch: vec![line[2].clone()],
        };
        assert_eq!(place_of(&line, 'd', Mode::Shared, 3), behind);
        assert_eq!(place_of(&line, 'e', Mode::Shared, 4), behind);
    }

    #[test]
    fn permits_hold_up_to_their_count_and_watch_the_nodes_right_before() {
        let three = Mode::Permit { limit: 3 };
        let p3 = "p3-";
        let line: Vec<String> = "abcdef"
            .chars()
            .zip(1..)
            .map(|(o, s)| node(o, p3, s))
            .collect();
        assert_eq!(place_of(&line, 'c', three, 2), Place::Holds);
        assert_eq!(
            place_of(&line, 'd', three, 3),
            Place::Waits {
                watch: line[0..3].to_vec()
            }
        );
        assert_eq!(
            place_of(&line, 'f', three, 5),
            Place::Waits {
                watch: line[2..5].to_vec()
            }
        );
        // A writer ahead: the permit waits for it alone.
        let mixed = vec![node('a', p3, 1), node('b', X, 2), node('c', p3, 3)];
        assert_eq!(
            place_of(&mixed, 'c', three, 2),
            Place::Waits {
                watch: vec![mixed[1].clone()]
            }
        );
        // One permit: the classic predecessor watch.
        let one = Mode::Permit { limit: 1 };
        let single = vec![node('a', "p1-", 1), node('b', "p1-", 2)];
        assert_eq!(
            place_of(&single, 'b', one, 1),
            Place::Waits {
                watch: vec![single[0].clone()]
            }
        );
    }

    #[test]
    fn a_permit_of_another_count_is_a_mismatch() {
        let line = vec![node('a', "p3-", 1), node('b', X, 2), node('c', "p5-", 3)];
        assert_eq!(
            place_of(&line, 'c', Mode::Permit { limit: 5 }, 2),
            Place::Mismatch { declared: 3 }
        );
        // A later node of another count refuses itself; the earliest
        // permit's count is the declared one, and ours matches it.
        let line = vec![
            node('a', "p3-", 1),
            node('b', "p5-", 2),
            node('c', "p3-", 3),
        ];
        assert_eq!(
            place_of(&line, 'c', Mode::Permit { limit: 3 }, 2),
            Place::Waits {
                watch: vec![line[1].clone()]
            }
        );
    }

    #[test]
    fn an_upgrade_holds_once_its_reader_is_the_only_node_before_it() {
        let a = "a".repeat(32);
        let line = vec![node('b', S, 1), node('a', S, 2), node('a', X, 3)];
        let upgrade = Seat {
            reader: Some(&line[1]),
            ..seat(&a, &line[2], Mode::Exclusive)
        };
        assert_eq!(
            place(&line, &upgrade),
            Place::Waits {
                watch: vec![line[0].clone()]
            }
        );
        assert_eq!(place(&line[1..], &upgrade), Place::Holds);
        assert_eq!(place(&line[2..], &upgrade), Place::ReaderGone);
    }

    #[test]
    fn nodes_of_our_owner_token_must_go_first() {
        let line = vec![node('a', X, 1), node('b', X, 2), node('a', X, 3)];
        assert_eq!(
            place_of(&line, 'a', Mode::Exclusive, 2),
            Place::Others {
                extra: vec![line[0].clone()]
            }
        );
        let owner = "c".repeat(32);
        assert_eq!(
            place(&line, &seat(&owner, "gone", Mode::Exclusive)),
            Place::Gone
        );
    }

    #[test]
    fn status_counts_holders_and_an_upgraded_pair_as_one() {
        let line = queue(&[
            node('a', S, 1),
            node('b', S, 2),
            node('c', X, 3),
            node('d', S, 4),
        ]);
        let h = holders(&line);
        assert_eq!((h.holding.last().map(|n| n.seq), h.waiting), (Some(2), 2));
        let upgraded = queue(&[node('a', S, 1), node('a', X, 2), node('b', S, 3)]);
        let h = holders(&upgraded);
        assert_eq!((h.holding.last().map(|n| n.seq), h.waiting), (Some(2), 1));
        let empty = holders(&[]);
        assert_eq!(
            (empty.holding.last().map(|n| n.seq), empty.waiting),
            (None, 0)
        );
    }
}
