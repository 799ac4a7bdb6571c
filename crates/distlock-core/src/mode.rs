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
}
