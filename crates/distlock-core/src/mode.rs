//! Which kind of hold an acquire asks for: the one surface every primitive
//! (mutex, reader-writer lock, semaphore) goes through.

use std::fmt;

/// The kind of hold an acquire asks for.
///
/// Every primitive is a mode of one name: a mutex and a writer hold it
/// [`Exclusive`](Mode::Exclusive)ly, readers hold it [`Shared`](Mode::Shared),
/// a semaphore hands out [`Permit`](Mode::Permit)s. Backends declare which
/// modes they serve in [`Capabilities`](crate::Capabilities); the core layer
/// refuses the others with [`Unsupported`](crate::LockError::Unsupported)
/// before the backend sees the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// One holder at a time (a mutex, or the writer of a reader-writer lock).
    #[default]
    Exclusive,
    /// Any number of holders, none of them exclusive (readers).
    Shared,
    /// At most `limit` holders at once (a semaphore's permits).
    Permit {
        /// How many holders the name admits.
        limit: u32,
    },
}

impl Mode {
    /// The primitive this mode serves, as used in metrics labels and span
    /// fields: `mutex`, `shared` or `semaphore`.
    pub fn primitive(self) -> &'static str {
        match self {
            Mode::Exclusive => "mutex",
            Mode::Shared => "shared",
            Mode::Permit { .. } => "semaphore",
        }
    }

    /// The compact form used in exported leases: `x`, `s` or `p<limit>`.
    pub(crate) fn code(self) -> String {
        match self {
            Mode::Exclusive => "x".into(),
            Mode::Shared => "s".into(),
            Mode::Permit { limit } => format!("p{limit}"),
        }
    }

    /// Reads [`code`](Mode::code)'s form back.
    pub(crate) fn from_code(code: &str) -> Option<Mode> {
        match code {
            "x" => Some(Mode::Exclusive),
            "s" => Some(Mode::Shared),
            _ => code
                .strip_prefix('p')
                .and_then(|n| n.parse().ok())
                .filter(|&limit| limit > 0)
                .map(|limit| Mode::Permit { limit }),
        }
    }
}

/// Whether a new hold fits beside the holds already there: the one
/// compatibility rule every backend implements (in Rust, a script or SQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It may be granted now.
    Fits,
    /// It must wait: an incompatible hold is there, or every permit is taken.
    Waits,
    /// A permit request whose count differs from the count the name's
    /// current holders declared: refused with
    /// [`PermitMismatch`](crate::LockError::PermitMismatch), never granted.
    Mismatch {
        /// The permit count of the holders already there.
        declared: u32,
    },
}

impl Mode {
    /// Whether a hold in this mode fits beside `holders` (the modes of the
    /// holds there now):
    ///
    /// - nothing held: it fits;
    /// - [`Exclusive`](Mode::Exclusive) fits only when nothing is held;
    /// - [`Shared`](Mode::Shared) fits beside shared holds only;
    /// - [`Permit`](Mode::Permit) fits beside permits of the same count
    ///   while fewer than that many are held; a permit of another count is a
    ///   [`Mismatch`](Fit::Mismatch) (two clients disagreeing on a
    ///   semaphore's size is a bug to report, not a size to pick).
    ///
    /// ```
    /// use distlock_core::{Fit, Mode};
    /// let three = Mode::Permit { limit: 3 };
    /// assert_eq!(three.fits([three, three]), Fit::Fits);
    /// assert_eq!(three.fits([three, three, three]), Fit::Waits);
    /// assert_eq!(Mode::Permit { limit: 5 }.fits([three]), Fit::Mismatch { declared: 3 });
    /// assert_eq!(Mode::Shared.fits([Mode::Shared]), Fit::Fits);
    /// assert_eq!(Mode::Exclusive.fits([Mode::Shared]), Fit::Waits);
    /// ```
    pub fn fits(self, holders: impl IntoIterator<Item = Mode>) -> Fit {
        let mut count: u64 = 0;
        let mut conflict = false;
        for held in holders {
            count += 1;
            match (self, held) {
                (Mode::Permit { limit }, Mode::Permit { limit: declared }) if declared != limit => {
                    return Fit::Mismatch { declared }
                }
                (Mode::Shared, Mode::Shared) | (Mode::Permit { .. }, Mode::Permit { .. }) => {}
                _ => conflict = true,
            }
        }
        match self {
            _ if conflict => Fit::Waits,
            Mode::Permit { limit } if count >= u64::from(limit) => Fit::Waits,
            _ => Fit::Fits,
        }
    }

    /// Which of the queued requests `queue` (in arrival order) may be granted
    /// beside `holders`: the longest prefix of the queue whose requests fit
    /// beside the holders and the requests before them. A request never
    /// overtakes an earlier one that must wait, so readers arriving behind a
    /// waiting writer wait too (the writer is not starved), and permits are
    /// handed out in order. Returns how many of the queue's head may go.
    ///
    /// ```
    /// use distlock_core::Mode;
    /// use Mode::{Exclusive as X, Shared as S};
    /// assert_eq!(Mode::admitted(&[S], &[S, S, X, S]), 2);
    /// assert_eq!(Mode::admitted(&[], &[X, S]), 1);
    /// assert_eq!(Mode::admitted(&[S], &[X, S]), 0);
    /// ```
    pub fn admitted(holders: &[Mode], queue: &[Mode]) -> usize {
        let mut all: Vec<Mode> = holders.to_vec();
        for (i, m) in queue.iter().enumerate() {
            if m.fits(all.iter().copied()) != Fit::Fits {
                return i;
            }
            all.push(*m);
        }
        queue.len()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Exclusive => f.write_str("exclusive"),
            Mode::Shared => f.write_str("shared"),
            Mode::Permit { limit } => write!(f, "permit of {limit}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for m in [Mode::Exclusive, Mode::Shared, Mode::Permit { limit: 7 }] {
            assert_eq!(Mode::from_code(&m.code()), Some(m));
        }
        assert_eq!(Mode::from_code("p0"), None);
        assert_eq!(Mode::from_code("q"), None);
    }

    #[test]
    fn exclusive_fits_only_alone() {
        assert_eq!(Mode::Exclusive.fits([]), Fit::Fits);
        assert_eq!(Mode::Exclusive.fits([Mode::Exclusive]), Fit::Waits);
        assert_eq!(Mode::Shared.fits([Mode::Exclusive]), Fit::Waits);
        assert_eq!(Mode::Permit { limit: 2 }.fits([Mode::Shared]), Fit::Waits);
        assert_eq!(Mode::Shared.fits([Mode::Permit { limit: 2 }]), Fit::Waits);
    }

    #[test]
    fn a_queue_is_admitted_in_order() {
        let two = Mode::Permit { limit: 2 };
        assert_eq!(Mode::admitted(&[], &[two, two, two]), 2);
        assert_eq!(Mode::admitted(&[two], &[two, two]), 1);
        assert_eq!(Mode::admitted(&[], &[Mode::Shared, Mode::Exclusive]), 1);
        assert_eq!(Mode::admitted(&[], &[]), 0);
    }
}
