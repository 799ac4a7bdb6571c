//! Lines of waiters that stay short when waiters die.
//!
//! A backend with a queue of its own (etcd keys, ZooKeeper sequential nodes,
//! a table's queue rows, a Redis list) keeps a place for every waiter. A
//! waiter that dies in line must not hold the others up for a holder's ttl
//! or a session timeout: it costs the line at most its **waiter-liveness
//! window** (`waiter_timeout`, [`DEFAULT_WAITER_TIMEOUT`]), whatever the
//! holder's ttl. This module holds the parts of that rule every such
//! backend shares:
//!
//! - the window's default and bounds ([`check_waiter_timeout`]);
//! - the *waiting mark* a queued entry carries until it claims its turn
//!   ([`waiting_mark`], [`window_of_mark`]);
//! - *handing a turn on* ([`hand_on`], [`Lookout`]): the entries whose turn
//!   came must claim it within the window their mark carries; one that does
//!   not is passed over. The backend says how to read its line and how to
//!   pass an entry over ([`Line`]).

mod hand_on;

use std::time::Duration;

use crate::error::{LockError, Result};

pub use hand_on::{hand_on, Due, Head, Line, Lookout};

/// The waiter-liveness window unless configured: a waiter that died in
/// line holds the others up this long at most.
pub const DEFAULT_WAITER_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest window a configuration may give: below it a live waiter
/// that is merely slow (a busy server, a GC pause) would be passed over.
pub const MIN_WAITER_TIMEOUT: Duration = Duration::from_millis(30);

/// The longest window a configuration may give, and the longest a mark is
/// taken to carry whatever another client wrote.
pub const MAX_WAITER_TIMEOUT: Duration = Duration::from_secs(3600);

/// Checks a configured waiter-liveness window (`waiter_timeout`).
///
/// # Errors
///
/// [`LockError::InvalidConfig`] outside [`MIN_WAITER_TIMEOUT`] to
/// [`MAX_WAITER_TIMEOUT`].
pub fn check_waiter_timeout(window: Duration) -> Result<()> {
    if (MIN_WAITER_TIMEOUT..=MAX_WAITER_TIMEOUT).contains(&window) {
        return Ok(());
    }
    Err(LockError::invalid_config(format!(
        "`waiter_timeout` (the waiter-liveness window) must be from \
         {MIN_WAITER_TIMEOUT:?} to {MAX_WAITER_TIMEOUT:?}, got {window:?}"
    )))
}

/// The value a waiting entry carries until it claims its turn: the byte
/// `tag` (one no holder's value starts with), then `window` in
/// milliseconds as decimal digits.
pub fn waiting_mark(tag: u8, window: Duration) -> Vec<u8> {
    let mut value = vec![tag];
    value.extend_from_slice(window.as_millis().to_string().as_bytes());
    value
}

/// The window a waiting entry's value carries ([`waiting_mark`] with the
/// same `tag`), at most [`MAX_WAITER_TIMEOUT`]; `None` for any other value
/// (a holder's).
pub fn window_of_mark(tag: u8, value: &[u8]) -> Option<Duration> {
    let millis = value.strip_prefix(&[tag])?;
    let millis: u64 = std::str::from_utf8(millis).ok()?.parse().ok()?;
    Some(Duration::from_millis(millis).min(MAX_WAITER_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_its_window_and_nothing_else_is_a_mark() {
        let mark = waiting_mark(1, Duration::from_millis(250));
        assert_eq!(window_of_mark(1, &mark), Some(Duration::from_millis(250)));
        assert_eq!(window_of_mark(2, &mark), None);
        assert_eq!(window_of_mark(1, b"0123abcd"), None);
        assert_eq!(window_of_mark(1, &[1, b'x']), None);
        assert_eq!(window_of_mark(1, &[]), None);
    }

    #[test]
    fn a_mark_never_carries_more_than_the_longest_window() {
        let mark = waiting_mark(0xff, Duration::from_secs(1_000_000));
        assert_eq!(window_of_mark(0xff, &mark), Some(MAX_WAITER_TIMEOUT));
    }

    #[test]
    fn windows_outside_the_bounds_are_refused() {
        assert!(check_waiter_timeout(DEFAULT_WAITER_TIMEOUT).is_ok());
        assert!(check_waiter_timeout(MIN_WAITER_TIMEOUT).is_ok());
        assert!(check_waiter_timeout(MAX_WAITER_TIMEOUT).is_ok());
        let short = check_waiter_timeout(Duration::from_millis(29)).unwrap_err();
        assert!(short.to_string().contains("waiter_timeout"), "{short}");
        assert!(check_waiter_timeout(MAX_WAITER_TIMEOUT + Duration::from_millis(1)).is_err());
    }
}
