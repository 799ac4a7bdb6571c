//! Deciding on what a grant transaction read: the core's compatibility rule
//! ([`Mode::fits`]) applied to the name's holds, and the rule that keeps a
//! stream of readers from starving a waiting writer.
//!
//! SQL keeps no queue of waiters (they poll, or wait for `NOTIFY`). A writer
//! that finds readers or permit holders in its way records an *intent* in
//! the holders table, living [`INTENT_LIFE`] on the database clock and
//! refreshed by each of its attempts (at least every [`INTENT_REFRESH`]);
//! while one lives, no new reader or permit is granted, so the holders
//! drain and the writer goes next. The intent goes when the writer is
//! granted, gives up or is cancelled; a writer that crashed holds readers
//! back for at most [`INTENT_LIFE`].

use std::time::Duration;

use distlock_core::{Fit, Mode};

use crate::holds::{Decision, Hold, NameState};

/// How long a waiting writer's intent lives on the database clock unless
/// refreshed: the waiter-liveness window, all a crashed waiting writer can
/// cost the readers.
pub(crate) const INTENT_LIFE: Duration = Duration::from_secs(1);

/// The longest a writer with an intent waits between attempts, each of
/// which refreshes it: a quarter of its life.
pub(crate) const INTENT_REFRESH: Duration = Duration::from_millis(250);

/// What the algorithm concluded from one look at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Grant this hold.
    Grant(Hold),
    /// Turn the owner's reader into the exclusive holder.
    Upgrade,
    /// Wait: something may change in `next` at the latest; record (or
    /// refresh) the owner's intent meanwhile if `intent`.
    Wait {
        /// When the soonest hold or intent in the way runs out.
        next: Duration,
        /// Whether the owner's waiting-writer intent is recorded.
        intent: bool,
    },
    /// A permit request whose count differs from the holders' `declared`.
    Mismatch {
        /// The permit count the holders declared.
        declared: u32,
    },
    /// An upgrade whose reader is no longer held.
    NotHeld,
}

impl Verdict {
    /// What the transaction does about it.
    pub fn decision(self) -> Decision {
        match self {
            Verdict::Grant(hold) => Decision::Grant(hold),
            Verdict::Upgrade => Decision::Upgrade,
            Verdict::Wait { intent: true, .. } => Decision::Intent(INTENT_LIFE),
            Verdict::Wait { .. } | Verdict::Mismatch { .. } | Verdict::NotHeld => Decision::Nothing,
        }
    }
}

/// A reader or permit request of `owner` (`hold`, in `mode`), beside what
/// `state` holds: granted when [`Mode::fits`] says it fits and no writer
/// waits; a permit count that differs from the holders' is a mismatch.
pub(crate) fn for_hold(mode: Mode, hold: Hold, owner: &str, state: &NameState) -> Verdict {
    let wait = Verdict::Wait {
        next: state.next_change_except(owner),
        intent: false,
    };
    match mode.fits(state.modes_except(owner)) {
        Fit::Mismatch { declared } => Verdict::Mismatch { declared },
        Fit::Waits => wait,
        Fit::Fits if state.writer_waits_except(owner) => wait,
        Fit::Fits => Verdict::Grant(hold),
    }
}

/// An upgrade of `owner`'s reader: it must still be held; it goes when the
/// exclusive mode fits beside everyone else's holds (other writers' intents
/// do not stop it: it is ahead of them), and records its own intent while
/// it waits, so that no new reader comes in meanwhile.
pub(crate) fn for_upgrade(owner: &str, state: &NameState) -> Verdict {
    if !state.holds(owner, Mode::Shared) {
        return Verdict::NotHeld;
    }
    match Mode::Exclusive.fits(state.modes_except(owner)) {
        Fit::Fits => Verdict::Upgrade,
        Fit::Waits | Fit::Mismatch { .. } => Verdict::Wait {
            next: state.next_change_except(owner),
            intent: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holds::Held;

    fn state(rows: &[(&str, &[u8], i64)]) -> NameState {
        NameState {
            held: rows
                .iter()
                .map(|(owner, kind, permits)| {
                    Held::from_row(kind, *permits, owner.to_string(), Duration::from_millis(40))
                        .unwrap()
                })
                .collect(),
            fence: Some(1),
        }
    }

    const TWO: Mode = Mode::Permit { limit: 2 };

    #[test]
    fn readers_share_and_wait_for_a_writer() {
        let s = Hold::Shared;
        assert_eq!(
            for_hold(Mode::Shared, s, "me", &state(&[("a", b"s", 0)])),
            Verdict::Grant(s)
        );
        assert!(matches!(
            for_hold(Mode::Shared, s, "me", &state(&[("a", b"x", 0)])),
            Verdict::Wait { intent: false, .. }
        ));
    }

    #[test]
    fn a_waiting_writer_holds_new_readers_and_permits_back() {
        let waiting = state(&[("a", b"s", 0), ("w", b"w", 0)]);
        assert!(matches!(
            for_hold(Mode::Shared, Hold::Shared, "me", &waiting),
            Verdict::Wait { .. }
        ));
        let intent_alone = state(&[("w", b"w", 0)]);
        assert!(matches!(
            for_hold(TWO, Hold::Permit(2), "me", &intent_alone),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn permits_are_counted_and_their_size_checked() {
        let one = state(&[("a", b"p", 2)]);
        assert_eq!(
            for_hold(TWO, Hold::Permit(2), "me", &one),
            Verdict::Grant(Hold::Permit(2))
        );
        let full = state(&[("a", b"p", 2), ("b", b"p", 2)]);
        assert!(matches!(
            for_hold(TWO, Hold::Permit(2), "me", &full),
            Verdict::Wait { .. }
        ));
        let three = Mode::Permit { limit: 3 };
        assert_eq!(
            for_hold(three, Hold::Permit(3), "me", &one),
            Verdict::Mismatch { declared: 2 }
        );
    }

    #[test]
    fn an_upgrade_goes_when_its_reader_is_alone() {
        let alone = state(&[("me", b"s", 0), ("me", b"w", 0), ("w", b"w", 0)]);
        assert_eq!(for_upgrade("me", &alone), Verdict::Upgrade);
        let shared = state(&[("me", b"s", 0), ("b", b"s", 0)]);
        assert_eq!(
            for_upgrade("me", &shared),
            Verdict::Wait {
                next: Duration::from_millis(40),
                intent: true
            }
        );
        assert_eq!(
            for_upgrade("me", &state(&[("b", b"s", 0)])),
            Verdict::NotHeld
        );
        assert_eq!(
            Verdict::Wait {
                next: Duration::ZERO,
                intent: true
            }
            .decision(),
            Decision::Intent(INTENT_LIFE)
        );
    }
}
