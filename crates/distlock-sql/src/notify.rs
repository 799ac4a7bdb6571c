//! Release notifications, handed to the waiters of one backend one at a
//! time.
//!
//! A database that can notify (PostgreSQL's `LISTEN`/`NOTIFY`) runs one
//! listener per backend, which tells [`Waiters`] of every release it
//! hears. The waiters of a key form a queue in the order they started
//! waiting, and a release wakes the first of them that is not awake
//! already — not all of them: the others would only find the lock taken
//! again. A woken waiter that does not go on to try the lock (it gave up,
//! timed out, failed or was dropped) passes the wake on to the next one,
//! so no waiter is left asleep while the lock is free; a reader or permit
//! holder that got in after a wake passes it on too (there may be room
//! for the next one). When notifications may have been missed (the
//! listening connection dropped), every waiter is woken.
//!
//! Across processes, every backend's listener hears each release and
//! wakes one waiter of its own.
// Only PostgreSQL notifies.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::sync::lock;
use tokio::sync::Notify;

/// The waiting acquires of one backend, by key, oldest first.
#[derive(Default)]
pub(crate) struct Waiters {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Per key, the waiters in the order they joined.
    queues: HashMap<Arc<str>, VecDeque<u64>>,
    slots: HashMap<u64, Slot>,
}

/// One waiter's state.
struct Slot {
    /// The key it waits for, once it joined a queue.
    key: Option<Arc<str>>,
    /// Woken, and no attempt started since.
    woken: bool,
    /// The attempt in flight started after a wake: the wake is its until
    /// it sees the lock taken.
    in_hand: bool,
    bell: Arc<Notify>,
}

impl Slot {
    /// Whether a release should wake this waiter: it is neither awake nor
    /// trying on a wake already.
    fn asleep(&self) -> bool {
        !self.woken && !self.in_hand
    }
}

impl Registry {
    /// Wakes the first waiter of `key` that is asleep, if any; else the
    /// first one trying on an earlier wake, which tries again once its
    /// attempt is done: that attempt may have found the lock taken before
    /// this release, and the release would otherwise wake nobody.
    fn wake_next(&mut self, key: &str) {
        let Some(queue) = self.queues.get(key) else {
            return;
        };
        let first = |wanted: fn(&Slot) -> bool| {
            queue
                .iter()
                .find(|id| self.slots.get(id).is_some_and(wanted))
                .copied()
        };
        let next = first(Slot::asleep).or_else(|| first(|s| s.in_hand && !s.woken));
        if let Some(slot) = next.and_then(|id| self.slots.get_mut(&id)) {
            slot.woken = true;
            slot.bell.notify_waiters();
        }
    }

    /// Removes waiter `id` from its queue; whether it held a wake it did
    /// not use, and its key.
    fn leave(&mut self, id: u64) -> Option<(bool, Arc<str>)> {
        let slot = self.slots.remove(&id)?;
        let key = slot.key?;
        if let Some(queue) = self.queues.get_mut(&key) {
            queue.retain(|&other| other != id);
            if queue.is_empty() {
                self.queues.remove(&key);
            }
        }
        Some((slot.woken || slot.in_hand, key))
    }
}

impl Waiters {
    /// A new waiter, in no queue until it [joins](Subscription::join) one.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let mut registry = lock(&self.registry);
        let id = registry.next_id;
        registry.next_id += 1;
        registry.slots.insert(
            id,
            Slot {
                key: None,
                woken: false,
                in_hand: false,
                bell: Arc::new(Notify::new()),
            },
        );
        Subscription {
            waiters: Arc::clone(self),
            id,
        }
    }

    /// A release of `key` committed: wakes its first waiter that is asleep.
    pub fn released(&self, key: &str) {
        lock(&self.registry).wake_next(key);
    }

    /// Notifications may have been missed: wakes every waiter.
    pub fn missed(&self) {
        for slot in lock(&self.registry).slots.values_mut() {
            slot.woken = true;
            slot.bell.notify_waiters();
        }
    }
}

