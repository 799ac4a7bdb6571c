//! How long to hold, how long to wait, and how to back off while waiting.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};

/// How long [`acquire`](crate::DistributedLock::acquire) may wait for a held lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wait {
    /// Try once and return at once.
    #[default]
    NoWait,
    /// Wait up to this long.
    For(Duration),
    /// Wait until the lock is acquired (or the future is dropped).
    Forever,
}

impl Wait {
    /// The instant after which waiting stops, given when waiting started.
    /// `None` means never.
    pub fn deadline(&self, start: Instant) -> Option<Instant> {
        match self {
            Wait::NoWait => Some(start),
            Wait::For(d) => Some(start.checked_add(*d).unwrap_or(start + MAX_WAIT)),
            Wait::Forever => None,
        }
    }

    /// The wait as a duration, `None` for forever.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Wait::NoWait => Some(Duration::ZERO),
            Wait::For(d) => Some(*d),
            Wait::Forever => None,
        }
    }
}

/// The ttl of [`AcquireOptions::default()`] and of a default [`LockClient`](crate::LockClient).
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The wait of [`AcquireOptions::default()`] and [`AcquireOptions::new`], and
/// so of `LockClient::lock` unless the client was given other defaults.
pub const DEFAULT_WAIT: Wait = Wait::For(Duration::from_secs(30));

/// Longest finite wait accepted (use [`Wait::Forever`] beyond it).
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Exponential backoff with full jitter, for backends that must poll.
///
/// Each delay is drawn uniformly from `[min, current]`, where `current`
/// starts at `initial` and grows by `factor` up to `max`. Backends also cap
/// each sleep by the holder's remaining ttl and the caller's deadline.
///
/// ```
/// use std::time::Duration;
/// use distlock_core::Backoff;
/// let backoff = Backoff::default();
/// let mut delays = backoff.delays();
/// let first = delays.next_delay();
/// assert!(first <= backoff.initial);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first (largest possible) delay.
    pub initial: Duration,
    /// The cap on any delay.
    pub max: Duration,
    /// Growth per attempt (>= 1.0).
    pub factor: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(200),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// A fresh sequence of delays.
    pub fn delays(&self) -> BackoffDelays {
        BackoffDelays {
            policy: *self,
            current: self.initial,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.initial.is_zero() || self.max.is_zero() {
            return Err(LockError::invalid_options(
                "backoff delays must be positive",
            ));
        }
        if self.initial > self.max {
            return Err(LockError::invalid_options(
                "backoff initial delay must not exceed its max",
            ));
        }
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(LockError::invalid_options(
                "backoff factor must be a finite number >= 1.0",
            ));
        }
        Ok(())
    }
}

/// An iterator-like source of jittered delays; see [`Backoff`].
#[derive(Clone, Debug)]
pub struct BackoffDelays {
    policy: Backoff,
    current: Duration,
}

impl BackoffDelays {
    /// The next delay, jittered, never above the policy's max.
    pub fn next_delay(&mut self) -> Duration {
        let upper = self.current.min(self.policy.max);
        let lower = upper / 4;
        let nanos = rand::thread_rng().gen_range(lower.as_nanos()..=upper.as_nanos());
        let next = self.current.mul_f64(self.policy.factor);
        self.current = next.min(self.policy.max);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Starts over from the initial delay (after progress was made).
    pub fn reset(&mut self) {
        self.current = self.policy.initial;
    }
}

/// Options for one acquire.
///
/// ```
/// use std::time::Duration;
/// use distlock_core::{AcquireOptions, Wait};
/// let opts = AcquireOptions::new(Duration::from_secs(10)).with_wait(Wait::For(Duration::from_secs(2)));
/// assert_eq!(opts.ttl, Duration::from_secs(10));
/// assert_eq!(AcquireOptions::default().wait, distlock_core::DEFAULT_WAIT);
/// assert_eq!(AcquireOptions::try_once(Duration::from_secs(1)).wait, Wait::NoWait);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub struct AcquireOptions {
    /// How long the lease lasts unless extended. For session-based backends
    /// (ZooKeeper, etcd) it is the validity the lease reports; liveness comes
    /// from the session.
    pub ttl: Duration,
    /// How long to wait for a held lock.
    pub wait: Wait,
    /// Backoff for backends that poll (ignored by those that are notified).
    pub backoff: Backoff,
    /// Lock-at-least-for: once acquired, the lock stays held at least this
    /// long, even when released earlier — released early, the hold is kept
    /// on the server (not by this process) until this long after the
    /// acquire returned. `None` (the default): a release frees at once.
    /// At most the ttl (a holder that crashes frees the lock at its ttl,
    /// so a longer minimum could not be kept); backends claim it with
    /// [`Capabilities::at_least`].
    pub at_least: Option<Duration>,
}

impl Default for AcquireOptions {
    /// [`DEFAULT_TTL`], [`DEFAULT_WAIT`], the default backoff.
    fn default() -> Self {
        AcquireOptions {
            ttl: DEFAULT_TTL,
            wait: DEFAULT_WAIT,
            backoff: Backoff::default(),
            at_least: None,
        }
    }
}

