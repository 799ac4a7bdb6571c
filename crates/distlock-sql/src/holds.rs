//! The holds beside the mutex: readers, semaphore permits and waiting
//! writers' intents, as a grant transaction reads them from the holders
//! table and as the algorithm decides on them.
//!
//! The dialects turn rows into a [`NameState`] and carry out a
//! [`Decision`]; the algorithm (`shared`) makes the decision with the
//! core's one compatibility rule, [`Mode::fits`].

use std::time::Duration;

use distlock_core::Mode;

/// What a holders-table row holds: a reader or a permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A reader (`Mode::Shared`), kind `s`.
    Shared,
    /// A permit of a semaphore of this size (`Mode::Permit`), kind `p`.
    Permit(u32),
}

impl Hold {
    /// The hold a request in `mode` stores, `None` for the exclusive mode
    /// (which lives in the locks table's row).
    pub fn of(mode: Mode) -> Option<Hold> {
        match mode {
            Mode::Shared => Some(Hold::Shared),
            Mode::Permit { limit } => Some(Hold::Permit(limit)),
            _ => None,
        }
    }

    /// The `kind` column's value.
    pub fn kind(self) -> &'static str {
        match self {
            Hold::Shared => "s",
            Hold::Permit(_) => "p",
        }
    }

    /// The `permits` column's value: the semaphore's size, 0 for a reader.
    pub fn permits(self) -> i64 {
        match self {
            Hold::Shared => 0,
            Hold::Permit(n) => i64::from(n),
        }
    }
}

/// What one row a grant transaction read stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holding {
    /// A hold in this mode (the exclusive one from the locks table).
    Mode(Mode),
    /// A waiting writer's intent: not a hold, but no new reader or permit
    /// is granted while it lives.
    Intent,
    /// A row that is no hold for a grant transaction (session strategy): a
    /// leader's label, which stands beside its session lock, or the mark
    /// that keeps a released reader's or permit's gate (its own row is the
    /// hold).
    Beside,
}

/// One hold or intent on a name, as a grant transaction read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// Its owner token.
    pub owner: String,
    /// What it holds.
    pub holding: Holding,
    /// Its time left on the database clock (zero once run out).
    pub remaining: Duration,
}