/// One waiting acquire's place among the waiters of its backend. Dropping
/// it leaves the queue, passing on a wake it did not use.
pub(crate) struct Subscription {
    waiters: Arc<Waiters>,
    id: u64,
}

impl Subscription {
    /// Joins the queue of `key`, behind the waiters already in it; a no-op
    /// after the first call.
    pub fn join(&self, key: &str) {
        let mut registry = lock(&self.waiters.registry);
        let Some(slot) = registry.slots.get_mut(&self.id) else {
            return;
        };
        if slot.key.is_some() {
            return;
        }
        let key: Arc<str> = Arc::from(key);
        slot.key = Some(Arc::clone(&key));
        registry.queues.entry(key).or_default().push_back(self.id);
    }

    /// An attempt starts: a wake waiting for it becomes the attempt's.
    pub fn attempting(&self) {
        self.update(|slot| {
            slot.in_hand |= slot.woken;
            slot.woken = false;
        });
    }

    /// The attempt found the lock taken: its wake is used up.
    pub fn found_held(&self) {
        self.update(|slot| slot.in_hand = false);
    }

    /// The attempt was granted. When `shares` (a reader or a permit), a
    /// wake it got in on goes on to the next waiter, who may get in too.
    /// The waiter leaves the queue; a wake that came during the attempt
    /// goes on as well, as when it is dropped.
    pub fn granted(&self, shares: bool) {
        let mut registry = lock(&self.waiters.registry);
        if let Some(slot) = registry.slots.get_mut(&self.id) {
            slot.in_hand &= shares;
        }
        if let Some((true, key)) = registry.leave(self.id) {
            registry.wake_next(&key);
        }
    }

