//! The API applications touch: [`LockClient`] hands out [`LockGuard`]s that
//! keep themselves alive in the background and say when they are lost.
//!
//! One watchdog task per client extends every guard of that client at about a
//! third of its ttl, batching the guards that are due together into one
//! [`extend_many`](DistributedLock::extend_many) call. A guard is *lost* when an
//! extension is refused, when its validity passes before an extension
//! succeeded, or when the backend reports its session gone; `lost()` then
//! resolves and `is_lost()` turns true.
//!
//! The vocabulary, everywhere: `lock*` waits (the client's default wait
//! unless options say otherwise) and fails with `Timeout`; `try_lock*` answers
//! `Ok(None)` when not acquired; `with_lock*` runs work under the lock and
//! releases it; a `_with` suffix takes explicit [`AcquireOptions`]. The same
//! vocabulary serves every primitive: `read_lock*` / `write_lock*` for a
//! reader-writer lock, a [`Semaphore`]'s `acquire*` for its permits,
//! `lock_many*` / `try_lock_many*` for several names at once
//! ([`MultiLockGuard`]), and `elect*` / `try_elect*` for leader election
//! ([`Leadership`]), watched by [`observe`](LockClient::observe)rs.

mod guard;
mod leader;
mod multi;
mod observe;
mod primitives;
mod watchdog;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::DistributedLock;
use crate::error::{LockError, Result};
use crate::lease::Lease;
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};
use crate::sync::lock;

use guard::GuardShared;
pub use guard::{GuardHandle, GuardState, LockGuard, LostReason};
pub use leader::Leadership;
pub use multi::MultiLockGuard;
pub use observe::{Leader, LeaderObserver, OBSERVE_POLL};
pub use primitives::Semaphore;

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

impl IntoLockName for &String {
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
/// use distlock_core::{AcquireOptions, LockClient};
///
/// let client = LockClient::new(backend);
/// let guard = client.lock("invoices/2026-11").await?; // waits up to 30 s
/// println!("fencing token {}", guard.fencing_token());
/// guard.release().await?;
///
/// let opts = AcquireOptions::try_once(Duration::from_secs(5));
/// if let Some(guard) = client.try_lock_with("invoices/2026-11", &opts).await? {
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockClient {
    inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) backend: Arc<dyn DistributedLock>,
    defaults: AcquireOptions,
    pub(crate) guards: Mutex<Registry>,
    /// Wakes the watchdog when a guard is added.
    pub(crate) wake: Notify,
}

impl ClientInner {
    /// Stops keeping a guard alive.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.guards).guards.remove(&id);
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    next_id: u64,
    pub(crate) guards: HashMap<u64, Arc<GuardShared>>,
    pub(crate) watchdog_running: bool,
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
    /// A client with the default options, [`AcquireOptions::default()`]:
    /// a 30 s ttl (kept alive in the background), and `lock`/`with_lock`
    /// wait up to 30 s ([`DEFAULT_WAIT`](crate::DEFAULT_WAIT)).
    pub fn new(backend: Arc<dyn DistributedLock>) -> Self {
        Self::with_defaults(backend, AcquireOptions::default())
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

    /// Acquires `name` with the default options, waiting up to the default
    /// wait (30 s unless the client was built with other defaults).
    ///
    /// # Errors
    ///
    /// `Timeout` when not acquired within the wait; `Held` when the wait is
    /// zero and someone else holds it; backend errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn lock(&self, name: impl IntoLockName) -> Result<LockGuard> {
        let opts = self.inner.defaults;
        self.lock_with(name, &opts).await
    }