impl AcquireOptions {
    /// Options with this ttl, the default wait ([`DEFAULT_WAIT`]) and backoff.
    pub fn new(ttl: Duration) -> Self {
        AcquireOptions {
            ttl,
            ..Default::default()
        }
    }

    /// Options with this ttl that try once and do not wait.
    pub fn try_once(ttl: Duration) -> Self {
        Self::new(ttl).with_wait(Wait::NoWait)
    }

    /// Sets the ttl.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long to wait.
    pub fn with_wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the backoff policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Lock-at-least-for: a release before `minimum` has passed since the
    /// acquire keeps the lock held (on the server) until then — for
    /// scheduled jobs that must not run twice within an interval, even
    /// when a run finishes early. A zero `minimum` is no minimum.
    ///
    /// ```
    /// use std::time::Duration;
    /// use distlock_core::AcquireOptions;
    /// let opts = AcquireOptions::new(Duration::from_secs(60)).with_at_least(Duration::from_secs(30));
    /// assert_eq!(opts.at_least, Some(Duration::from_secs(30)));
    /// assert_eq!(opts.with_at_least(Duration::ZERO).at_least, None);
    /// ```
    pub fn with_at_least(mut self, minimum: Duration) -> Self {
        self.at_least = (!minimum.is_zero()).then_some(minimum);
        self
    }

    /// Checks these options against a backend's limits.
    ///
    /// The core's checked layer calls this before a backend sees an
    /// acquire; a zero ttl, a ttl
    /// outside `[caps.min_ttl, caps.max_ttl]`, an absurd wait, a malformed
    /// backoff or an `at_least` longer than the ttl is an
    /// [`InvalidOptions`](LockError::InvalidOptions) error.
    pub fn validate(&self, caps: &Capabilities) -> Result<()> {
        validate_ttl(self.ttl, caps)?;
        if let Some(minimum) = self.at_least {
            if minimum > self.ttl {
                return Err(LockError::invalid_options(format!(
                    "at_least {minimum:?} exceeds the ttl {:?}: a holder that crashes frees the lock at its ttl, so the minimum could not be kept",
                    self.ttl
                )));
            }
        }
        if let Wait::For(d) = self.wait {
            if d > MAX_WAIT {
                return Err(LockError::invalid_options(format!(
                    "wait {d:?} exceeds the maximum of {MAX_WAIT:?}; use Wait::Forever"
                )));
            }
        }
        self.backoff.validate()
    }
}

/// Checks a ttl (for acquire or extend) against a backend's limits.
pub fn validate_ttl(ttl: Duration, caps: &Capabilities) -> Result<()> {
    if ttl.is_zero() {
        return Err(LockError::invalid_options("ttl must be greater than zero"));
    }
    if ttl < caps.min_ttl {
        return Err(LockError::invalid_options(format!(
            "ttl {ttl:?} is below this backend's minimum of {:?}",
            caps.min_ttl
        )));
    }
    if ttl > caps.max_ttl {
        return Err(LockError::invalid_options(format!(
            "ttl {ttl:?} exceeds this backend's maximum of {:?}",
            caps.max_ttl
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_ttl_is_refused() {
        let caps = Capabilities::default();
        let err = AcquireOptions::new(Duration::ZERO)
            .validate(&caps)
            .unwrap_err();
        assert!(matches!(err, LockError::InvalidOptions { .. }), "{err}");
    }

    #[test]
    fn ttl_outside_backend_range_is_refused() {
        let caps = Capabilities {
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(10),
            ..Default::default()
        };
        assert!(AcquireOptions::new(Duration::from_millis(10))
            .validate(&caps)
            .is_err());
        assert!(AcquireOptions::new(Duration::from_secs(11))
            .validate(&caps)
            .is_err());
        assert!(AcquireOptions::new(Duration::from_secs(5))
            .validate(&caps)
            .is_ok());
    }

    #[test]
    fn bad_backoff_is_refused() {
        let caps = Capabilities::default();
        let mut opts = AcquireOptions::default();
        opts.backoff.factor = f64::NAN;
        assert!(opts.validate(&caps).is_err());
        opts.backoff = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(1),
            factor: 2.0,
        };
        assert!(opts.validate(&caps).is_err());
    }

    #[test]
    fn backoff_delays_stay_within_bounds() {
        let policy = Backoff::default();
        let mut d = policy.delays();
        for _ in 0..100 {
            assert!(d.next_delay() <= policy.max);
        }
    }

    #[test]
    fn a_minimum_longer_than_the_ttl_is_refused() {
        let caps = Capabilities::default();
        let ttl = Duration::from_secs(5);
        let opts = AcquireOptions::new(ttl).with_at_least(ttl);
        assert!(opts.validate(&caps).is_ok());
        let err = opts
            .with_at_least(ttl + Duration::from_millis(1))
            .validate(&caps)
            .unwrap_err();
        assert!(matches!(err, LockError::InvalidOptions { .. }), "{err}");
    }

    #[test]
    fn huge_finite_wait_is_refused() {
        let opts = AcquireOptions::default().with_wait(Wait::For(Duration::MAX));
        assert!(opts.validate(&Capabilities::default()).is_err());
    }
}
