//! The API applications touch: [`LockClient`] hands out [`LockGuard`]s that
//! keep themselves alive in the background and say when they are lost.
//!
//! One watchdog task per client extends every guard of that client at about a
//! third of its ttl, batching the guards that are due together into one
//! [`extend_many`](DistributedLock::extend_many) call. A guard is *lost* when an
//! extension is refused, when its validity passes before an extension
//! succeeded, or when the backend reports its session gone; `lost()` then
//! resolves and `is_lost()` turns true.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::backend::{DistributedLock, Liveness};
use crate::error::{LockError, Result};
use crate::lease::{FencingToken, Lease};
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};

/// Why a guard stopped being trustworthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The backend refused an extension: the lease is no longer ours.
    Rejected,
    /// The validity passed before an extension succeeded (backend unreachable
    /// or too slow).
    Expired,
    /// The session behind the lease ended (ZooKeeper session, etcd lease).
    Session(String),
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Rejected => f.write_str("extension refused: the lease is no longer held"),
            LostReason::Expired => f.write_str("validity passed before an extension succeeded"),
            LostReason::Session(why) => write!(f, "session lost: {why}"),
        }
    }
}

/// Where a guard stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardState {
    /// Held and being kept alive.
    Held,
    /// The session is disconnected but may still be alive: the lock may or may
    /// not still be held. Pause work on the protected resource.
    Suspended,
    /// Lost for good.
    Lost(LostReason),
}

/// Something that names a lock: `&str`, `String`, `LockName`, `&LockName`.
pub trait IntoLockName {
    /// Validates and converts.
    fn into_lock_name(self) -> Result<LockName>;
}

impl IntoLockName for &str {
    fn into_lock_name(self) -> Result<LockName> {
        LockName::new(self)
    }
}

impl IntoLockName for String {
    fn into_lock_name(self) -> Result<LockName> {
        LockName::new(self)
    }
}

impl IntoLockName for LockName {
    fn into_lock_name(self) -> Result<LockName> {
        Ok(self)
    }
}

impl IntoLockName for &LockName {
    fn into_lock_name(self) -> Result<LockName> {
        Ok(self.clone())
    }
}

/// Hands out self-extending [`LockGuard`]s over any [`DistributedLock`].
///
/// Cloning is cheap; clones share one watchdog task.
///
/// ```
/// # async fn demo(backend: std::sync::Arc<dyn distlock_core::DistributedLock>) -> distlock_core::Result<()> {
/// use std::time::Duration;
/// use distlock_core::{AcquireOptions, LockClient, Wait};
///
/// let client = LockClient::new(backend);
/// let guard = client.lock("invoices/2026-11").await?;
/// println!("fencing token {}", guard.fencing_token());
/// guard.release().await?;
///
/// let opts = AcquireOptions::new(Duration::from_secs(5)).wait(Wait::NoWait);
/// if let Some(guard) = client.try_lock_with("invoices/2026-11", &opts).await? {
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    backend: Arc<dyn DistributedLock>,
    defaults: AcquireOptions,
    guards: Mutex<Registry>,
    /// Wakes the watchdog when a guard is added.
    wake: Notify,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    guards: HashMap<u64, Arc<GuardShared>>,
    watchdog_running: bool,
}

struct GuardShared {
    id: u64,
    lease: Mutex<Lease>,
    next_extend: Mutex<Instant>,
    state: watch::Sender<GuardState>,
    /// Stops the per-guard liveness task.
    ended: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections cannot leave
    // the data half-written, so a poisoned mutex is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl fmt::Debug for LockClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockClient")
            .field("backend", &self.inner.backend)
            .field("defaults", &self.inner.defaults)
            .finish()
    }
}

impl LockClient {
    /// A client with default options: 30 s ttl, wait up to 30 s.
    pub fn new(backend: Arc<dyn DistributedLock>) -> Self {
        Self::with_defaults(
            backend,
            AcquireOptions::new(Duration::from_secs(30)).wait(Wait::For(Duration::from_secs(30))),
        )
    }

    /// A client whose `lock`/`try_lock`/`with_lock` use `defaults`.
    pub fn with_defaults(backend: Arc<dyn DistributedLock>, defaults: AcquireOptions) -> Self {
        LockClient {
            inner: Arc::new(ClientInner {
                backend,
                defaults,
                guards: Mutex::new(Registry::default()),
                wake: Notify::new(),
            }),
        }
    }

    /// The backend behind this client.
    pub fn backend(&self) -> &Arc<dyn DistributedLock> {
        &self.inner.backend
    }

    /// The default options.
    pub fn defaults(&self) -> &AcquireOptions {
        &self.inner.defaults
    }

