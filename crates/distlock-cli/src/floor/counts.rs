//! The counter the semaphore and reader-writer floors keep per name, and its
//! rule, as a hand-written lock would: holders counted up and down, the
//! writer as `-1`, no owners, no queue.
//!
//! A writer refused because readers are in sets a "writer waits" flag that
//! keeps new readers out until a writer gets in (which clears it); without
//! it, a steady stream of readers would keep the count above zero and starve
//! the writer, and the floor would measure that instead of its commands. The
//! memory and etcd floors apply this rule in Rust; the Redis script and the
//! SQL statements apply the same rule on the server.

use distlock::Mode;

/// One name's holders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Permit or reader holders (> 0), the writer (-1) or nobody (0).
    pub holders: i64,
    /// A writer was refused and waits: readers stay out.
    pub writer_waits: bool,
}

/// What a take did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Taken; the count to store.
    Taken(Count),
    /// Refused; the count to store (a refused writer sets `writer_waits`).
    Refused(Count),
}

impl Count {
    /// Takes a hold in `mode`: a permit while fewer than its limit are held
    /// (and no writer holds), a reader while no writer holds or waits, the
    /// writer when nobody holds. Any mode other than a permit or a reader
    /// is the writer.
    pub fn take(self, mode: Mode) -> Step {
        match mode {
            Mode::Permit { limit } if self.holders >= 0 && self.holders < i64::from(limit) => {
                Step::Taken(self.with_holders(self.holders + 1))
            }
            Mode::Permit { .. } => Step::Refused(self),
            Mode::Shared if self.holders >= 0 && !self.writer_waits => {
                Step::Taken(self.with_holders(self.holders + 1))
            }
            Mode::Shared => Step::Refused(self),
            _ if self.holders == 0 => Step::Taken(Count {
                holders: -1,
                writer_waits: false,
            }),
            _ => Step::Refused(Count {
                writer_waits: true,
                ..self
            }),
        }
    }

    /// Gives back a hold taken in `mode`.
    pub fn give_back(self, mode: Mode) -> Count {
        match mode {
            Mode::Permit { .. } | Mode::Shared => self.with_holders((self.holders - 1).max(0)),
            _ => self.with_holders(0),
        }
    }

    /// Nobody holds and no writer waits: the name's record can go.
    pub fn is_idle(self) -> bool {
        self == Count::default()
    }

    fn with_holders(self, holders: i64) -> Count {
        Count { holders, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(step: Step) -> Count {
        match step {
            Step::Taken(c) => c,
            Step::Refused(c) => panic!("refused at {c:?}"),
        }
    }

    #[test]
    fn permits_are_counted_up_to_the_limit() {
        let three = Mode::Permit { limit: 3 };
        let mut c = Count::default();
        for _ in 0..3 {
            c = taken(c.take(three));
        }
        assert_eq!(c.take(three), Step::Refused(c));
        assert!(c
            .give_back(three)
            .give_back(three)
            .give_back(three)
            .is_idle());
    }

    #[test]
    fn readers_share_and_the_writer_is_alone() {
        let two_readers = taken(taken(Count::default().take(Mode::Shared)).take(Mode::Shared));
        assert_eq!(two_readers.holders, 2);
        let writer = taken(Count::default().take(Mode::Exclusive));
        assert_eq!(writer.holders, -1);
        assert!(matches!(writer.take(Mode::Shared), Step::Refused(_)));
        assert!(matches!(writer.take(Mode::Exclusive), Step::Refused(_)));
        assert!(writer.give_back(Mode::Exclusive).is_idle());
    }

    #[test]
    fn a_refused_writer_keeps_new_readers_out_until_it_gets_in() {
        let reader = taken(Count::default().take(Mode::Shared));
        let Step::Refused(waiting) = reader.take(Mode::Exclusive) else {
            panic!("a writer beside a reader");
        };
        assert!(waiting.writer_waits);
        assert!(matches!(waiting.take(Mode::Shared), Step::Refused(_)));
        let drained = waiting.give_back(Mode::Shared);
        let writer = taken(drained.take(Mode::Exclusive));
        assert!(!writer.writer_waits);
    }
}
