//! The waiting between one request's attempts, on the core's loop
//! ([`notified_acquire`]): for a notification where the database sends
//! them, at the pace of [`Pace`] where it does not.

use std::future::Future;
use std::sync::Mutex;

use distlock_core::sync::lock;
use distlock_core::waiting::{notified_acquire, Attempt};
use distlock_core::{AcquireOptions, Grant, Result};

use super::pace::Pace;
use crate::notify::Subscription;

/// How one request waits.
pub(crate) struct Waits<'a> {
    /// Its wait, ttl and backoff.
    pub options: &'a AcquireOptions,
    /// The name's key.
    pub key: &'a str,
    /// Whether the request is a reader's or a permit's: a wake it got in
    /// on goes on to the next waiter.
    pub shares: bool,
    /// The pace of polling.
    pub pace: &'a Mutex<Pace>,
}

impl Waits<'_> {
    /// Runs `attempt` until it is granted or the wait ends. With a
    /// subscription, the request joins its key's waiters before the first
    /// attempt and waits to be woken (one waiter per release, see
    /// [`notify`](crate::notify)); the subscription learns of each
    /// attempt's start and outcome, so a wake it does not use goes on to
    /// the next waiter. Without one, it polls at [`Pace`]'s delays. Either
    /// way never past `bound`, the time the holders in the way have left
    /// (cut to the caller's deadline).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as long as `attempt` is; dropped, the subscription
    /// leaves its queue and passes on a wake it held.
    pub async fn run<A, F>(
        &self,
        subscription: Option<Subscription>,
        mut attempt: A,
    ) -> Result<Option<Grant>>
    where
        A: FnMut() -> F,
        F: Future<Output = Result<Attempt>>,
    {
        let Some(subscription) = subscription else {
            let pace = self.pace;
            let sleep = |bound| tokio::time::sleep(lock(pace).delay(bound));
            return notified_acquire(self.options, attempt, sleep).await;
        };
        subscription.join(self.key);
        let (s, shares) = (&subscription, self.shares);
        let watched = || {
            let attempting = attempt();
            async move {
                s.attempting();
                let outcome = attempting.await;
                match &outcome {
                    Ok(Attempt::Held { .. }) => s.found_held(),
                    Ok(Attempt::Acquired(_)) => s.granted(shares),
                    // Keeps the wake: dropping the subscription passes it on.
                    Err(_) => {}
                }
                outcome
            }
        };
        notified_acquire(self.options, watched, |bound| s.wait(bound)).await
    }
}