    /// Acquires `name` with the default options; `Timeout` if not acquired
    /// within the default wait.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn lock(&self, name: impl IntoLockName) -> Result<LockGuard> {
        let opts = self.inner.defaults;
        self.lock_with(name, &opts).await
    }

    /// Acquires `name` with `options`; `Timeout` if not acquired within
    /// `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn lock_with(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
    ) -> Result<LockGuard> {
        let name = name.into_lock_name()?;
        match self.try_lock_with(&name, options).await? {
            Some(guard) => Ok(guard),
            None => Err(LockError::Timeout {
                name: name.to_string(),
                waited: options.wait.as_duration().unwrap_or(Duration::MAX),
            }),
        }
    }

    /// Acquires `name` with the default ttl, trying once.
    pub async fn try_lock(&self, name: impl IntoLockName) -> Result<Option<LockGuard>> {
        let opts = self.inner.defaults.wait(Wait::NoWait);
        self.try_lock_with(name, &opts).await
    }

    /// Acquires `name` with `options`; `Ok(None)` if not acquired within
    /// `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_lock_with(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>> {
        let name = name.into_lock_name()?;
        let backend = self.inner.backend.backend_name();
        let span = tracing::debug_span!("distlock.acquire", lock = %name, backend);
        let started = Instant::now();
        let lease = self
            .inner
            .backend
            .acquire(&name, options)
            .instrument(span)
            .await;
        match lease {
            Ok(Some(lease)) => {
                tracing::debug!(
                    lock = %name, backend, fencing = lease.fencing_token().0,
                    waited_us = started.elapsed().as_micros() as u64,
                    "distlock.acquired"
                );
                Ok(Some(self.adopt(lease)?))
            }
            Ok(None) => {
                tracing::debug!(lock = %name, backend, "distlock.not_acquired");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(lock = %name, backend, error = %e, "distlock.acquire_failed");
                Err(e)
            }
        }
    }

    /// Runs `work` while holding `name` (default options), then releases.
    ///
    /// `work` receives a [`GuardHandle`] for the fencing token and loss
    /// signal. If the lock was lost while `work` ran, the result is a
    /// `NotHeld` error: the work may have overlapped another holder.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// let total = client
    ///     .with_lock("contribution", |held| async move {
    ///         // write to the protected resource, passing held.fencing_token()
    ///         held.fencing_token().get()
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<F, Fut, T>(&self, name: impl IntoLockName, work: F) -> Result<T>
    where
        F: FnOnce(GuardHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = self.inner.defaults;
        self.with_lock_opts(name, &opts, work).await
    }

    /// [`with_lock`](Self::with_lock) with explicit options.
    pub async fn with_lock_opts<F, Fut, T>(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce(GuardHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.lock_with(name, options).await?;
        let out = work(guard.handle()).await;
        let lost = guard.is_lost();
        let name = guard.name().to_string();
        let released = guard.release().await;
        match released {
            Ok(()) if !lost => Ok(out),
            Ok(()) => Err(LockError::not_held(name)),
            Err(e) => Err(e),
        }
    }

    /// Wraps an existing lease (imported from another process, say) in a
    /// guard that this client keeps alive.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` when called outside a tokio runtime (the guard's
    /// background extension needs one).
    pub fn adopt(&self, lease: Lease) -> Result<LockGuard> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            LockError::invalid_config("LockClient::adopt must be called inside a tokio runtime")
        })?;
        let (state, _) = watch::channel(GuardState::Held);
        let next_extend = Instant::now() + extend_interval(&lease);
        let liveness = self.inner.backend.liveness(&lease);
        let spawn_watchdog;
        let shared = {
            let mut reg = lock(&self.inner.guards);
            reg.next_id += 1;
            let shared = Arc::new(GuardShared {
                id: reg.next_id,
                lease: Mutex::new(lease),
                next_extend: Mutex::new(next_extend),
                state,
                ended: Notify::new(),
            });
            reg.guards.insert(shared.id, shared.clone());
            spawn_watchdog = !reg.watchdog_running;
            reg.watchdog_running = true;
            shared
        };
        if spawn_watchdog {
            runtime.spawn(watchdog(Arc::downgrade(&self.inner)));
        } else {
            self.inner.wake.notify_one();
        }
        if let Some(rx) = liveness {
            runtime.spawn(follow_liveness(Arc::downgrade(&shared), rx));
        }
        Ok(LockGuard {
            client: self.inner.clone(),
            shared,
            done: false,
        })
    }
}

fn extend_interval(lease: &Lease) -> Duration {
    (lease.ttl() / 3).max(Duration::from_millis(1))
}