impl Held {
    /// Reads one row of a dialect's `read.sql`: `kind` is `x` (the
    /// exclusive holder), `s`, `p` or `w`, or under the session strategy
    /// `a` (an exclusive hold kept after its release), `l` or `g` (rows
    /// beside the holds); `remaining` in the dialect's unit, already
    /// converted.
    pub fn from_row(
        kind: &[u8],
        permits: i64,
        owner: String,
        remaining: Duration,
    ) -> Result<Held, sqlx::Error> {
        let holding = match kind {
            b"x" | b"a" => Holding::Mode(Mode::Exclusive),
            b"s" => Holding::Mode(Mode::Shared),
            b"p" => {
                let limit = u32::try_from(permits)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad_row(format!("a permit row declares {permits} permits")))?;
                Holding::Mode(Mode::Permit { limit })
            }
            b"w" => Holding::Intent,
            b"l" | b"g" => Holding::Beside,
            other => {
                return Err(bad_row(format!(
                    "unknown kind {:?} in the holders table",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        Ok(Held {
            owner,
            holding,
            remaining,
        })
    }

    /// The mode it holds, `None` for an intent or a row beside.
    pub fn mode(&self) -> Option<Mode> {
        match self.holding {
            Holding::Mode(m) => Some(m),
            Holding::Intent | Holding::Beside => None,
        }
    }
}

/// A row the dialect cannot make sense of.
fn bad_row(why: String) -> sqlx::Error {
    sqlx::Error::Decode(why.into())
}

/// Every hold and intent on one name, read inside a grant transaction
/// (with the name's row locked and the expired holders deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NameState {
    /// The holds and intents, in no particular order.
    pub held: Vec<Held>,
    /// The name's last fencing token, when any row was read.
    pub fence: Option<u64>,
}

impl NameState {
    /// The modes held by others than `me`.
    pub fn modes_except<'a>(&'a self, me: &'a str) -> impl Iterator<Item = Mode> + 'a {
        self.held
            .iter()
            .filter(move |h| h.owner != me)
            .filter_map(Held::mode)
    }

    /// Whether a writer other than `me` waits (its intent lives).
    pub fn writer_waits_except(&self, me: &str) -> bool {
        self.held
            .iter()
            .any(|h| h.holding == Holding::Intent && h.owner != me)
    }

    /// Whether `me` holds the name in `mode`.
    pub fn holds(&self, me: &str, mode: Mode) -> bool {
        self.held
            .iter()
            .any(|h| h.owner == me && h.holding == Holding::Mode(mode))
    }

    /// How many readers and permit holders hold the name (the rows of the
    /// holders table that are not intents): the `shared_count` PostgreSQL
    /// and MySQL keep in the name's row.
    pub fn shared_rows(&self) -> i64 {
        let n = self
            .held
            .iter()
            .filter(|h| matches!(h.mode(), Some(Mode::Shared | Mode::Permit { .. })))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The soonest any hold or intent of others than `me` runs out: when
    /// waiting on this state is worth a new look at the latest.
    pub fn next_change_except(&self, me: &str) -> Duration {
        self.held
            .iter()
            .filter(|h| h.owner != me && h.holding != Holding::Beside)
            .map(|h| h.remaining)
            .min()
            .unwrap_or(Duration::ZERO)
    }
}

/// The algorithm's choice, made inside a grant transaction on what it read.
pub(crate) type Decide<'d> = dyn for<'s> FnMut(&'s NameState) -> Decision + Send + 'd;

/// What a grant transaction does once it has read the [`NameState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Add this hold for the request's owner, with the next fencing token.
    Grant(Hold),
    /// Turn the owner's reader into the exclusive holder, with the next
    /// fencing token.
    Upgrade,
    /// Record (refresh) the owner's waiting-writer intent, living this long.
    Intent(Duration),
    /// Change nothing.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(owner: &str, kind: &[u8], permits: i64, ms: u64) -> Held {
        Held::from_row(kind, permits, owner.into(), Duration::from_millis(ms)).unwrap()
    }

    #[test]
    fn rows_are_read_as_modes_and_intents() {
        assert_eq!(held("a", b"x", 0, 1).mode(), Some(Mode::Exclusive));
        assert_eq!(held("a", b"s", 0, 1).mode(), Some(Mode::Shared));
        assert_eq!(
            held("a", b"p", 3, 1).mode(),
            Some(Mode::Permit { limit: 3 })
        );
        assert_eq!(held("a", b"w", 0, 1).holding, Holding::Intent);
        assert_eq!(held("a", b"a", 9, 1).mode(), Some(Mode::Exclusive));
        assert_eq!(held("a", b"l", 9, 1).holding, Holding::Beside);
        assert_eq!(held("a", b"g", 9, 1).mode(), None);
        for (kind, permits) in [(&b"p"[..], 0), (b"p", -1), (b"q", 0)] {
            let got = Held::from_row(kind, permits, "a".into(), Duration::ZERO);
            assert!(got.is_err(), "{kind:?} {permits}");
        }
    }

    #[test]
    fn the_state_answers_for_others_than_me() {
        let state = NameState {
            held: vec![
                held("me", b"s", 0, 900),
                held("me", b"w", 0, 50),
                held("r", b"s", 0, 300),
                held("w", b"w", 0, 700),
                held("l", b"l", 7, 100),
            ],
            fence: Some(9),
        };
        let others: Vec<Mode> = state.modes_except("me").collect();
        assert_eq!(others, [Mode::Shared]);
        assert!(state.writer_waits_except("me"));
        let alone = NameState {
            held: vec![held("w", b"w", 0, 700)],
            fence: None,
        };
        assert!(!alone.writer_waits_except("w"));
        assert!(state.holds("me", Mode::Shared));
        assert_eq!(state.shared_rows(), 2);
        assert_eq!(state.next_change_except("me"), Duration::from_millis(300));
    }

    #[test]
    fn holds_are_stored_as_kind_and_permits() {
        assert_eq!(Hold::of(Mode::Shared), Some(Hold::Shared));
        assert_eq!(
            Hold::of(Mode::Permit { limit: 4 }).map(|h| (h.kind(), h.permits())),
            Some(("p", 4))
        );
        assert_eq!(Hold::of(Mode::Exclusive), None);
    }
}
