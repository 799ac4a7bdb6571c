//! The contract every backend implements.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};
use crate::lease::{FencingToken, Lease};
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::AcquireOptions;

/// A distributed lock service, as applications and the client see it.
///
/// The trait is object safe; applications usually hold an
/// `Arc<dyn DistributedLock>` (from `distlock::connect(url)`) and use it
/// through [`LockClient`](crate::LockClient), which adds guards, background
/// extension and loss detection.
///
/// Backend authors do not implement this trait: they implement
/// [`LockBackend`](crate::LockBackend), and the core's checked layer
/// implements `DistributedLock` for it (validation, lease validity,
/// batching, tracing and metrics written once). Then they run the
/// `distlock-conformance` suite against it.
///
/// Semantics every implementation honours (the suite checks them):
/// mutual exclusion while a lease is valid; an abandoned lock frees after at
/// most its ttl (or session timeout); only the owner token can extend or
/// release; fencing tokens strictly increase across holders of a name;
/// dropping an `acquire` future leaves nothing held and nothing queued; a
/// backend that is down answers with an error within the caller's deadline.
#[async_trait]
pub trait DistributedLock: Send + Sync + fmt::Debug {
    /// Short backend name (`memory`, `sqlite`, `redis`, …), as found in
    /// [`Lease::backend`].
    fn backend_name(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Tries to take `name`, waiting up to `options.wait`.
    ///
    /// Returns `Ok(Some(lease))` when acquired, `Ok(None)` when the wait ran
    /// out while someone else held it, and an error for bad options
    /// (`InvalidOptions`) or a backend that cannot answer (`Unavailable`,
    /// `Backend`) — also within the wait.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing held and
    /// nothing queued: a queue entry is removed and a lock taken in the same
    /// instant is released (in the background where that needs a round trip).
    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        self.acquire_as(name, Mode::Exclusive, options).await
    }

    /// [`acquire`](DistributedLock::acquire) for any [`Mode`]: exclusive,
    /// shared or a permit. A mode the backend's capabilities do not claim is
    /// `Unsupported`.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](DistributedLock::acquire).
    async fn acquire_as(
        &self,
        name: &LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>>;

    /// Extends a held lease to `ttl` from now; returns the renewed lease.
    ///
    /// Fails with `NotHeld` when the lease expired (even if nobody took the
    /// lock since), was released, or another owner holds the lock.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have extended the lease; the old
    /// lease stays correct either way (its validity is the shorter one).
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease>;

    /// Releases a held lease, waking the next waiter.
    ///
    /// Fails with `NotHeld` when the lease was no longer held.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have released the lock; if not, it
    /// frees when the lease's ttl (or session) ends.
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// Extends several leases, each by its own [`Lease::ttl`].
    ///
    /// Returns one result per lease, in order. Backends with
    /// [`Capabilities::batch_extend`] do it in one round trip per server
    /// for each batch; others extend the leases concurrently.
    ///
    /// # Cancel safety
    ///
    /// As for [`extend`](DistributedLock::extend).
    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        futures::future::join_all(leases.iter().map(|l| self.extend(l, l.ttl()))).await
    }

    /// Upgrades a shared (reader) lease to an exclusive (writer) one in
    /// place, atomically: no other writer holds the name in between. Waits
    /// up to `options.wait` for the other readers to leave (readers that
    /// arrive meanwhile queue behind it on fair backends); `Ok(None)` when
    /// the wait ran out, the shared lease still held. The upgraded lease
    /// keeps the owner, has `options.ttl` and a fencing token greater than
    /// every earlier grant's.
    ///
    /// Two readers upgrading at once wait on each other until one's wait
    /// ends; take the write lock from the start when a writer may be needed.
    ///
    /// # Errors
    ///
    /// `Unsupported` unless [`Capabilities::upgrade`]; `InvalidOptions` for
    /// a lease that is not shared; `NotHeld` when the lease is no longer
    /// held.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the shared lease held and not upgraded.
    async fn upgrade(&self, lease: &Lease, options: &AcquireOptions) -> Result<Option<Lease>> {
        let _ = (lease, options);
        Err(LockError::Unsupported {
            backend: self.backend_name(),
            operation: "upgrading a shared hold",
        })
    }

