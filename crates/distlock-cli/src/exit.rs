//! Exit codes of `distlock`.
//!
//! | code | meaning |
//! |---|---|
//! | the command's own | the lock was held for the whole run; the command's status is passed through |
//! | 128 + N | the command was killed by signal N (while the lock was held) |
//! | 1 | `chaos` found a safety violation (overlapping holders, a falling token, a stale write accepted, a loss not signalled) |
//! | 2 | bad usage (unknown flag, malformed duration) |
//! | 69 | the backend is unavailable (server down, no quorum, …) |
//! | 70 | internal error |
//! | 75 | the lock was not acquired (held by someone else within `--wait`) |
//! | 77 | the lock was lost while the command ran; the command was stopped |
//! | 78 | bad configuration: URL, lock name, ttl |
//! | 126 | the command could not be executed |
//! | 127 | the command was not found |

use distlock::LockError;

/// Success.
pub const OK: u8 = 0;
/// A chaos run found a safety violation.
#[cfg(feature = "sqlite")]
pub const VIOLATION: u8 = 1;
/// Bad usage (what the argument parser itself exits with).
pub const USAGE: u8 = 2;
/// Backend unavailable.
pub const UNAVAILABLE: u8 = 69;
/// Internal error.
pub const SOFTWARE: u8 = 70;
/// Lock not acquired.
pub const NOT_ACQUIRED: u8 = 75;
/// Lock lost while the command ran.
pub const LOST: u8 = 77;
/// Bad configuration.
pub const CONFIG: u8 = 78;
/// Command not executable.
pub const COMMAND_NOT_EXECUTABLE: u8 = 126;
/// Command not found.
pub const COMMAND_NOT_FOUND: u8 = 127;

/// The exit code for a library error: not acquired (`Timeout`, or `Held`
/// after a zero wait), bad configuration, or the backend unavailable.
pub fn of_error(e: &LockError) -> u8 {
    match e {
        LockError::InvalidName { .. }
        | LockError::InvalidOptions { .. }
        | LockError::InvalidConfig { .. }
        | LockError::InvalidLease { .. }
        | LockError::PermitMismatch { .. }
        | LockError::Unsupported { .. } => CONFIG,
        LockError::Timeout { .. } | LockError::Held { .. } => NOT_ACQUIRED,
        _ => UNAVAILABLE,
    }
}

/// The exit code that reports a child's status.
pub fn of_child(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(SOFTWARE);
    }
    match status.signal() {
        Some(sig) => u8::try_from(128 + sig).unwrap_or(SOFTWARE),
        None => SOFTWARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn not_acquired_covers_held_and_timeout() {
        let held = LockError::Held { name: "j".into() };
        let timeout = LockError::Timeout {
            name: "j".into(),
            waited: Duration::from_secs(1),
        };
        assert_eq!(of_error(&held), NOT_ACQUIRED);
        assert_eq!(of_error(&timeout), NOT_ACQUIRED);
        assert_eq!(of_error(&LockError::invalid_config("x")), CONFIG);
        assert_eq!(
            of_error(&LockError::unavailable("redis", "down")),
            UNAVAILABLE
        );
        assert_eq!(of_error(&LockError::not_held("j")), UNAVAILABLE);
    }
}
