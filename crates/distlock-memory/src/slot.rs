//! One name's state: its holders, its fencing counter and its queue, and
//! the core's compatibility rule ([`Mode::admitted`]) applied to them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use distlock_core::{Mode, OwnerToken};
use tokio::sync::{watch, Notify};

/// A name's holders, fencing counter and waiters.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) holders: Vec<Holder>,
    /// The last fencing token issued for this name (any mode).
    pub(crate) fence: u64,
    pub(crate) waiters: VecDeque<Waiter>,
    /// Tells watchers that the holders changed (made on the first watch).
    changes: Option<watch::Sender<u64>>,
}

/// One hold.
pub(crate) struct Holder {
    pub(crate) owner: OwnerToken,
    pub(crate) mode: Mode,
    pub(crate) expires: Instant,
    /// The exclusive holder's label (an elected leader's identity).
    pub(crate) label: Option<String>,
}

/// One queued request.
pub(crate) struct Waiter {
    pub(crate) id: u64,
    pub(crate) mode: Mode,
    /// A reader of this owner upgrading to the writer: queued first, it
    /// goes once it is the only holder.
    pub(crate) upgrade: Option<OwnerToken>,
    pub(crate) wake: Arc<Notify>,
}

impl Slot {
    /// Drops the holds whose ttl has passed, waking whoever may go now.
    pub(crate) fn expire(&mut self, now: Instant) {
        let before = self.holders.len();
        self.holders.retain(|h| h.expires > now);
        if self.holders.len() != before {
            self.wake_admitted();
            self.changed();
        }
    }

    /// Adds a hold, telling watchers.
    pub(crate) fn hold(&mut self, holder: Holder) {
        self.holders.push(holder);
        self.changed();
    }

    /// Tells watchers that the holders (or a hold's expiry) changed.
    pub(crate) fn changed(&self) {
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver of this name's change notices.
    pub(crate) fn watch(&mut self) -> watch::Receiver<u64> {
        self.changes
            .get_or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The exclusive holder's label, if one holds with a label.
    pub(crate) fn label(&self) -> Option<String> {
        self.holders
            .iter()
            .find(|h| h.mode == Mode::Exclusive)
            .and_then(|h| h.label.clone())
    }

    /// The hold of `owner`, if it is still valid.
    pub(crate) fn holder_mut(&mut self, owner: OwnerToken, now: Instant) -> Option<&mut Holder> {
        self.holders
            .iter_mut()
            .find(|h| h.owner == owner && h.expires > now)
    }

    /// Drops `owner`'s hold; true if there was one.
    pub(crate) fn remove_holder(&mut self, owner: OwnerToken, now: Instant) -> bool {
        let found = self.holder_mut(owner, now).is_some();
        if found {
            self.holders.retain(|h| h.owner != owner);
            self.wake_admitted();
            self.changed();
        }
        found
    }

    /// How many of the queue's head may be granted now, counting `extra`
    /// as queued last (a request not queued yet).
    pub(crate) fn admitted(&self, extra: Option<Mode>) -> usize {
        if let Some(upgrading) = self.waiters.front().and_then(|w| w.upgrade) {
            let alone = self.holders.iter().all(|h| h.owner == upgrading);
            return usize::from(alone);
        }
        let holders: Vec<Mode> = self.holders.iter().map(|h| h.mode).collect();
        let mut queue: Vec<Mode> = self.waiters.iter().map(|w| w.mode).collect();
        queue.extend(extra);
        Mode::admitted(&holders, &queue)
    }

    /// A request for `id` (queued) or for `mode` (not queued yet) may be
    /// granted now: every request before it goes too.
    pub(crate) fn may_go(&self, id: u64, queued: bool, mode: Mode) -> bool {
        if queued {
            self.waiters
                .iter()
                .position(|w| w.id == id)
                .is_some_and(|at| at < self.admitted(None))
        } else {
            self.admitted(Some(mode)) > self.waiters.len()
        }
    }

    /// The permit count the name is held or awaited with, when `mode` is a
    /// permit of another count.
    pub(crate) fn mismatch(&self, mode: Mode) -> Option<u32> {
        let Mode::Permit { limit } = mode else {
            return None;
        };
        let held = self.holders.iter().map(|h| h.mode);
        let queued = self.waiters.iter().map(|w| w.mode);
        held.chain(queued).find_map(|m| match m {
            Mode::Permit { limit: declared } if declared != limit => Some(declared),
            _ => None,
        })
    }

    /// Wakes the waiters that may go now.
    pub(crate) fn wake_admitted(&self) {
        for w in self.waiters.iter().take(self.admitted(None).max(1)) {
            w.wake.notify_one();
        }
    }

    /// Removes a queued request.
    pub(crate) fn dequeue(&mut self, id: u64) {
        self.waiters.retain(|w| w.id != id);
    }

    /// The next fencing token.
    pub(crate) fn next_fence(&mut self) -> u64 {
        self.fence += 1;
        self.fence
    }

    /// The earliest expiry among the holders other than `except`.
    pub(crate) fn next_expiry(&self, except: Option<OwnerToken>) -> Option<Instant> {
        self.holders
            .iter()
            .filter(|h| Some(h.owner) != except)
            .map(|h| h.expires)
            .min()
    }
}