    /// A channel reporting the liveness of the session behind `lease`, for
    /// backends whose liveness is a session (ZooKeeper, etcd). `None` for
    /// backends that rely on the ttl alone.
    fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let _ = lease;
        None
    }

    /// What the backend can tell about `name` without taking it.
    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        let _ = name;
        Err(LockError::Unsupported {
            backend: self.backend_name(),
            operation: "status",
        })
    }

    /// Takes `name` exclusively with `identity` stored as the holder's label,
    /// waiting up to `options.wait`: the backend side of leader election
    /// ([`LockClient::elect`](crate::LockClient::elect)). The lease's
    /// fencing token is the leader's term; [`status`](Self::status) reports
    /// the identity in [`LockStatus::holder`] while the lease is held.
    ///
    /// # Errors
    ///
    /// `Unsupported` unless [`Capabilities::labels`]; `InvalidConfig` for an
    /// identity that is empty, longer than
    /// [`MAX_LABEL_LEN`](crate::MAX_LABEL_LEN) bytes or contains NUL; as
    /// [`acquire`](Self::acquire) otherwise.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire): nothing held, nothing queued.
    async fn elect(
        &self,
        name: &LockName,
        identity: &str,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        let _ = (name, identity, options);
        Err(LockError::Unsupported {
            backend: self.backend_name(),
            operation: "holder labels (leader identities)",
        })
    }

    /// Takes every name of `names` exclusively, all or nothing, waiting up to
    /// `options.wait` in all; `Ok(None)` (nothing held) when some name
    /// stayed held by others for the whole wait.
    ///
    /// The names are taken one after the other in one global order — the
    /// byte order of the names, duplicates dropped ([`lock_order`](crate::lock_order)) —
    /// whatever order the caller gave, so two callers taking overlapping
    /// sets cannot each hold a name the other waits for (no deadlock). Each
    /// step waits for what is left of the wait; the names already taken are
    /// extended meanwhile (in one [`extend_many`](Self::extend_many) per
    /// third of the ttl), so a long wait cannot let them expire. The leases
    /// come back in that order, one per distinct name.
    ///
    /// The default is that algorithm over [`acquire`](Self::acquire); a
    /// backend that can take several names in one request may do better,
    /// but must keep the order (the conformance suite checks it).
    ///
    /// # Errors
    ///
    /// `InvalidName` for an empty set; any error of a step (after giving
    /// back the names taken), including `NotHeld` when a name taken earlier
    /// was lost while a later one was awaited.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued: the step
    /// in flight cleans up after itself, and the names already taken are
    /// released in the background.
    async fn acquire_many(
        self: Arc<Self>,
        names: &[LockName],
        options: &AcquireOptions,
    ) -> Result<Option<Vec<Lease>>>
    where
        Self: 'static,
    {
        crate::multi::acquire_in_order(self, names, options).await
    }

    /// A stream of notices that the holders of `name` may have changed (a
    /// grant, a release, a hand-over), for backends that can notify
    /// ([`Capabilities::watch`]); `Ok(None)` for the others, which leader
    /// observers poll instead. A notice carries nothing: read
    /// [`status`](Self::status) again. Expiry of a hold is not notified
    /// (observers read again when the holder's `expires_in` passes). The
    /// stream may end (a lost connection): ask again.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (or the stream) stops watching; nothing else
    /// changes.
    async fn changes(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        let _ = name;
        Ok(None)
    }
}

/// Notices that the holders of one name may have changed, from
/// [`DistributedLock::changes`] (and [`LockBackend::watch`](crate::LockBackend::watch)).
pub type ChangeNotices = BoxStream<'static, ()>;

/// The health of a session-based holder, as reported by
/// [`DistributedLock::liveness`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Connected; locks held through the session are safe.
    Live,
    /// Disconnected, but the session may still be alive on the server: locks
    /// may or may not be held. Do not touch the protected resource.
    Suspended,
    /// The session is gone: every lock it held is lost.
    Lost(String),
}

/// What a backend can tell about a name, for `distlock status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStatus {
    /// Someone holds the lock now.
    pub held: bool,
    /// The current (or last issued) fencing token, if the backend exposes
    /// it. Backends that claim [`Capabilities::labels`] report the exclusive
    /// holder's own token while one holds the name (a leader's term).
    pub fencing_token: Option<FencingToken>,
    /// How long until the current hold expires, if held and ttl-based.
    pub expires_in: Option<Duration>,
    /// How many clients wait in line, if the backend keeps a queue.
    pub waiters: Option<usize>,
    /// The label the exclusive holder was granted with (an elected leader's
    /// identity), on backends that claim [`Capabilities::labels`]; `None`
    /// when free, held without a label, or held in another mode.
    pub holder: Option<String>,
}

impl LockStatus {
    /// A status (for backend implementations).
    pub fn new(
        held: bool,
        fencing_token: Option<FencingToken>,
        expires_in: Option<Duration>,
        waiters: Option<usize>,
    ) -> Self {
        LockStatus {
            held,
            fencing_token,
            expires_in,
            waiters,
            holder: None,
        }
    }

    /// The same status with the exclusive holder's label (for backend
    /// implementations that claim [`Capabilities::labels`]).
    pub fn with_holder(mut self, holder: Option<String>) -> Self {
        self.holder = holder;
        self
    }
}