/// Marks a guard lost (once) and reports it.
fn mark_lost(shared: &GuardShared, reason: LostReason) {
    let changed = shared.state.send_if_modified(|s| {
        if matches!(s, GuardState::Lost(_)) {
            false
        } else {
            *s = GuardState::Lost(reason.clone());
            true
        }
    });
    if changed {
        let lease = lock(&shared.lease);
        tracing::warn!(
            lock = %lease.name(), backend = lease.backend(),
            fencing = lease.fencing_token().0, reason = %reason,
            "distlock.lost"
        );
    }
}

/// The client's one background task: extends due guards in batches and
/// declares guards lost when their validity passes.
async fn watchdog(client: Weak<ClientInner>) {
    loop {
        let Some(inner) = client.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next_wake = now + Duration::from_secs(3600);
        {
            let mut reg = lock(&inner.guards);
            if reg.guards.is_empty() {
                // Stop; the next adopt() starts a new task.
                reg.watchdog_running = false;
                return;
            }
            let mut expired = Vec::new();
            for g in reg.guards.values() {
                if matches!(*g.state.borrow(), GuardState::Lost(_)) {
                    expired.push(g.id);
                    continue;
                }
                let valid_until = lock(&g.lease).valid_until();
                if now >= valid_until {
                    mark_lost(g, LostReason::Expired);
                    expired.push(g.id);
                    continue;
                }
                let at = *lock(&g.next_extend);
                if now >= at {
                    due.push(g.clone());
                } else {
                    next_wake = next_wake.min(at);
                }
                next_wake = next_wake.min(valid_until);
            }
            for id in expired {
                reg.guards.remove(&id);
            }
        }
        if due.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(next_wake.into()) => {}
                _ = inner.wake.notified() => {}
            }
            continue;
        }
        extend_batch(&inner, &due).await;
    }
}

async fn extend_batch(inner: &ClientInner, due: &[Arc<GuardShared>]) {
    let leases: Vec<Lease> = due.iter().map(|g| lock(&g.lease).clone()).collect();
    // Never wait past the earliest validity among them.
    let deadline = leases
        .iter()
        .map(Lease::valid_until)
        .min()
        .unwrap_or_else(Instant::now);
    let span = tracing::trace_span!("distlock.extend", count = leases.len());
    let results = tokio::time::timeout_at(
        deadline.into(),
        inner.backend.extend_many(&leases).instrument(span),
    )
    .await;
    let now = Instant::now();
    match results {
        Ok(results) => {
            for (g, r) in due.iter().zip(results) {
                match r {
                    Ok(renewed) => {
                        tracing::trace!(
                            lock = %renewed.name(), fencing = renewed.fencing_token().0,
                            remaining_ms = renewed.remaining().as_millis() as u64,
                            "distlock.extended"
                        );
                        *lock(&g.next_extend) = now + extend_interval(&renewed);
                        *lock(&g.lease) = renewed;
                    }
                    Err(e) if e.is_not_held() => mark_lost(g, LostReason::Rejected),
                    Err(e) => {
                        let lease = lock(&g.lease).clone();
                        tracing::warn!(
                            lock = %lease.name(), error = %e,
                            remaining_ms = lease.remaining().as_millis() as u64,
                            "distlock.extend_failed"
                        );
                        *lock(&g.next_extend) = now + retry_interval(&lease);
                    }
                }
            }
        }
        Err(_) => {
            // Timed out at the earliest validity: the next round marks those lost.
            for g in due {
                let lease = lock(&g.lease).clone();
                *lock(&g.next_extend) = now + retry_interval(&lease);
            }
        }
    }
}

fn retry_interval(lease: &Lease) -> Duration {
    (lease.ttl() / 10)
        .min(lease.remaining() / 2)
        .max(Duration::from_millis(1))
}

/// Mirrors a backend's session liveness into one guard's state.
async fn follow_liveness(shared: Weak<GuardShared>, mut rx: watch::Receiver<Liveness>) {
    loop {
        let current = rx.borrow_and_update().clone();
        {
            let Some(g) = shared.upgrade() else { return };
            match current {
                Liveness::Live => {
                    g.state.send_if_modified(|s| {
                        let was = *s == GuardState::Suspended;
                        if was {
                            *s = GuardState::Held;
                        }
                        was
                    });
                }
                Liveness::Suspended => {
                    g.state.send_if_modified(|s| {
                        let was = *s == GuardState::Held;
                        if was {
                            *s = GuardState::Suspended;
                        }
                        was
                    });
                }
                Liveness::Lost(why) => {
                    mark_lost(&g, LostReason::Session(why));
                    return;
                }
            }
        }
        // Holding the guard here is fine: release and drop notify `ended`.
        let Some(g) = shared.upgrade() else { return };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    // The backend dropped its session channel: the session is gone.
                    if let Some(g) = shared.upgrade() {
                        mark_lost(&g, LostReason::Session("session closed".into()));
                    }
                    return;
                }
            }
            _ = g.ended.notified() => return,
        }
    }
}

