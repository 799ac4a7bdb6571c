//! The shared waiting loop for backends without a queue of their own.
//!
//! A backend supplies one *attempt* (a single try that either takes the lock
//! or reports how long the current holder still has) and, where it has one, a
//! *notification* to wait on (Redis pub/sub, PostgreSQL LISTEN). The loop
//! retries until the caller's wait runs out, never sleeping past the holder's
//! remaining ttl, so a crashed holder costs no more than its ttl.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::layer::Grant;
use crate::options::AcquireOptions;

/// What one acquire attempt found.
#[derive(Debug)]
pub enum Attempt {
    /// The lock was taken.
    Acquired(Grant),
    /// Someone holds it; `remaining` is how long their lease still runs, if
    /// the backend knows.
    Held {
        /// The holder's remaining ttl.
        remaining: Option<Duration>,
    },
}

/// Retries `attempt` with jittered backoff until acquired or the wait ends.
///
/// Each sleep is the next backoff delay, capped by the holder's remaining ttl
/// and the caller's deadline. With [`Wait::NoWait`](crate::Wait::NoWait) it
/// tries exactly once.
///
/// # Cancel safety
///
/// Cancel safe as long as `attempt` is: between attempts nothing is held.
pub async fn poll_acquire<A, F>(options: &AcquireOptions, attempt: A) -> Result<Option<Grant>>
where
    A: FnMut() -> F,
    F: Future<Output = Result<Attempt>>,
{
    let mut backoff = options.backoff.delays();
    acquire_loop(options, attempt, move |bound| {
        let delay = backoff.next_delay().min(bound);
        tokio::time::sleep(delay)
    })
    .await
}

/// Retries `attempt` each time `notified(bound)` returns, until acquired or the
/// wait ends.
///
/// `notified(bound)` must resolve on the backend's release notification or
/// after `bound` at the latest (the holder's remaining ttl, capped by the
/// caller's deadline). Subscribe to the notification *before* the first
/// attempt so a release between attempt and wait is not missed.
///
/// # Cancel safety
///
/// Cancel safe as long as `attempt` and `notified` are.
pub async fn notified_acquire<A, F, N, W>(
    options: &AcquireOptions,
    attempt: A,
    notified: N,
) -> Result<Option<Grant>>
where
    A: FnMut() -> F,
    F: Future<Output = Result<Attempt>>,
    N: FnMut(Duration) -> W,
    W: Future<Output = ()>,
{
    acquire_loop(options, attempt, notified).await
}

/// The least time one request to a server gets, even when the caller's
/// deadline is nearer or already past: a try-once acquire still needs its
/// round trips, and a busy but healthy server must not be reported as down.
pub const MIN_REQUEST_TIME: Duration = Duration::from_secs(1);

/// How long one request may take: the backend's request `timeout`, cut to
/// the time left before the caller's `deadline`, but never below
/// [`MIN_REQUEST_TIME`] (itself capped by `timeout`). Every backend bounds
/// its round trips with it, so a server that does not answer costs the
/// caller at most its wait (or one short request past it).
///
/// ```
/// use std::time::{Duration, Instant};
/// use distlock_core::waiting::request_bound;
/// let timeout = Duration::from_secs(5);
/// assert_eq!(request_bound(timeout, None), timeout);
/// assert_eq!(request_bound(timeout, Some(Instant::now())), Duration::from_secs(1));
/// assert_eq!(request_bound(Duration::from_millis(300), Some(Instant::now())), Duration::from_millis(300));
/// ```
pub fn request_bound(timeout: Duration, deadline: Option<Instant>) -> Duration {
    match deadline {
        None => timeout,
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .max(MIN_REQUEST_TIME.min(timeout))
            .min(timeout),
    }
}

/// Longest single wait when the holder's remaining ttl is unknown.
const UNKNOWN_HOLDER_BOUND: Duration = Duration::from_millis(500);

async fn acquire_loop<A, F, N, W>(
    options: &AcquireOptions,
    mut attempt: A,
    mut wait: N,
) -> Result<Option<Grant>>
where
    A: FnMut() -> F,
    F: Future<Output = Result<Attempt>>,
    N: FnMut(Duration) -> W,
    W: Future<Output = ()>,
{
    let deadline = options.wait.deadline(Instant::now());
    loop {
        let remaining = match attempt().await? {
            Attempt::Acquired(grant) => return Ok(Some(grant)),
            Attempt::Held { remaining } => remaining,
        };
        let now = Instant::now();
        let mut bound = remaining
            .map(|r| r + Duration::from_millis(1))
            .unwrap_or(UNKNOWN_HOLDER_BOUND);
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Ok(None);
            }
            bound = bound.min(deadline - now);
        }
        wait(bound).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Wait;

    #[tokio::test]
    async fn no_wait_tries_exactly_once() {
        let mut calls = 0;
        let opts = AcquireOptions::try_once(Duration::from_secs(1));
        let got = poll_acquire(&opts, || {
            calls += 1;
            async { Ok(Attempt::Held { remaining: None }) }
        })
        .await
        .unwrap();
        assert!(got.is_none());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn waits_until_the_deadline_then_gives_up() {
        let opts = AcquireOptions::default().with_wait(Wait::For(Duration::from_millis(120)));
        let start = Instant::now();
        let got = poll_acquire(&opts, || async {
            Ok(Attempt::Held {
                remaining: Some(Duration::from_secs(10)),
            })
        })
        .await
        .unwrap();
        assert!(got.is_none());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }
}
