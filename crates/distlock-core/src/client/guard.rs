//! [`LockGuard`]: a held lock that keeps itself alive, and its cloneable
//! view [`GuardHandle`].

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::backend::DistributedLock;
use crate::error::Result;
use crate::lease::{FencingToken, Lease};
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::AcquireOptions;
use crate::sync::lock;

use super::ClientInner;

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

impl LostReason {
    /// A short label for metrics: `rejected`, `expired`, `session`.
    pub fn label(&self) -> &'static str {
        match self {
            LostReason::Rejected => "rejected",
            LostReason::Expired => "expired",
            LostReason::Session(_) => "session",
        }
    }
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

/// What a guard and the watchdog share.
pub(crate) struct GuardShared {
    pub(crate) id: u64,
    /// The backend's name, for metrics.
    backend: &'static str,
    pub(crate) lease: Mutex<Lease>,
    pub(crate) next_extend: Mutex<Instant>,
    pub(crate) state: watch::Sender<GuardState>,
    /// Stops the per-guard liveness task.
    pub(crate) ended: Notify,
}

impl GuardShared {
    pub(crate) fn new(id: u64, backend: &'static str, lease: Lease) -> Self {
        let (state, _) = watch::channel(GuardState::Held);
        let next_extend = Instant::now() + extend_interval(&lease);
        GuardShared {
            id,
            backend,
            lease: Mutex::new(lease),
            next_extend: Mutex::new(next_extend),
            state,
            ended: Notify::new(),
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        matches!(*self.state.borrow(), GuardState::Lost(_))
    }

    /// Marks the guard lost (once) and reports it.
    pub(crate) fn mark_lost(&self, reason: LostReason) {
        let changed = self.state.send_if_modified(|s| {
            if matches!(s, GuardState::Lost(_)) {
                false
            } else {
                *s = GuardState::Lost(reason.clone());
                true
            }
        });
        if changed {
            crate::layer::telemetry::lost(
                self.backend,
                &lock(&self.lease),
                reason.label(),
                &reason,
            );
        }
    }

    /// Takes a renewed lease and schedules the next extension — unless the
    /// lease was replaced (upgraded) while the renewal was in flight.
    pub(crate) fn renewed(&self, lease: Lease) {
        let mut current = lock(&self.lease);
        if current.fencing_token() != lease.fencing_token() {
            return;
        }
        *lock(&self.next_extend) = Instant::now() + extend_interval(&lease);
        *current = lease;
    }

    /// The backend refused to extend `lease`: lost, unless the guard holds
    /// another lease by now (an upgrade replaced it).
    pub(crate) fn rejected(&self, lease: &Lease) {
        let replaced = lock(&self.lease).fencing_token() != lease.fencing_token();
        if !replaced {
            self.mark_lost(LostReason::Rejected);
        }
    }

    /// Takes the lease an upgrade granted.
    fn replaced(&self, lease: Lease) {
        *lock(&self.next_extend) = Instant::now() + extend_interval(&lease);
        *lock(&self.lease) = lease;
    }
}

/// How often a lease is extended: a third of its ttl.
pub(crate) fn extend_interval(lease: &Lease) -> Duration {
    (lease.ttl() / 3).max(Duration::from_millis(1))
}

/// A held lock that keeps itself alive until released or dropped.
///
/// Dropping a guard without calling [`release`](LockGuard::release) releases
/// it in the background (on the current tokio runtime); with no runtime left,
/// the lock frees when its ttl or session ends. Because dropping releases,
/// a guard that is not bound to a variable is released at once — hence
/// `#[must_use]`.
#[must_use = "dropping a LockGuard releases the lock at once; bind it (`let guard = …`) for as long as the work runs"]
pub struct LockGuard {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) shared: Arc<GuardShared>,
    pub(crate) done: bool,
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
        self.shared.is_lost()
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

    /// Extends the lease to `ttl` from now, at once; the background
    /// extension then keeps it at that ttl.
    ///
    /// A `NotHeld` answer marks the guard lost.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have extended the lease; the
    /// guard keeps the lease it had, so its validity stays correct.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        let current = self.lease();
        match self.client.backend.extend(&current, ttl).await {
            Ok(renewed) => {
                self.shared.renewed(renewed);
                Ok(())
            }
            Err(e) => {
                if e.is_not_held() {
                    self.shared.rejected(&current);
                }
                Err(e)
            }
        }
    }

    /// The mode the lock is held in: exclusive (a mutex or writer), shared
    /// (a reader) or a semaphore's permit.
    pub fn mode(&self) -> Mode {
        lock(&self.shared.lease).mode()
    }

    /// Upgrades a read lock to the write lock in place, waiting up to the
    /// client's default wait for the other readers to leave. Atomic: no
    /// other writer holds the name in between. On success the guard holds
    /// the name exclusively, with a new, greater fencing token; otherwise it
    /// still holds its read lock.
    ///
    /// # Errors
    ///
    /// `Timeout` (`Held` with a zero wait) when other readers stayed for the
    /// whole wait; `Unsupported` on backends without
    /// [`Capabilities::upgrade`](crate::Capabilities); `InvalidOptions` for
    /// a guard that is not a reader; `NotHeld` when the read lock was lost.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the read lock held and not upgraded.
    pub async fn upgrade(&self) -> Result<()> {
        let options = self.client.defaults;
        self.upgrade_with(&options).await
    }

    /// [`upgrade`](Self::upgrade) with `options` (its ttl becomes the
    /// write lock's ttl).
    ///
    /// # Errors
    ///
    /// As for [`upgrade`](Self::upgrade), with `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the read lock held and not upgraded.
    pub async fn upgrade_with(&self, options: &AcquireOptions) -> Result<()> {
        let current = self.lease();
        match self.client.backend.upgrade(&current, options).await {
            Ok(Some(lease)) => {
                self.shared.replaced(lease);
                Ok(())
            }
            Ok(None) => Err(super::not_acquired(current.name(), options.wait)),
            Err(e) => {
                if e.is_not_held() {
                    self.shared.rejected(&current);
                }
                Err(e)
            }
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
        self.client.backend.release(&lease).await
    }

    /// Stops extending the lease and hands it over, without releasing it:
    /// for passing the lock to another process ([`Lease::export`]).
    #[must_use = "the detached lease stays held until released or its ttl ends"]
    pub fn detach(mut self) -> Lease {
        self.done = true;
        self.stop()
    }

    fn stop(&self) -> Lease {
        self.client.forget(self.shared.id);
        self.shared.ended.notify_one();
        lock(&self.shared.lease).clone()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let lease = self.stop();
        let backend: Arc<dyn DistributedLock> = self.client.backend.clone();
        let kind = backend.backend_name();
        // Dropped here: spawned on the current runtime, or (with none) a
        // warning that the lock frees at its ttl or session end.
        let _release = crate::cleanup::CleanupOnDrop::armed(kind, "dropped guard", async move {
            let _ = backend.release(&lease).await;
        });
    }
}

/// A cloneable view of a [`LockGuard`]: read the token, watch for loss.
#[derive(Clone)]
pub struct GuardHandle {
    pub(crate) shared: Arc<GuardShared>,
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
        self.shared.is_lost()
    }

    /// Where the guard stands.
    pub fn state(&self) -> GuardState {
        self.shared.state.borrow().clone()
    }

    /// Resolves when the lock is lost.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
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
