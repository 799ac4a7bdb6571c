//! The [`LockBackend`] implementation: grants by the core's compatibility
//! rule, in arrival order, with waiters woken by notification.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::{
    AcquireRequest, Capabilities, ChangeNotices, FencingToken, Grant, Lease, LockBackend,
    LockError, LockName, LockStatus, Mode, OwnerToken, Renewal, Result,
};
use tokio::sync::Notify;

use crate::slot::{Holder, Slot, Waiter};
use crate::{lock, MemoryBackend, Store, BACKEND};

/// A place in a name's queue; leaving it (also by being dropped with a
/// cancelled acquire) removes it and wakes whoever may go now.
struct QueuePlace {
    store: Arc<Store>,
    name: LockName,
    id: u64,
    wake: Arc<Notify>,
    queued: bool,
}

impl QueuePlace {
    fn new(backend: &MemoryBackend, name: &LockName) -> Self {
        QueuePlace {
            store: backend.store.clone(),
            name: name.clone(),
            id: backend.store.next_waiter.fetch_add(1, Ordering::Relaxed),
            wake: Arc::new(Notify::new()),
            queued: false,
        }
    }

    /// Joins the queue: last, or first for an upgrade.
    fn join(&mut self, slot: &mut Slot, mode: Mode, upgrade: Option<OwnerToken>) {
        if self.queued {
            return;
        }
        let waiter = Waiter {
            id: self.id,
            mode,
            upgrade,
            wake: self.wake.clone(),
        };
        if upgrade.is_some() {
            slot.waiters.push_front(waiter);
        } else {
            slot.waiters.push_back(waiter);
        }
        self.queued = true;
    }

    /// Leaves the queue on being granted.
    fn leave(&mut self, slot: &mut Slot) {
        if self.queued {
            slot.dequeue(self.id);
            self.queued = false;
        }
    }

