//! How often a polling waiter tries again.
//!
//! Where the database cannot notify (MySQL/MariaDB, SQLite), exclusive
//! waiters keep places in a queue on the database and only the first of
//! them may take the lock; the lock then passes on as fast as the next
//! waiter looks again. So a waiter starts its delays over (from the
//! acquire options' [`Backoff`]) whenever the line moved since it last
//! looked — someone was granted, or fewer wait ahead of it — and spaces
//! its looks by how many wait ahead of it: the first in line looks
//! soonest, starting from [`FIRST_IN_LINE`] (one cheap read per look, by
//! one waiter per name), so a released lock passes on within about a
//! millisecond. While nothing moves, the delays grow as the backoff says.

use std::time::Duration;

use distlock_core::{Backoff, BackoffDelays};

/// The delays of one waiter.
pub(crate) struct Pace {
    delays: BackoffDelays,
    /// The delays of the first in line.
    first: BackoffDelays,
    /// The name's fencing token and the waiters ahead, when last seen.
    seen: Option<(u64, u64)>,
    /// Waiters ahead, when last seen (0 when it keeps no place).
    ahead: u64,
}

/// The most the number of waiters ahead stretches a delay: a long line
/// still looks within the backoff's own maximum.
const MOST_AHEAD: u32 = 8;

/// The first delay of the first in line (the backoff's own if shorter).
pub(crate) const FIRST_IN_LINE: Duration = Duration::from_millis(1);

impl Pace {
    /// Delays as `backoff` says, until the waiter sees the line move.
    pub fn new(backoff: Backoff) -> Self {
        let first = Backoff {
            initial: backoff.initial.min(FIRST_IN_LINE),
            ..backoff
        };
        Pace {
            delays: backoff.delays(),
            first: first.delays(),
            seen: None,
            ahead: 0,
        }
    }

    /// What an attempt saw: the name's last fencing token and how many
    /// wait ahead. Progress since the last look starts the delays over.
    pub fn saw(&mut self, fence: u64, ahead: u64) {
        if let Some((last_fence, last_ahead)) = self.seen {
            if fence != last_fence || ahead < last_ahead {
                self.delays.reset();
                self.first.reset();
            }
        }
        self.seen = Some((fence, ahead));
        self.ahead = ahead;
    }

    /// How long to wait before the next attempt, at most `bound`.
    pub fn delay(&mut self, bound: Duration) -> Duration {
        if self.seen.is_some() && self.ahead == 0 {
            return self.first.next_delay().min(bound);
        }
        let stretch = u32::try_from(self.ahead)
            .unwrap_or(u32::MAX)
            .min(MOST_AHEAD)
            .saturating_add(1);
        self.delays.next_delay().saturating_mul(stretch).min(bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(4),
            max: Duration::from_millis(400),
            factor: 2.0,
        }
    }

    #[test]
    fn delays_grow_while_nothing_moves_and_start_over_when_it_does() {
        let mut pace = Pace::new(backoff());
        pace.saw(7, 0);
        let long = Duration::from_secs(10);
        let first = pace.delay(long);
        for _ in 0..6 {
            pace.saw(7, 0);
            pace.delay(long);
        }
        pace.saw(7, 0);
        let grown = pace.delay(long);
        assert!(first <= FIRST_IN_LINE, "{first:?}");
        assert!(grown >= Duration::from_millis(32), "{grown:?}");
        pace.saw(8, 0);
        assert!(pace.delay(long) <= FIRST_IN_LINE);
    }

    #[test]
    fn waiters_further_back_look_less_often_and_every_delay_keeps_its_bound() {
        // Not queued: the backoff's own first delay.
        let d = Pace::new(backoff()).delay(Duration::from_secs(10));
        assert!(
            d >= Duration::from_millis(1) && d <= Duration::from_millis(4),
            "{d:?}"
        );
        let mut pace = Pace::new(backoff());
        pace.saw(1, 3);
        let d = pace.delay(Duration::from_secs(10));
        assert!(
            d >= Duration::from_millis(4) && d <= Duration::from_millis(16),
            "{d:?}"
        );
        pace.saw(2, 2);
        assert_eq!(
            pace.delay(Duration::from_micros(50)),
            Duration::from_micros(50)
        );
    }
}
