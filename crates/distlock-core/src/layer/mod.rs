//! The checked layer: what a backend implements, and what the core does
//! around it for every backend.
//!
//! A backend implements [`LockBackend`]: its algorithm and nothing else —
//! one `grant` (take the lock or wait for it), `renew`, `revoke`, optionally
//! a batched renew, a session channel and a status read. The core implements
//! [`DistributedLock`](crate::DistributedLock) for every `LockBackend`
//! (a blanket implementation, so no backend can bypass it), and in it, once:
//!
//! - validates options against the backend's [`Capabilities`], refuses modes
//!   the backend does not serve, checks that a lease came from this backend;
//! - draws the owner token and builds the [`Lease`], its validity computed
//!   by the one drift rule in [`validity`](crate::validity);
//! - splits `extend_many` into the backend's batches and puts the answers
//!   back in the callers' order;
//! - emits the `tracing` spans and events and the `metrics` of every
//!   operation (see [`telemetry`]);
//! - checks holder labels (leader identities) and refuses them to backends
//!   that do not store them;
//! - takes several names in one global order
//!   ([`acquire_many`](crate::DistributedLock::acquire_many));
//! - turns the release of a lease whose lock-at-least-for minimum has not
//!   passed into [`release_after`](LockBackend::release_after) with the
//!   hold still owed (rounded up to the backend's minimum ttl).
//!
//! Cancellation clean-up inside a backend goes through
//! [`CleanupOnDrop`](crate::cleanup::CleanupOnDrop).

mod batch;
mod checked;
mod rules;
pub mod telemetry;

pub use rules::check_label;

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::backend::{ChangeNotices, Liveness, LockStatus};
use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};
use crate::lease::{FencingToken, Lease, OwnerToken};
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::AcquireOptions;

/// One acquire, as the core hands it to a backend: already validated.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AcquireRequest {
    /// The lock name.
    pub name: LockName,
    /// The kind of hold; always one the backend's capabilities claim.
    pub mode: Mode,
    /// Ttl, wait and backoff, checked against the backend's limits.
    pub options: AcquireOptions,
    /// The owner token the core drew for this acquire; the backend stores it
    /// with the hold and compares it on renew and revoke.
    pub owner: OwnerToken,
    /// The holder label to store with an exclusive hold (an elected
    /// leader's identity) and report in [`LockStatus::holder`] while it is
    /// held: already checked (non-empty, at most [`MAX_LABEL_LEN`] bytes, no
    /// NUL). Only sent to backends that claim
    /// [`Capabilities::labels`].
    pub label: Option<String>,
}

/// The longest holder label (leader identity) accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 256;

impl AcquireRequest {
    /// A request for an exclusive hold with a fresh owner token.
    pub fn new(name: LockName, options: AcquireOptions) -> Self {
        AcquireRequest {
            name,
            mode: Mode::Exclusive,
            options,
            owner: OwnerToken::random(),
            label: None,
        }
    }

    /// The same request carrying a holder label (an elected leader's
    /// identity).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The same request for another mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The same request for an owner token drawn earlier (an upgrade keeps
    /// the hold's owner).
    pub fn with_owner(mut self, owner: OwnerToken) -> Self {
        self.owner = owner;
        self
    }

    /// The requested ttl.
    pub fn ttl(&self) -> Duration {
        self.options.ttl
    }
}

/// What a backend returns for a successful grant; the core turns it into a
/// [`Lease`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The fencing token of this hold.
    pub fencing: FencingToken,
    /// When the request that took the lock was *sent* (before the round
    /// trip): the server's countdown cannot have started earlier.
    pub sent: Instant,
    /// Backend data carried by the lease (node path, key, lease id…).
    pub data: String,
}

impl Grant {
    /// A grant with no backend data.
    pub fn new(fencing: FencingToken, sent: Instant) -> Self {
        Grant {
            fencing,
            sent,
            data: String::new(),
        }
    }

    /// Attaches backend data to the lease.
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = data.into();
        self
    }
}

/// What a backend returns for a successful renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// When the request that renewed the lease was sent.
    pub sent: Instant,
}

impl Renewal {
    /// A renewal by a request sent at `sent`.
    pub fn sent_at(sent: Instant) -> Self {
        Renewal { sent }
    }
}