    /// Returns when this waiter is woken, or after `bound` at the latest.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; a wake that comes meanwhile stays for
    /// the next call (or is passed on when the subscription is dropped).
    pub async fn wait(&self, bound: Duration) {
        let Some(bell) = self.bell() else {
            return tokio::time::sleep(bound).await;
        };
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let mut rung = pin!(bell.notified());
            // Listening before looking: a wake between the two still rings.
            rung.as_mut().enable();
            if self.is_woken() {
                return;
            }
            if tokio::time::timeout_at(deadline, rung).await.is_err() {
                return;
            }
        }
    }

    fn bell(&self) -> Option<Arc<Notify>> {
        let registry = lock(&self.waiters.registry);
        registry.slots.get(&self.id).map(|s| Arc::clone(&s.bell))
    }

    fn is_woken(&self) -> bool {
        let registry = lock(&self.waiters.registry);
        registry.slots.get(&self.id).is_some_and(|s| s.woken)
    }

    fn update(&self, change: impl FnOnce(&mut Slot)) {
        if let Some(slot) = lock(&self.waiters.registry).slots.get_mut(&self.id) {
            change(slot);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = lock(&self.waiters.registry);
        if let Some((true, key)) = registry.leave(self.id) {
            registry.wake_next(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether each subscription is woken (without waiting).
    fn woken(subs: &[&Subscription]) -> Vec<bool> {
        subs.iter().map(|s| s.is_woken()).collect()
    }

    fn queue(n: usize) -> (Arc<Waiters>, Vec<Subscription>) {
        let waiters = Arc::new(Waiters::default());
        let subs = (0..n)
            .map(|_| {
                let s = waiters.subscribe();
                s.join("k");
                s
            })
            .collect();
        (waiters, subs)
    }

    /// Whether `release` (of key `k`) wakes the oldest of three waiters of
    /// `k` and nobody else, and a second release the next one.
    fn wakes_one_in_order(release: impl Fn(&Waiters)) -> bool {
        let (waiters, subs) = queue(3);
        let other = waiters.subscribe();
        other.join("other");
        release(&waiters);
        let first = woken(&[&subs[0], &subs[1], &subs[2], &other]);
        release(&waiters);
        let second = woken(&[&subs[0], &subs[1], &subs[2]]);
        first == [true, false, false, false] && second == [true, true, false]
    }

    #[test]
    fn a_release_wakes_the_oldest_waiter_only() {
        assert!(wakes_one_in_order(|w| w.released("k")));
        // What a broadcast did: every waiter of the key at each release.
        let wake_all = |w: &Waiters| {
            let mut registry = lock(&w.registry);
            let ids: Vec<u64> = registry
                .queues
                .get("k")
                .into_iter()
                .flatten()
                .copied()
                .collect();
            for id in ids {
                if let Some(slot) = registry.slots.get_mut(&id) {
                    slot.woken = true;
                }
            }
        };
        assert!(
            !wakes_one_in_order(wake_all),
            "the check misses a broadcast"
        );
    }

    #[test]
    fn a_waiter_that_finds_the_lock_taken_waits_for_the_next_release() {
        let (waiters, subs) = queue(2);
        waiters.released("k");
        subs[0].attempting();
        subs[0].found_held();
        assert_eq!(woken(&[&subs[0], &subs[1]]), [false, false]);
        waiters.released("k");
        assert_eq!(woken(&[&subs[0], &subs[1]]), [true, false]);
    }

    #[test]
    fn a_release_during_an_attempt_on_a_wake_is_not_lost() {
        // The attempt looked before the release and finds the lock taken:
        // with nobody else asleep, the release is its to try again on.
        let (waiters, subs) = queue(1);
        waiters.released("k");
        subs[0].attempting();
        waiters.released("k");
        subs[0].found_held();
        assert_eq!(woken(&[&subs[0]]), [true]);
        // With a waiter asleep behind it, that one is woken instead.
        let (waiters, subs) = queue(2);
        waiters.released("k");
        subs[0].attempting();
        waiters.released("k");
        subs[0].found_held();
        assert_eq!(woken(&[&subs[0], &subs[1]]), [false, true]);
    }

    #[test]
    fn a_woken_waiter_that_leaves_passes_the_wake_on() {
        let (waiters, mut subs) = queue(3);
        waiters.released("k");
        drop(subs.remove(0));
        assert_eq!(woken(&[&subs[0], &subs[1]]), [true, false]);
        // Failing mid-attempt (the wake in hand) passes it on too.
        subs[0].attempting();
        drop(subs.remove(0));
        assert_eq!(woken(&[&subs[0]]), [true]);
    }

    #[test]
    fn a_waiter_that_leaves_unwoken_wakes_nobody() {
        let (waiters, mut subs) = queue(2);
        drop(subs.remove(0));
        assert_eq!(woken(&[&subs[0]]), [false]);
        waiters.released("k");
        assert_eq!(woken(&[&subs[0]]), [true]);
    }

    #[test]
    fn a_reader_that_got_in_on_a_wake_passes_it_on_a_writer_does_not() {
        let (waiters, subs) = queue(3);
        waiters.released("k");
        subs[0].attempting();
        subs[0].granted(true);
        assert_eq!(woken(&[&subs[1], &subs[2]]), [true, false]);
        subs[1].attempting();
        subs[1].granted(false);
        assert_eq!(woken(&[&subs[2]]), [false]);
    }

    #[test]
    fn missed_notifications_wake_everyone() {
        let (waiters, subs) = queue(3);
        waiters.missed();
        assert_eq!(woken(&[&subs[0], &subs[1], &subs[2]]), [true, true, true]);
    }

    #[tokio::test]
    async fn wait_returns_on_a_wake_and_otherwise_at_its_bound() {
        let (waiters, subs) = queue(1);
        let started = tokio::time::Instant::now();
        subs[0].wait(Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        let waker = {
            let waiters = Arc::clone(&waiters);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                waiters.released("k");
            })
        };
        let started = tokio::time::Instant::now();
        subs[0].wait(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        waker.await.unwrap();
    }
}
