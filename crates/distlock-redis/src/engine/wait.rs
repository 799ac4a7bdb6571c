//! Acquire: attempts, and between them waits on the lock's release channel
//! (or the holder's remaining ttl), until the caller's wait ends.
//!
//! A waiter subscribes to the release channel before the attempt that
//! precedes its first wait, so a release between that attempt and the wait
//! is not missed; a channel still subscribed from an earlier wait of this
//! client is joined before the first attempt at no cost.
//!
//! Fair mode: every wait ends within a third of the waiter-liveness window,
//! so the next attempt refreshes the waiter's queue entry in time; a
//! release that hands the name to this waiter wakes it, and the next
//! attempt confirms the hold (it was handed over only until the entry's
//! deadline) with the full ttl.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::sync::lock;
use distlock_core::waiting::{notified_acquire, Attempt};
use distlock_core::{AcquireOptions, AcquireRequest, Grant, Result};

use crate::notify::Subscription;

use super::acquisition::Acquisition;
use super::Engine;

impl Engine {
    /// Takes the name in `request.mode` for `request.owner`, waiting up to
    /// `request.options.wait`.
    ///
    /// Round trips: one per attempt (all instances in parallel), plus one
    /// more in parallel for Redlock when the fencing counters of a majority
    /// disagree, plus one SUBSCRIBE (per instance, in parallel) before the
    /// first wait unless the channel is still subscribed (and, fair mode,
    /// one more on the client's first pub/sub connection, for its liveness
    /// channel). In fair mode a hold handed over by a release costs the one
    /// attempt that confirms it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued: from the
    /// first attempt on, a clean-up is armed that releases the owner token
    /// (fair mode: leaves the queue) in the background; the subscription is
    /// dropped with it.
    pub(crate) async fn grant(self: &Arc<Self>, request: &AcquireRequest) -> Result<Option<Grant>> {
        let acq = Acquisition::new(self, request)?;
        self.acquire(&acq, &request.options).await
    }

    /// Turns `request.owner`'s reader hold into the writer's once it is the
    /// only hold, waiting up to `request.options.wait` (single instance).
    /// In fair mode the waiting upgrade is first in line, so readers arriving
    /// meanwhile queue behind it.
    ///
    /// Round trips: as for [`grant`](Self::grant).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the reader hold as it was: an upgrade
    /// that may have happened (in flight, or handed over by a release) is
    /// turned back into the reader hold, and the queue entry removed, in the
    /// background.
    pub(crate) async fn upgrade(
        self: &Arc<Self>,
        request: &AcquireRequest,
    ) -> Result<Option<Grant>> {
        let acq = Acquisition::upgrade(self, request);
        self.acquire(&acq, &request.options).await
    }

    /// Attempts and waits until `acq` is granted or the wait ends.
    async fn acquire(
        self: &Arc<Self>,
        acq: &Acquisition,
        options: &AcquireOptions,
    ) -> Result<Option<Grant>> {
        let waiter = Waiter {
            engine: self,
            acq,
            subscription: Mutex::new(None),
            needed: self.instances.len() - self.quorum + 1,
            timeout: self.instance_timeout(options.ttl),
        };
        let mut polling = options.backoff.delays();
        let result = notified_acquire(
            options,
            || waiter.attempt(),
            |bound| waiter.wait(bound, polling.next_delay()),
        )
        .await;
        if matches!(result, Ok(Some(_))) {
            acq.finish();
        }
        result
    }
}

/// One acquire's subscription to the release channel and what it delivered.
struct Waiter<'a> {
    engine: &'a Engine,
    acq: &'a Acquisition,
    subscription: Mutex<Option<Subscription>>,
    /// How many instances must be subscribed for a release to reach us.
    needed: usize,
    /// The bound on each SUBSCRIBE.
    timeout: Duration,
}

impl Waiter<'_> {
    /// One attempt (which also confirms a hold a release handed to us) —
    /// preceded, the first time a waiting caller finds the lock held, by
    /// subscribing and a second attempt.
    async fn attempt(&self) -> Result<Attempt> {
        if self.acq.waits && !self.subscribed() {
            self.join_lingering_channel().await;
        }
        self.mark_wakes();
        let first = self.engine.attempt(self.acq).await?;
        if !self.acq.waits || matches!(first, Attempt::Acquired(_)) || self.subscribed() {
            return Ok(first);
        }
        self.subscribe().await;
        self.mark_wakes();
        self.engine.attempt(self.acq).await
    }

    /// Just before an attempt is sent: the releases received so far are
    /// seen by it, so only later ones end the next wait early.
    fn mark_wakes(&self) {
        if let Some(sub) = lock(&self.subscription).as_mut() {
            sub.mark();
        }
    }

    fn subscribed(&self) -> bool {
        lock(&self.subscription).is_some()
    }

    /// Joins the channel if it is still subscribed from an earlier wait of
    /// this client (no round trip).
    async fn join_lingering_channel(&self) {
        if self
            .engine
            .notifier
            .is_subscribed(&self.acq.keys.channel, self.needed)
        {
            self.subscribe().await;
        }
    }

    /// Registers on the release channel, subscribing it where needed (one
    /// SUBSCRIBE per instance, in parallel).
    async fn subscribe(&self) {
        let sub = self
            .engine
            .notifier
            .subscribe(
                &self.acq.keys.channel,
                self.acq.owner.to_hex(),
                self.needed,
                self.timeout,
            )
            .await;
        *lock(&self.subscription) = Some(sub);
    }

    /// Waits for a release message (or a hand-over to us), at most `bound`
    /// (the holder's remaining ttl within the caller's deadline); in fair
    /// mode at most a third of the waiter-liveness window, so the next
    /// attempt refreshes the queue entry in time. After a split vote, pauses
    /// `bound` (a short random pause) instead.
    async fn wait(&self, bound: Duration, poll: Duration) {
        let bound = if self.engine.fair {
            bound.min(self.engine.config.waiter_timeout / 3)
        } else {
            bound
        };
        if self.acq.contended() {
            tokio::time::sleep(bound).await;
            return;
        }
        let taken = lock(&self.subscription).take();
        match taken {
            Some(mut sub) => {
                sub.wait(bound, poll).await;
                *lock(&self.subscription) = Some(sub);
            }
            None => tokio::time::sleep(bound.min(poll)).await,
        }
    }
}
