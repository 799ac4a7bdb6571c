//! The one error type of fenced writes, and the checks every store makes
//! on its input before it reaches a server.

use distlock_core::{BoxError, FencingToken, LockName};

/// A write refused because its fencing token is lower than the highest
/// token the store already recorded for the resource: a newer holder of
/// the lock has written since this holder's token was handed out. Nothing was
/// changed.
///
/// The holder that gets this has lost its lock (whatever it believes): it
/// must stop writing, and redo its work under a new lock if the work still
/// needs doing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "write to `{resource}` refused: fencing token {offered} is lower than {recorded}, \
     the highest recorded for it"
)]
pub struct StaleToken {
    /// The resource written to.
    pub resource: String,
    /// The token the refused write carried.
    pub offered: FencingToken,
    /// The highest token the store had recorded for the resource when it
    /// refused (on SQL stores, read just after the refusal: it can only
    /// have risen since).
    pub recorded: FencingToken,
}

/// Everything that can go wrong with a fenced write or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FenceError {
    /// The write carried a token lower than the highest recorded: refused,
    /// nothing changed. The answer the fence exists for, not a failure of
    /// the store.
    #[error(transparent)]
    Stale(#[from] StaleToken),

    /// [`add`](crate::FencedStore::add) on a value that is not a decimal
    /// 64-bit integer (as Redis `INCRBY` reads it: no sign other than `-`,
    /// no leading zeros, no spaces). Nothing changed, no token recorded.
    #[error("`{resource}` does not hold a decimal 64-bit integer, so nothing can be added to it")]
    NotAnInteger {
        /// The resource.
        resource: String,
    },

    /// [`add`](crate::FencedStore::add) would take the value past the
    /// 64-bit range. Nothing changed, no token recorded.
    #[error("adding {delta} to `{resource}` would overflow a 64-bit integer")]
    Overflow {
        /// The resource.
        resource: String,
        /// The amount that did not fit.
        delta: i64,
    },

    /// A fenced update of a table of yours
    /// (`sql::FencedUpdate`) found no row with the
    /// key: nothing was written.
    #[error("nothing to update: {what}")]
    NotFound {
        /// Which row was missing.
        what: String,
    },

    /// The resource name is not acceptable (empty, too long, or with a NUL
    /// character).
    #[error("invalid resource name: {reason}")]
    InvalidResource {
        /// Why it was refused.
        reason: String,
    },

    /// Bad input other than a resource name: a table or column name that
    /// is not a plain identifier, a store URL that cannot be used (shown
    /// without its password), a token a store cannot hold.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },

    /// The store's client library or server reported an error, or did not
    /// answer in time. Whether the write happened is not known unless the
    /// context says so; a retry of a [`set`](crate::FencedStore::set) with
    /// the same token and value is harmless, a retry of an
    /// [`add`](crate::FencedStore::add) may add twice.
    #[error("{store} error: {context}")]
    Store {
        /// The store (`redis`, `sqlite`, `postgres`, `mysql`, …).
        store: &'static str,
        /// What was being done (no secrets).
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl FenceError {
    /// True when the write was refused for its stale token.
    pub fn is_stale(&self) -> bool {
        matches!(self, FenceError::Stale(_))
    }

    /// The refusal, when the write was refused for its stale token.
    pub fn stale(&self) -> Option<&StaleToken> {
        match self {
            FenceError::Stale(stale) => Some(stale),
            _ => None,
        }
    }

    /// Builds a [`Store`](FenceError::Store) error.
    pub fn store(
        store: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        FenceError::Store {
            store,
            context: context.into(),
            source: source.into(),
        }
    }

    /// Builds an [`InvalidInput`](FenceError::InvalidInput) error.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        FenceError::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Builds the refusal of `offered` by a store that recorded `recorded`
    /// for `resource`.
    pub fn stale_token(resource: &str, offered: FencingToken, recorded: FencingToken) -> Self {
        FenceError::Stale(StaleToken {
            resource: resource.to_string(),
            offered,
            recorded,
        })
    }
}

/// The longest resource name, in bytes: the longest lock name, so a lock's
/// name can always serve as the name of the resource it protects.
pub const MAX_RESOURCE_LEN: usize = LockName::MAX_LEN;

/// Checks a resource name: non-empty, at most [`MAX_RESOURCE_LEN`] bytes,
/// no NUL character. Any other text is allowed; every store keeps it as
/// data (a bound parameter, a key), never as statement or script text.
///
/// # Errors
///
/// [`FenceError::InvalidResource`] saying which rule the name breaks.
pub fn check_resource(resource: &str) -> Result<(), FenceError> {
    let reason = if resource.is_empty() {
        "a resource name must not be empty".to_string()
    } else if resource.len() > MAX_RESOURCE_LEN {
        format!(
            "a resource name must be at most {MAX_RESOURCE_LEN} bytes, got {}",
            resource.len()
        )
    } else if resource.contains('\0') {
        "a resource name must not contain a NUL character".to_string()
    } else {
        return Ok(());
    };
    Err(FenceError::InvalidResource { reason })
}

/// The value as a counter, when it is the canonical decimal form of an
/// `i64` (what Redis `INCRBY` accepts); an absent value counts as 0.
pub(crate) fn counter_of(value: Option<&[u8]>) -> Option<i64> {
    let Some(bytes) = value else {
        return Some(0);
    };
    let text = std::str::from_utf8(bytes).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_checked() {
        assert!(check_resource("contribution-total").is_ok());
        assert!(check_resource("{braces} and 'quotes'; DROP TABLE x").is_ok());
        assert!(check_resource(&"r".repeat(MAX_RESOURCE_LEN)).is_ok());
        for bad in [
            String::new(),
            "a\0b".into(),
            "r".repeat(MAX_RESOURCE_LEN + 1),
        ] {
            assert!(matches!(
                check_resource(&bad),
                Err(FenceError::InvalidResource { .. })
            ));
        }
    }

    #[test]
    fn counters_are_canonical_decimal_integers() {
        assert_eq!(counter_of(None), Some(0));
        assert_eq!(counter_of(Some(b"42")), Some(42));
        assert_eq!(counter_of(Some(b"-7")), Some(-7));
        assert_eq!(
            counter_of(Some(i64::MIN.to_string().as_bytes())),
            Some(i64::MIN)
        );
        for bad in [
            &b""[..],
            b"012",
            b"+1",
            b" 1",
            b"1.0",
            b"-0",
            b"abc",
            b"\xff",
        ] {
            assert_eq!(counter_of(Some(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn a_refusal_names_both_tokens() {
        let err = FenceError::stale_token("r", FencingToken(3), FencingToken(5));
        assert!(err.is_stale());
        assert_eq!(
            err.stale().map(|s| (s.offered, s.recorded)),
            Some((FencingToken(3), FencingToken(5)))
        );
        assert!(err.to_string().contains("token 3 is lower than 5"));
    }
}