/// A held lock that keeps itself alive until released or dropped.
///
/// Dropping a guard without calling [`release`](LockGuard::release) releases
/// it in the background (on the current tokio runtime); with no runtime left,
/// the lock frees when its ttl or session ends.
pub struct LockGuard {
    client: Arc<ClientInner>,
    shared: Arc<GuardShared>,
    done: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lease", &*lock(&self.shared.lease))
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl LockGuard {
    /// The lock name.
    pub fn name(&self) -> LockName {
        lock(&self.shared.lease).name().clone()
    }

    /// The fencing token to pass to the protected resource.
    pub fn fencing_token(&self) -> FencingToken {
        lock(&self.shared.lease).fencing_token()
    }

    /// The current lease (as last extended).
    pub fn lease(&self) -> Lease {
        lock(&self.shared.lease).clone()
    }

    /// Where the guard stands.
    pub fn state(&self) -> GuardState {
        self.shared.state.borrow().clone()
    }

    /// True once the lock can no longer be trusted.
    pub fn is_lost(&self) -> bool {
        matches!(*self.shared.state.borrow(), GuardState::Lost(_))
    }

    /// Resolves when the lock is lost; see [`LostReason`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        self.handle().lost()
    }

    /// A cheap, cloneable view of this guard (token, state, loss signal).
    pub fn handle(&self) -> GuardHandle {
        GuardHandle {
            shared: self.shared.clone(),
        }
    }

    /// Releases the lock now.
    ///
    /// Returns `NotHeld` if the lock had already been lost.
    ///
    /// # Cancel safety
    ///
    /// The guard stops being extended at once; if the future is dropped
    /// before the backend answered, the lock may stay held until its ttl or
    /// session ends.
    pub async fn release(mut self) -> Result<()> {
        self.done = true;
        let lease = self.stop();
        release_lease(&*self.client.backend, &lease).await
    }

    /// Stops extending the lease and hands it over, without releasing it:
    /// for passing the lock to another process ([`Lease::export`]).
    pub fn detach(mut self) -> Lease {
        self.done = true;
        self.stop()
    }

    fn stop(&self) -> Lease {
        lock(&self.client.guards).guards.remove(&self.shared.id);
        self.shared.ended.notify_one();
        lock(&self.shared.lease).clone()
    }
}

async fn release_lease(backend: &dyn DistributedLock, lease: &Lease) -> Result<()> {
    let span = tracing::debug_span!(
        "distlock.release", lock = %lease.name(), backend = lease.backend(),
        fencing = lease.fencing_token().0
    );
    let result = backend.release(lease).instrument(span).await;
    match &result {
        Ok(()) => tracing::debug!(lock = %lease.name(), "distlock.released"),
        Err(e) => tracing::warn!(lock = %lease.name(), error = %e, "distlock.release_failed"),
    }
    result
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let lease = self.stop();
        let backend = self.client.backend.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = release_lease(&*backend, &lease).await;
                });
            }
            Err(_) => tracing::warn!(
                lock = %lease.name(),
                "distlock.guard dropped outside a runtime; the lock frees at its ttl"
            ),
        }
    }
}

/// A cloneable view of a [`LockGuard`]: read the token, watch for loss.
#[derive(Clone)]
pub struct GuardHandle {
    shared: Arc<GuardShared>,
}

impl fmt::Debug for GuardHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardHandle")
            .field("lease", &*lock(&self.shared.lease))
            .finish()
    }
}

impl GuardHandle {
    /// The current lease (as last extended).
    pub fn lease(&self) -> Lease {
        lock(&self.shared.lease).clone()
    }

    /// The fencing token.
    pub fn fencing_token(&self) -> FencingToken {
        lock(&self.shared.lease).fencing_token()
    }

    /// The lock name.
    pub fn name(&self) -> LockName {
        lock(&self.shared.lease).name().clone()
    }

    /// True once the lock can no longer be trusted.
    pub fn is_lost(&self) -> bool {
        matches!(*self.shared.state.borrow(), GuardState::Lost(_))
    }

    /// Where the guard stands.
    pub fn state(&self) -> GuardState {
        self.shared.state.borrow().clone()
    }

    /// Resolves when the lock is lost.
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        let mut rx = self.shared.state.subscribe();
        async move {
            loop {
                if let GuardState::Lost(r) = &*rx.borrow_and_update() {
                    return r.clone();
                }
                if rx.changed().await.is_err() {
                    // The guard is gone; nothing will ever report loss.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
