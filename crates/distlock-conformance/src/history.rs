//! The history checker: records who held a lock when, and finds overlaps and
//! fencing tokens that fail to increase.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One recorded hold of a lock.
#[derive(Clone, Debug)]
pub struct Hold {
    /// Which client held it.
    pub client: usize,
    /// The fencing token of the lease.
    pub fencing: u64,
    /// When the acquire returned (the hold began no later than this).
    pub start: Instant,
    /// When the holder began its release (the hold ended no earlier than this).
    pub end: Instant,
}

/// What the checker found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two holds overlap in time.
    Overlap {
        /// The earlier hold (client, fencing).
        first: (usize, u64),
        /// The hold that began before the first ended (client, fencing).
        second: (usize, u64),
    },
    /// A later hold carries a fencing token not greater than an earlier one.
    FencingNotIncreasing {
        /// The earlier hold (client, fencing).
        earlier: (usize, u64),
        /// The later hold (client, fencing).
        later: (usize, u64),
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Overlap { first, second } => write!(
                f,
                "holds overlap: client {} (token {}) and client {} (token {})",
                first.0, first.1, second.0, second.1
            ),
            Violation::FencingNotIncreasing { earlier, later } => write!(
                f,
                "fencing token did not increase: client {} got {} after client {} got {}",
                later.0, later.1, earlier.0, earlier.1
            ),
        }
    }
}

/// A thread-safe log of holds of one lock name, checked at the end.
///
/// Record a hold with the instant the acquire *returned* and the instant the
/// release was *called*: the real hold covers at least that interval, so any
/// overlap of recorded intervals is a real overlap.
///
/// ```
/// use std::time::{Duration, Instant};
/// use distlock_conformance::{Hold, History};
/// let h = History::new();
/// let t = Instant::now();
/// h.record(Hold { client: 0, fencing: 1, start: t, end: t + Duration::from_millis(1) });
/// h.record(Hold { client: 1, fencing: 2, start: t + Duration::from_millis(2), end: t + Duration::from_millis(3) });
/// assert!(h.check().is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct History {
    holds: Arc<Mutex<Vec<Hold>>>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hold.
    pub fn record(&self, hold: Hold) {
        self.holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hold);
    }

    /// How many holds were recorded.
    pub fn len(&self) -> usize {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All holds, sorted by start.
    pub fn holds(&self) -> Vec<Hold> {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner()).clone();
        holds.sort_by_key(|h| h.start);
        holds
    }

    /// Every violation: overlapping holds and fencing tokens that do not
    /// strictly increase in the order the holds began.
    pub fn violations(&self) -> Vec<Violation> {
        let holds = self.holds();
        let mut found = Vec::new();
        // The hold that ends last among those seen so far.
        let mut latest_end: Option<&Hold> = None;
        for pair in holds.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.fencing <= a.fencing {
                found.push(Violation::FencingNotIncreasing {
                    earlier: (a.client, a.fencing),
                    later: (b.client, b.fencing),
                });
            }
        }
        for h in &holds {
            if let Some(prev) = latest_end {
                if h.start < prev.end {
                    found.push(Violation::Overlap {
                        first: (prev.client, prev.fencing),
                        second: (h.client, h.fencing),
                    });
                }
            }
            if latest_end.is_none_or(|p| h.end > p.end) {
                latest_end = Some(h);
            }
        }
        found
    }

    /// `Ok` when there is no violation, else the first few, described.
    pub fn check(&self) -> Result<(), String> {
        let v = self.violations();
        if v.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = v.iter().take(5).map(|x| x.to_string()).collect();
        Err(format!(
            "{} violation(s) in {} holds: {}",
            v.len(),
            self.len(),
            shown.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn finds_overlap_even_past_a_short_hold() {
        let h = History::new();
        h.record(Hold {
            client: 0,
            fencing: 1,
            start: at(0),
            end: at(100),
        });
        h.record(Hold {
            client: 1,
            fencing: 2,
            start: at(10),
            end: at(20),
        });
        h.record(Hold {
            client: 2,
            fencing: 3,
            start: at(30),
            end: at(40),
        });
        assert_eq!(h.violations().len(), 2);
    }

    #[test]
    fn finds_fencing_going_backwards() {
        let h = History::new();
        h.record(Hold {
            client: 0,
            fencing: 5,
            start: at(0),
            end: at(1),
        });
        h.record(Hold {
            client: 1,
            fencing: 5,
            start: at(2),
            end: at(3),
        });
        assert!(matches!(
            h.violations()[..],
            [Violation::FencingNotIncreasing { .. }]
        ));
    }

    #[test]
    fn clean_history_passes() {
        let h = History::new();
        for i in 0..10 {
            h.record(Hold {
                client: i,
                fencing: i as u64 + 1,
                start: at(i as u64 * 10),
                end: at(i as u64 * 10 + 5),
            });
        }
        assert!(h.check().is_ok());
    }
}
