//! The one rule for how long a lease can be trusted.
//!
//! A backend reports *when it sent* the request that granted (or extended) a
//! lease. The server's countdown cannot have started before that instant, so
//! the lease is valid on this process's monotonic clock until
//!
//! ```text
//! valid_until = sent + ttl − drift(ttl),   drift(ttl) = ttl / 100 + 2 ms
//! ```
//!
//! The drift allowance covers the server's clock running up to 1 % faster
//! than ours plus a little scheduling slack; it saturates, so a ttl shorter
//! than its own drift gives a lease that is already expired rather than an
//! overflow. Every backend's leases go through [`valid_until`]: the core
//! layer applies it to each grant and renewal, and session backends use it
//! for their session's own bound. The same allowance, the other way round,
//! sizes the hold a server keeps for a lock-at-least-for minimum
//! ([`server_hold`]).

use std::time::{Duration, Instant};

/// Fixed part of the drift allowance.
pub const DRIFT_FLOOR: Duration = Duration::from_millis(2);

/// The clock-drift allowance for a ttl: 1 % of it plus [`DRIFT_FLOOR`].
///
/// ```
/// use std::time::Duration;
/// use distlock_core::validity::drift;
/// assert_eq!(drift(Duration::from_secs(10)), Duration::from_millis(102));
/// ```
pub fn drift(ttl: Duration) -> Duration {
    ttl / 100 + DRIFT_FLOOR
}

/// Until when a lease granted for `ttl` by a request sent at `sent` can be
/// trusted: `sent + ttl − drift(ttl)`, never before `sent`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use distlock_core::validity::valid_until;
/// let sent = Instant::now();
/// assert_eq!(valid_until(sent, Duration::from_secs(1)), sent + Duration::from_millis(988));
/// assert_eq!(valid_until(sent, Duration::from_millis(1)), sent);
/// ```
pub fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    let trusted = ttl.saturating_sub(drift(ttl));
    sent.checked_add(trusted).unwrap_or(sent)
}

/// How long a server must keep a hold so that it lasts at least `minimum`
/// on this process's clock: `minimum + drift(minimum)` (the server's clock
/// may run up to 1 % fast, and the request takes time to arrive only after
/// `minimum` was measured). The core asks a backend to keep a released
/// lock this long when its lock-at-least-for time has not passed yet.
///
/// ```
/// use std::time::Duration;
/// use distlock_core::validity::server_hold;
/// assert_eq!(server_hold(Duration::from_secs(10)), Duration::from_millis(10_102));
/// ```
pub fn server_hold(minimum: Duration) -> Duration {
    minimum.saturating_add(drift(minimum))
}
