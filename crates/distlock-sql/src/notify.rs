//! Release notifications, fanned out to the waiters of one backend.
//!
//! A database that can notify (PostgreSQL's `LISTEN`/`NOTIFY`) runs one
//! listener that sends a [`Wake`] per release it hears; every waiting
//! acquire holds a [`Subscription`] and retries when its key is released,
//! or when notifications may have been missed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

/// What the listener passes to waiters.
#[derive(Clone, Debug)]
pub(crate) enum Wake {
    /// A release of this key committed.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Released(Arc<str>),
    /// The listening connection was lost (and re-established, or failed):
    /// notifications may have been missed, so every waiter retries.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Missed,
}

/// How many wakes a slow waiter may fall behind before it just retries.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const BACKLOG: usize = 1024;

/// One waiter's view of release notifications.
pub(crate) struct Subscription {
    rx: broadcast::Receiver<Wake>,
}

impl Subscription {
    /// Subscribes to a listener's fan-out channel.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub fn new(tx: &broadcast::Sender<Wake>) -> Self {
        Subscription { rx: tx.subscribe() }
    }

    /// Returns when `key` was released (or notifications may have been
    /// missed), or after `bound` at the latest.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only receives.
    pub async fn wait(&mut self, key: &str, bound: Duration) {
        let _ = tokio::time::timeout(bound, async {
            loop {
                match self.rx.recv().await {
                    Ok(Wake::Released(k)) if &*k == key => return,
                    Ok(Wake::Released(_)) => continue,
                    Ok(Wake::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    // The listener is gone with its backend; only the bound remains.
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}