    /// Sleeps until woken, or until `until` (a holder's expiry, the
    /// caller's deadline) passes.
    async fn sleep(&self, until: Option<Instant>) {
        match until {
            Some(at) => {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => self.wake.notified().await,
        }
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        let mut slots = lock(&self.store);
        if let Some(slot) = slots.get_mut(&self.name) {
            slot.dequeue(self.id);
            slot.wake_admitted();
        }
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Extends `lease` to `ttl` from `now` if its owner still holds it.
fn renew_in(
    slots: &mut std::collections::HashMap<LockName, Slot>,
    lease: &Lease,
    ttl: Duration,
    now: Instant,
) -> Result<Renewal> {
    let holder = slots
        .get_mut(lease.name())
        .and_then(|slot| slot.holder_mut(lease.owner(), now));
    match holder {
        Some(h) => {
            h.expires = now + ttl;
            Ok(Renewal::sent_at(now))
        }
        None => Err(LockError::not_held(lease.name().as_str())),
    }
}

/// What one turn of a waiting request decided.
enum Turn {
    /// Finished: granted, refused, or an error.
    Done(Result<Option<Grant>>),
    /// Not yet (the request is queued): look again when woken or at this
    /// instant (a holder's expiry).
    Wait(Option<Instant>),
}

impl MemoryBackend {
    /// Runs `turn` on `name`'s slot under the store's lock (expired holds
    /// dropped first) until it is done; between turns sleeps until woken or
    /// until the instant it named or `deadline` passes, and gives up
    /// (`Ok(None)`, leaving the queue) once the deadline has passed.
    async fn take_turns(
        &self,
        name: &LockName,
        deadline: Option<Instant>,
        mut turn: impl FnMut(&mut Slot, &mut QueuePlace, Instant) -> Turn,
    ) -> Result<Option<Grant>> {
        let mut place = QueuePlace::new(self, name);
        loop {
            let wake_at = {
                let now = Instant::now();
                let mut slots = lock(&self.store);
                let slot = slots.entry(name.clone()).or_default();
                slot.expire(now);
                match turn(slot, &mut place, now) {
                    Turn::Done(result) => return result,
                    Turn::Wait(_) if deadline.is_some_and(|d| now >= d) => return Ok(None),
                    Turn::Wait(at) => earliest(at, deadline),
                }
            };
            place.sleep(wake_at).await;
        }
    }
}

#[async_trait]
impl LockBackend for MemoryBackend {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    fn claims(&self) -> Capabilities {
        Self::capabilities_const()
    }

    /// Takes the name in `request.mode` when that fits beside its holders
    /// and every earlier waiter goes too; otherwise queues and sleeps until
    /// woken (by a release, a waiter ahead leaving) or until a holder's ttl
    /// or the caller's deadline passes.
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        let (name, options, mode) = (&request.name, &request.options, request.mode);
        self.take_turns(
            name,
            options.wait.deadline(Instant::now()),
            |slot, place, now| {
                if let Some(declared) = slot.mismatch(mode) {
                    return Turn::Done(Err(LockError::PermitMismatch {
                        name: name.to_string(),
                        declared,
                        requested: match mode {
                            Mode::Permit { limit } => limit,
                            _ => 0,
                        },
                    }));
                }
                if !slot.may_go(place.id, place.queued, mode) {
                    place.join(slot, mode, None);
                    return Turn::Wait(slot.next_expiry(None));
                }
                place.leave(slot);
                let fence = slot.next_fence();
                slot.hold(Holder {
                    owner: request.owner,
                    mode,
                    expires: now + options.ttl,
                    label: request.label.clone(),
                });
                slot.wake_admitted();
                Turn::Done(Ok(Some(Grant::new(FencingToken(fence), now))))
            },
        )
        .await
    }

    /// Turns the owner's shared hold exclusive once it is the only holder;
    /// while it waits it is first in the queue, so readers arriving
    /// meanwhile wait behind it.
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        let (name, owner) = (lease.name(), lease.owner());
        let deadline = request.options.wait.deadline(Instant::now());
        self.take_turns(name, deadline, |slot, place, now| {
            if slot.holder_mut(owner, now).is_none() {
                return Turn::Done(Err(LockError::not_held(name.as_str())));
            }
            let alone = slot.holders.iter().all(|h| h.owner == owner);
            let first = !place.queued || slot.waiters.front().is_some_and(|w| w.id == place.id);
            if !(alone && first) {
                place.join(slot, Mode::Exclusive, Some(owner));
                return Turn::Wait(slot.next_expiry(Some(owner)));
            }
            place.leave(slot);
            let fence = slot.next_fence();
            if let Some(h) = slot.holder_mut(owner, now) {
                h.mode = Mode::Exclusive;
                h.expires = now + request.options.ttl;
            }
            slot.changed();
            Turn::Done(Ok(Some(Grant::new(FencingToken(fence), now))))
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        let now = Instant::now();
        renew_in(&mut lock(&self.store), lease, ttl, now)
    }

    /// Renews the whole batch under one acquisition of the store's mutex.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        let now = Instant::now();
        let mut slots = lock(&self.store);
        batch
            .iter()
            .map(|(lease, ttl)| renew_in(&mut slots, lease, *ttl, now))
            .collect()
    }

    async fn revoke(&self, lease: &Lease) -> Result<()> {
        let now = Instant::now();
        let mut slots = lock(&self.store);
        let released = slots
            .get_mut(lease.name())
            .is_some_and(|slot| slot.remove_holder(lease.owner(), now));
        if released {
            Ok(())
        } else {
            Err(LockError::not_held(lease.name().as_str()))
        }
    }

    /// Shortens the hold to end `hold` from now, waking the waiters so they
    /// wait for the new expiry (they slept until the old one), and telling
    /// watchers.
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        let now = Instant::now();
        let mut slots = lock(&self.store);
        renew_in(&mut slots, lease, hold, now)?;
        if let Some(slot) = slots.get(lease.name()) {
            slot.wake_admitted();
            slot.changed();
        }
        Ok(())
    }

    /// A `tokio` watch channel per name, bumped by every grant, release,
    /// expiry seen, upgrade and shortened hold.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        let changes = lock(&self.store).entry(name.clone()).or_default().watch();
        let notices = futures::stream::unfold(changes, |mut changes| async move {
            changes.changed().await.ok()?;
            Some(((), changes))
        });
        Ok(Some(Box::pin(notices)))
    }

    /// Holders, fencing counter (the exclusive holder's token while one
    /// holds), the exclusive holder's label, the latest expiry, the queue.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let now = Instant::now();
        let mut slots = lock(&self.store);
        let Some(slot) = slots.get_mut(name) else {
            return Ok(LockStatus::new(false, None, None, Some(0)));
        };
        slot.expire(now);
        let fence = (slot.fence > 0).then_some(FencingToken(slot.fence));
        let expires_in = slot
            .holders
            .iter()
            .map(|h| h.expires.saturating_duration_since(now))
            .max();
        Ok(LockStatus::new(
            !slot.holders.is_empty(),
            fence,
            expires_in,
            Some(slot.waiters.len()),
        )
        .with_holder(slot.label()))
    }
}
