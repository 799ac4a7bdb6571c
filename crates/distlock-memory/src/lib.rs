//! # distlock-memory
//!
//! An in-process [`DistributedLock`](distlock_core::DistributedLock): locks
//! shared by every client of one store inside one process.
//!
//! It does everything the contract asks, with no server: fencing tokens
//! strictly increase per name (a counter kept after release, bumped by every
//! grant of every mode), waiters are served in arrival order (FIFO) and woken
//! by notification, leases expire after their ttl, extension and release
//! check the owner token, and a dropped `acquire` leaves its queue place at
//! once. It serves every mode: the mutex (a writer), readers, semaphore
//! permits, and upgrades a reader to the writer in place. It stores a
//! leader's identity with its hold (`labels`), notifies leader observers of
//! every change of holders through a `tokio` watch channel per name
//! (`watch`), and keeps a lock released before its lock-at-least-for
//! minimum until then (`at_least`: the hold's expiry is shortened to the
//! minimum and the waiters woken to wait for it).
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

mod backend;
mod slot;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use distlock_core::{sync::lock as lock_unpoisoned, BackendUrl, Capabilities, LockName, Result};

use slot::Slot;

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

/// Every name's state, behind one mutex.
#[derive(Default)]
struct Store {
    slots: Mutex<HashMap<LockName, Slot>>,
    next_waiter: std::sync::atomic::AtomicU64,
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
            .shared(true)
            .semaphore(true)
            .upgrade(true)
            .labels(true)
            .watch(true)
            .at_least(true)
            .min_ttl(Duration::from_millis(1))
            .build()
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
