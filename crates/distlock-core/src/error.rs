//! The one error type every backend and the client speak.
//!
//! Errors carry context (which backend, which lock) but never secrets: backends
//! build their messages from redacted URLs (see [`redact_url`](crate::redact_url)).

use std::time::Duration;

/// Result alias used across distlock.
pub type Result<T, E = LockError> = std::result::Result<T, E>;

/// A boxed error from a client library (redis, sqlx, …), kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong when taking, keeping or giving back a lock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock was not acquired within the time the caller allowed.
    ///
    /// [`DistributedLock::acquire`](crate::DistributedLock::acquire) reports this
    /// as `Ok(None)`; the client's `lock()` turns it into this error.
    #[error("lock `{name}` was not acquired within {waited:?}")]
    Timeout {
        /// The lock name.
        name: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The lock is held by someone else and the caller asked not to wait
    /// ([`Wait::NoWait`](crate::Wait::NoWait)). Not transient: it is an
    /// answer, not a failure.
    #[error("lock `{name}` is held by another owner")]
    Held {
        /// The lock name.
        name: String,
    },

    /// The lease is not (or no longer) held by its owner: it expired, was
    /// released, or another owner holds the lock now. Extending or releasing it
    /// is refused.
    #[error("lock `{name}` is not held by this lease")]
    NotHeld {
        /// The lock name.
        name: String,
    },

    /// A semaphore request declared a different permit count than the
    /// holders of that name did: two clients disagree on the semaphore's
    /// size. Refused rather than guessed, so a name never admits more
    /// holders than any of its users expects.
    #[error(
        "semaphore `{name}` is held with {declared} permits; this request declared {requested}"
    )]
    PermitMismatch {
        /// The lock name.
        name: String,
        /// The count its current holders declared.
        declared: u32,
        /// The count this request declared.
        requested: u32,
    },

    /// The lock name is not acceptable.
    #[error("invalid lock name: {reason}")]
    InvalidName {
        /// Why the name was refused.
        reason: String,
    },

    /// Acquire options (ttl, wait, backoff) are out of range for this backend.
    #[error("invalid options: {reason}")]
    InvalidOptions {
        /// Why the options were refused.
        reason: String,
    },

    /// A connection URL or configuration value could not be used.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong (URLs in it are redacted).
        reason: String,
    },

    /// An exported lease string could not be read back.
    #[error("invalid exported lease: {reason}")]
    InvalidLease {
        /// What is wrong with it.
        reason: String,
    },

    /// The backend cannot currently serve the request (server down, no quorum,
    /// session expired, deadline passed while connecting).
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Backend name (`redis`, `zookeeper`, …).
        backend: &'static str,
        /// What is unavailable (no secrets).
        reason: String,
    },

    /// The backend's client library or server reported an error.
    #[error("{backend} error: {context}")]
    Backend {
        /// Backend name (`redis`, `zookeeper`, …).
        backend: &'static str,
        /// What distlock was doing (no secrets).
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The backend does not support this operation.
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// The refused operation.
        operation: &'static str,
    },
}

impl LockError {
    /// Builds an [`InvalidOptions`](LockError::InvalidOptions) error.
    pub fn invalid_options(reason: impl Into<String>) -> Self {
        LockError::InvalidOptions {
            reason: reason.into(),
        }
    }

    /// Builds an [`InvalidConfig`](LockError::InvalidConfig) error.
    pub fn invalid_config(reason: impl Into<String>) -> Self {
        LockError::InvalidConfig {
            reason: reason.into(),
        }
    }

    /// Builds a [`Backend`](LockError::Backend) error from a client error.
    pub fn backend(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        LockError::Backend {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }

    /// Builds an [`Unavailable`](LockError::Unavailable) error.
    pub fn unavailable(backend: &'static str, reason: impl Into<String>) -> Self {
        LockError::Unavailable {
            backend,
            reason: reason.into(),
        }
    }

    /// Builds a [`NotHeld`](LockError::NotHeld) error for a lock name.
    pub fn not_held(name: impl Into<String>) -> Self {
        LockError::NotHeld { name: name.into() }
    }

    /// True when the error says the lease is gone for good (as opposed to a
    /// transient failure worth retrying).
    pub fn is_not_held(&self) -> bool {
        matches!(self, LockError::NotHeld { .. })
    }

    /// True when retrying later may succeed (server down, timeouts, transport).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LockError::Unavailable { .. } | LockError::Backend { .. } | LockError::Timeout { .. }
        )
    }
}