/// The backend-facing contract: a backend's algorithm, nothing else.
///
/// Implement this; the core's blanket implementation turns it into a
/// [`DistributedLock`](crate::DistributedLock) with validation, validity,
/// batching, tracing and metrics (see the [module docs](self)). Each method
/// receives input the core already checked: options within
/// [`claims`](LockBackend::claims)' limits, a mode the backend serves, a
/// lease issued by a backend of this [`kind`](LockBackend::kind).
///
/// Method docs in a backend should name the round trips each one costs.
#[async_trait]
pub trait LockBackend: Send + Sync + fmt::Debug + 'static {
    /// Short backend name (`memory`, `sqlite`, `redis`, …), recorded in the
    /// leases it issues.
    fn kind(&self) -> &'static str;

    /// What this backend promises; the conformance suite checks each claim.
    fn claims(&self) -> Capabilities;

    /// Takes `request.name` in `request.mode`, waiting up to
    /// `request.options.wait`; `Ok(None)` when the wait ran out while
    /// others held it.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel safe: a dropped future leaves nothing held and nothing
    /// queued (use [`CleanupOnDrop`](crate::cleanup::CleanupOnDrop) for what
    /// needs a round trip to undo).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>>;

    /// Extends a held lease to `ttl` from now.
    ///
    /// Must answer `NotHeld` when the server no longer holds the lease for
    /// its owner: released, taken over, or expired — even when nobody took
    /// it since. An expired lease is never brought back to life.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal>;

    /// Extends several leases (each to its own ttl) in as few round trips as
    /// the backend can, answering one result per entry, in order. Called
    /// with at most [`max_batch`](LockBackend::max_batch) entries. The
    /// default renews them concurrently, one call each.
    ///
    /// # Cancel safety
    ///
    /// As for [`renew`](LockBackend::renew).
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        futures::future::join_all(batch.iter().map(|(lease, ttl)| self.renew(lease, *ttl))).await
    }

    /// The most leases one [`renew_batch`](LockBackend::renew_batch) call
    /// takes (a server's limit on one request, say).
    fn max_batch(&self) -> usize {
        128
    }

    /// Gives a held lease back, waking the next waiter; `NotHeld` when the
    /// server no longer holds it for its owner.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl (or session) ends.
    async fn revoke(&self, lease: &Lease) -> Result<()>;

    /// Turns the shared hold `lease` into an exclusive one, in place and
    /// atomically (no writer comes in between), waiting up to
    /// `request.options.wait` for the other holders to leave; `Ok(None)`
    /// when the wait ran out, the shared hold still held. `request` carries
    /// the lease's name and owner, [`Mode::Exclusive`] and the new ttl; the
    /// grant's fencing token must be greater than every earlier grant's.
    /// Only called when [`claims`](LockBackend::claims) has `upgrade`; the
    /// default refuses.
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the shared hold as it was (still held, not
    /// upgraded, nothing queued).
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        let _ = (lease, request);
        Err(LockError::Unsupported {
            backend: self.kind(),
            operation: "upgrading a shared hold",
        })
    }

    /// The liveness channel of the session behind `lease`, for backends
    /// whose holds live as long as a session.
    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let _ = lease;
        None
    }

    /// What the backend can tell about `name` without taking it. A backend
    /// that claims [`Capabilities::labels`] reports the exclusive holder's
    /// label and its own fencing token.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let _ = name;
        Err(LockError::Unsupported {
            backend: self.kind(),
            operation: "status",
        })
    }

    /// Notices that the holders of `name` may have changed (grants,
    /// releases, hand-overs; not expiries), for backends that claim
    /// [`Capabilities::watch`]; `Ok(None)` (the default) for the others.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream stops watching.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        let _ = name;
        Ok(None)
    }

    /// Releases `lease` *later*: keeps it held on the server for `hold`
    /// from now, then lets it go (lock-at-least-for: the lease was released
    /// before its minimum passed). `hold` is already rounded up to
    /// [`min_ttl`](Capabilities::min_ttl) and includes the drift allowance
    /// ([`server_hold`](crate::validity::server_hold)). Waiters must not
    /// get the lock before `hold` passes, and must get it soon after
    /// (wake them if they wait for the old expiry). Only called when
    /// [`claims`](LockBackend::claims) has `at_least`.
    ///
    /// The default sets the hold's server-side expiry with
    /// [`renew`](LockBackend::renew) — right for backends whose holds
    /// expire at their ttl ([`Capabilities::ttl_expiry`]); backends whose
    /// holds live with a session override it, and the default refuses them
    /// with `Unsupported` rather than release early.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have shortened the hold; if not, it
    /// frees when its ttl ends (never before the minimum).
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        if !self.claims().ttl_expiry {
            return Err(LockError::Unsupported {
                backend: self.kind(),
                operation: "releasing a hold after a minimum time (at_least)",
            });
        }
        self.renew(lease, hold).await.map(|_| ())
    }
}
