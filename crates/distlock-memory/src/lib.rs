//! # distlock-memory
//!
//! An in-process [`DistributedLock`]: locks shared by every client of one
//! store inside one process.
//!
//! It does everything the contract asks, with no server: fencing tokens
//! strictly increase per name (a counter kept after release), waiters are
//! served in arrival order (FIFO) and woken by notification, leases expire
//! after their ttl, extension and release check the owner token, and a
//! dropped `acquire` leaves its queue place at once.
//!
//! It is the model the conformance suite is checked against, and a stand-in
//! for real backends in unit tests of code that takes locks.
//!
//! What it does not do: share locks across processes (capability
//! `cross_process` is false) or survive a restart.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> distlock_core::Result<()> {
//! use std::time::Duration;
//! use distlock_core::{AcquireOptions, DistributedLock, LockName};
//! use distlock_memory::MemoryBackend;
//!
//! let locks = MemoryBackend::new();
//! let name = LockName::new("inventory/sku-42")?;
//! let opts = AcquireOptions::try_once(Duration::from_secs(5));
//! let lease = locks.acquire(&name, &opts).await?.expect("free");
//! // A second client of the same store cannot take it now.
//! assert!(locks.clone().acquire(&name, &opts).await?.is_none());
//! locks.release(&lease).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::{
    sync::lock as lock_unpoisoned, AcquireRequest, BackendUrl, Capabilities, FencingToken, Grant,
    Lease, LockBackend, LockError, LockName, LockStatus, OwnerToken, Renewal, Result,
};
use tokio::sync::Notify;

const BACKEND: &str = "memory";

/// The in-process backend. Clones share one store.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    store: Arc<Store>,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Store {
    slots: Mutex<HashMap<LockName, Slot>>,
    next_waiter: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Slot {
    holder: Option<Holder>,
    /// The last fencing token issued for this name.
    fence: u64,
    waiters: VecDeque<Waiter>,
}

struct Holder {
    owner: OwnerToken,
    expires: Instant,
}

struct Waiter {
    id: u64,
    wake: Arc<Notify>,
}

impl Slot {
    /// Drops a holder whose ttl has passed.
    fn expire(&mut self, now: Instant) {
        if self.holder.as_ref().is_some_and(|h| h.expires <= now) {
            self.holder = None;
        }
    }

    /// Tells the first waiter to look again (after any change).
    fn wake_head(&self) {
        if let Some(w) = self.waiters.front() {
            w.wake.notify_one();
        }
    }

    fn is_held_by(&self, owner: OwnerToken, now: Instant) -> bool {
        self.holder
            .as_ref()
            .is_some_and(|h| h.owner == owner && h.expires > now)
    }
}

fn lock(store: &Store) -> MutexGuard<'_, HashMap<LockName, Slot>> {
    lock_unpoisoned(&store.slots)
}

fn stores() -> &'static Mutex<HashMap<String, MemoryBackend>> {
    static STORES: OnceLock<Mutex<HashMap<String, MemoryBackend>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl MemoryBackend {
    /// A new, private store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide store named by a `memory://[name]` URL.
    ///
    /// Every `connect` with the same name shares one store for the life of
    /// the process; `memory://` is the store named `default`.
    ///
    /// ```
    /// use distlock_memory::MemoryBackend;
    /// assert!(MemoryBackend::connect("memory://jobs").is_ok());
    /// assert!(MemoryBackend::connect("redis://x").is_err());
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
        let parsed = BackendUrl::parse(url)?;
        if parsed.scheme() != "memory" || !parsed.path().is_empty() {
            return Err(parsed.error("not a memory URL (expected `memory://[store]`)"));
        }
        parsed.finish()?;
        let config = match parsed.authority() {
            "" => MemoryConfig::default(),
            store => MemoryConfig::default().with_store(store),
        };
        Ok(Self::from_config(config))
    }

    /// The process-wide store `config` names.
    pub fn from_config(config: MemoryConfig) -> Self {
        Self::store(&config.store)
    }

    /// The process-wide store called `name` (what `memory://<name>` names).
    pub fn store(name: &str) -> Self {
        lock_unpoisoned(stores())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn capabilities_const() -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(true)
            .wait_notification(true)
            .session_liveness(false)
            .ttl_expiry(true)
            .lease_handoff(true)
            .cross_process(false)
            .batch_extend(true)
            .min_ttl(Duration::from_millis(1))
            .build()
    }
}