    /// Acquires `name` with `options`.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock), with `options.wait`.
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
            None => Err(not_acquired(&name, options.wait)),
        }
    }

    /// Acquires `name` with the default ttl, trying once; `Ok(None)` when
    /// someone else holds it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_lock(&self, name: impl IntoLockName) -> Result<Option<LockGuard>> {
        let opts = self.inner.defaults.with_wait(Wait::NoWait);
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
        self.acquire_guard(name.into_lock_name()?, Mode::Exclusive, options)
            .await
    }

    /// Acquires `name` in `mode` and wraps the lease in a guard.
    pub(crate) async fn acquire_guard(
        &self,
        name: LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>> {
        let Some(lease) = self.inner.backend.acquire_as(&name, mode, options).await? else {
            return Ok(None);
        };
        self.guard_for(lease).await.map(Some)
    }

    /// Wraps a lease just acquired in a guard; outside a tokio runtime (no
    /// guard could keep or free it) gives it back now and fails.
    pub(crate) async fn guard_for(&self, lease: Lease) -> Result<LockGuard> {
        if tokio::runtime::Handle::try_current().is_err() {
            let _ = self.inner.backend.release(&lease).await;
            return Err(no_runtime());
        }
        self.adopt(lease)
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
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `work` and releases the lock in the
    /// background.
    pub async fn with_lock<F, Fut, T>(&self, name: impl IntoLockName, work: F) -> Result<T>
    where
        F: FnOnce(GuardHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = self.inner.defaults;
        self.with_lock_with(name, &opts, work).await
    }

    /// [`with_lock`](Self::with_lock) with explicit options.
    ///
    /// # Cancel safety
    ///
    /// As for [`with_lock`](Self::with_lock).
    pub async fn with_lock_with<F, Fut, T>(
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
        finish(guard, out).await
    }

    /// Runs `work` only if `name` is free right now (default ttl, no
    /// waiting), then releases; `Ok(None)` without running it when someone
    /// else holds the lock — for jobs that one instance of many should run
    /// and the others skip.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// match client.try_with_lock("nightly-report", |_| async { 42 }).await? {
    ///     Some(n) => println!("ran: {n}"),
    ///     None => println!("another instance runs it"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`with_lock`](Self::with_lock).
    pub async fn try_with_lock<F, Fut, T>(
        &self,
        name: impl IntoLockName,
        work: F,
    ) -> Result<Option<T>>
    where
        F: FnOnce(GuardHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = self.inner.defaults.with_wait(Wait::NoWait);
        let Some(guard) = self.try_lock_with(name, &opts).await? else {
            return Ok(None);
        };
        let out = work(guard.handle()).await;
        finish(guard, out).await.map(Some)
    }

    /// [`with_lock_with`](Self::with_lock_with) for fallible work: the
    /// work's own error type carries lock errors too, so the result is one
    /// `Result<T, E>` rather than a nested one.
    ///
    /// ```
    /// # #[derive(Debug)] enum MyError { Lock(distlock_core::LockError) }
    /// # impl From<distlock_core::LockError> for MyError { fn from(e: distlock_core::LockError) -> Self { MyError::Lock(e) } }
    /// # async fn demo(client: distlock_core::LockClient) -> Result<(), MyError> {
    /// let opts = *client.defaults();
    /// let n: u64 = client
    ///     .with_lock_fallible("ledger", &opts, |held| async move {
    ///         Ok::<_, MyError>(held.fencing_token().get())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`with_lock`](Self::with_lock).
    pub async fn with_lock_fallible<F, Fut, T, E>(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
        work: F,
    ) -> std::result::Result<T, E>
    where
        F: FnOnce(GuardHandle) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<LockError>,
    {
        let guard = self.lock_with(name, options).await?;
        let out = work(guard.handle()).await;
        match finish(guard, ()).await {
            Ok(()) => out,
            // The lock's failure wins: the work's outcome cannot be trusted.
            Err(e) => Err(e.into()),
        }
    }

    /// [`with_lock_with`](Self::with_lock_with) that stops the work as soon
    /// as the lock is lost: `work`'s future is dropped at that moment and
    /// the answer is `NotHeld`. Use it for work that is safe to abandon
    /// half-way (each step fenced or idempotent).
    ///
    /// # Cancel safety
    ///
    /// As for [`with_lock`](Self::with_lock).
    pub async fn with_lock_until_lost<F, Fut, T>(
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
        let lost = guard.lost();
        let work = work(guard.handle());
        tokio::select! {
            out = work => finish(guard, out).await,
            reason = lost => {
                let name = guard.name();
                drop(guard);
                tracing::warn!(lock = %name, reason = %reason, "distlock.work_cancelled");
                Err(LockError::not_held(name.as_str()))
            }
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| no_runtime())?;
        let liveness = self.inner.backend.liveness(&lease);
        let spawn_watchdog;
        let shared = {
            let mut reg = lock(&self.inner.guards);
            reg.next_id += 1;
            let shared = Arc::new(GuardShared::new(
                reg.next_id,
                self.inner.backend.backend_name(),
                lease,
            ));
            reg.guards.insert(shared.id, shared.clone());
            spawn_watchdog = !reg.watchdog_running;
            reg.watchdog_running = true;
            shared
        };
        if spawn_watchdog {
            runtime.spawn(watchdog::run(Arc::downgrade(&self.inner)));
        } else {
            self.inner.wake.notify_one();
        }
        if let Some(rx) = liveness {
            runtime.spawn(watchdog::follow_liveness(Arc::downgrade(&shared), rx));
        }
        Ok(LockGuard {
            client: self.inner.clone(),
            shared,
            done: false,
        })
    }
}

/// The error for building a guard outside a tokio runtime.
fn no_runtime() -> LockError {
    LockError::invalid_config("LockClient::adopt must be called inside a tokio runtime")
}

/// The error for a lock not acquired within `wait`.
pub(crate) fn not_acquired(name: &LockName, wait: Wait) -> LockError {
    match wait {
        Wait::NoWait => LockError::Held {
            name: name.to_string(),
        },
        _ => LockError::Timeout {
            name: name.to_string(),
            waited: wait.as_duration().unwrap_or(Duration::MAX),
        },
    }
}

/// Releases after work; `NotHeld` if the lock was lost while it ran.
async fn finish<T>(guard: LockGuard, out: T) -> Result<T> {
    let lost = guard.is_lost();
    let name = guard.name();
    match guard.release().await {
        Ok(()) if !lost => Ok(out),
        Ok(()) => Err(LockError::not_held(name.as_str())),
        Err(e) => Err(e),
    }
}