/// Extends `lease` to `ttl` from `now` if its owner still holds it.
fn renew_in(
    slots: &mut HashMap<LockName, Slot>,
    lease: &Lease,
    ttl: Duration,
    now: Instant,
) -> Result<Renewal> {
    match slots.get_mut(lease.name()) {
        Some(slot) if slot.is_held_by(lease.owner(), now) => {
            if let Some(h) = slot.holder.as_mut() {
                h.expires = now + ttl;
            }
            Ok(Renewal::sent_at(now))
        }
        _ => Err(LockError::not_held(lease.name().as_str())),
    }
}

/// Which process-wide store a [`MemoryBackend`] uses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct MemoryConfig {
    /// The store's name (`default` unless set).
    pub store: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            store: "default".into(),
        }
    }
}

impl MemoryConfig {
    /// Sets the store's name.
    pub fn with_store(mut self, store: impl Into<String>) -> Self {
        self.store = store.into();
        self
    }
}

/// A place in a name's queue; leaving it (also by being dropped with a
/// cancelled acquire) removes it and wakes whoever is first now.
struct QueuePlace {
    store: Arc<Store>,
    name: LockName,
    id: u64,
    queued: bool,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        let mut slots = lock(&self.store);
        if let Some(slot) = slots.get_mut(&self.name) {
            slot.waiters.retain(|w| w.id != self.id);
            slot.wake_head();
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

    /// Takes the lock if it is free and nobody queued earlier; otherwise
    /// queues and sleeps until woken (by release, by the waiter ahead leaving)
    /// or until the holder's ttl or the caller's deadline passes.
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        let (name, options) = (&request.name, &request.options);
        let deadline = options.wait.deadline(Instant::now());
        let wake = Arc::new(Notify::new());
        let mut place = QueuePlace {
            store: self.store.clone(),
            name: name.clone(),
            id: self
                .store
                .next_waiter
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            queued: false,
        };
        loop {
            let sleep_until;
            {
                let now = Instant::now();
                let mut slots = lock(&self.store);
                let slot = slots.entry(name.clone()).or_default();
                slot.expire(now);
                let my_turn = match slot.waiters.front() {
                    Some(first) => place.queued && first.id == place.id,
                    None => true,
                };
                if slot.holder.is_none() && my_turn {
                    if place.queued {
                        slot.waiters.pop_front();
                        place.queued = false;
                    }
                    slot.fence += 1;
                    let expires = now + options.ttl;
                    slot.holder = Some(Holder {
                        owner: request.owner,
                        expires,
                    });
                    slot.wake_head();
                    return Ok(Some(Grant::new(FencingToken(slot.fence), now)));
                }
                if deadline.is_some_and(|d| now >= d) {
                    return Ok(None); // `place` leaves the queue on drop
                }
                if !place.queued {
                    slot.waiters.push_back(Waiter {
                        id: place.id,
                        wake: wake.clone(),
                    });
                    place.queued = true;
                }
                // The first waiter also watches the holder's expiry.
                let holder_expiry = match (&slot.holder, my_turn) {
                    (Some(h), true) => Some(h.expires),
                    _ => None,
                };
                sleep_until = match (holder_expiry, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            match sleep_until {
                Some(at) => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => wake.notified().await,
            }
        }
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
        match slots.get_mut(lease.name()) {
            Some(slot) if slot.is_held_by(lease.owner(), now) => {
                slot.holder = None;
                slot.wake_head();
                Ok(())
            }
            _ => Err(LockError::not_held(lease.name().as_str())),
        }
    }

    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let now = Instant::now();
        let mut slots = lock(&self.store);
        let Some(slot) = slots.get_mut(name) else {
            return Ok(LockStatus::new(false, None, None, Some(0)));
        };
        slot.expire(now);
        let fence = (slot.fence > 0).then_some(FencingToken(slot.fence));
        let expires_in = slot
            .holder
            .as_ref()
            .map(|h| h.expires.saturating_duration_since(now));
        Ok(LockStatus::new(
            slot.holder.is_some(),
            fence,
            expires_in,
            Some(slot.waiters.len()),
        ))
    }
}
