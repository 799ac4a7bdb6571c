//! The backend: one session shared by all its leases, and the lock recipe's
//! operations in the order a lock lives them — acquire, extend, release,
//! status.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, ChangeNotices, Grant, Lease, Liveness, LockBackend,
    LockName, LockStatus, Renewal, Result,
};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::error::BACKEND;
use crate::hold::HoldLimit;
use crate::queue::{LeaseNode, LockTree};
use crate::sessions::Sessions;
use crate::{acquire, changes, extend, hold, release, status};

/// Shortest ttl accepted: the watchdog extends at a third of it, and each
/// extension is a round trip to the ensemble.
const MIN_TTL: Duration = Duration::from_millis(50);

/// Longest ttl accepted. Nothing on the server counts it down (the lock
/// lives as long as the session), so the bound is only a sanity limit.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A distributed lock on a ZooKeeper ensemble; see the [crate docs](crate).
///
/// Cloning is cheap: clones share the session.
#[derive(Clone)]
pub struct ZkBackend {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Sessions,
    tree: LockTree,
    /// The longest session the ensemble grants (lock-at-least-for).
    hold_limit: HoldLimit,
}

impl fmt::Debug for ZkBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkBackend")
            .field("sessions", &self.inner.sessions)
            .finish()
    }
}

impl ZkBackend {
    /// Connects with a `zk://` URL (see [`ZkConfig::from_url`]).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the half-open session.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::from_config(ZkConfig::from_url(url)?).await
    }

    /// Connects with explicit settings: opens the session (one handshake,
    /// within the connect timeout).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the half-open session.
    pub async fn from_config(config: ZkConfig) -> Result<Self> {
        config.validate()?;
        let tree = LockTree::new(config.base_path(), config.user().is_some());
        let sessions = Sessions::open(config).await?;
        Ok(ZkBackend {
            inner: Arc::new(Inner {
                sessions,
                tree,
                hold_limit: HoldLimit::default(),
            }),
        })
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &ZkConfig {
        self.inner.sessions.config()
    }

    /// The session's negotiated timeout (what bounds how long a dead holder
    /// keeps its locks).
    pub fn session_timeout(&self) -> Duration {
        self.inner.sessions.latest().timeout
    }

    /// The current session's id.
    pub fn session_id(&self) -> i64 {
        self.inner.sessions.latest().id
    }

    /// The current session's liveness.
    pub fn session_liveness(&self) -> watch::Receiver<Liveness> {
        self.inner.sessions.latest().liveness()
    }

    /// The underlying client of the current session, for callers that need
    /// raw ZooKeeper operations on the same session (benchmarks, tooling).
    pub fn zk_client(&self) -> zk::Client {
        self.inner.sessions.latest().client.clone()
    }

    fn base(&self) -> &str {
        &self.inner.tree.base
    }

    /// Refuses a lock-at-least-for minimum the ensemble's longest session
    /// cannot keep (see the `hold` module).
    async fn check_minimum(&self, request: &AcquireRequest) -> Result<()> {
        match request.options.at_least {
            Some(minimum) => self.inner.hold_limit.check(self.config(), minimum).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl LockBackend for ZkBackend {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    fn claims(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(true)
            .wait_notification(true)
            .session_liveness(true)
            .ttl_expiry(false)
            .lease_handoff(true)
            .cross_process(true)
            .batch_extend(true)
            .shared(true)
            .semaphore(true)
            .upgrade(true)
            .labels(true)
            .watch(true)
            .at_least(true)
            .min_ttl(MIN_TTL)
            .max_ttl(MAX_TTL)
            .build()
    }

    /// Queues a protected ephemeral sequential node tagged with the mode and
    /// waits until it and every node before it fit together (see the
    /// `acquire` and `turn` modules): a writer when first in line, a reader
    /// when no writer or permit is before it, a permit when fewer than its
    /// count of permits are before it. A permit whose count differs from the
    /// earliest permit before it deletes its node and fails with
    /// `PermitMismatch`. A holder label (a leader's identity) is the node's
    /// data. A lock-at-least-for minimum longer than the ensemble's longest
    /// session is refused with `InvalidOptions` (see `hold`).
    ///
    /// Round trips: uncontended 2 (create, list); contended: create, list,
    /// then per wake-up one list and one round-trip time of watch
    /// registrations (one node for a writer or reader, up to `limit` nodes
    /// for a permit). A name's first use adds 1–2 to create its container
    /// parents; giving up at the deadline or on a permit mismatch adds 1
    /// (delete our node). If the session ends while waiting, the attempt
    /// starts over on a new session (losing its place in line) while the
    /// wait allows.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued: a
    /// clean-up armed before the create is sent deletes our node in the
    /// background, finding it by owner token when the create's reply was
    /// never seen.
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.check_minimum(request).await?;
        acquire::grant(&self.inner.sessions, &self.inner.tree, request).await
    }

    /// Queues a writer node with the lease's owner token behind its reader
    /// node, which stays; the writer node holds once the reader node is the
    /// only node before it. Later readers and writers queue behind the
    /// writer node; a writer or permit that queued behind the reader before
    /// the upgrade was asked waits for the reader while the upgrade waits
    /// for it, until one of the two waits ends (as two upgrading readers
    /// do). The new fencing token is the writer node's creation zxid. The
    /// upgraded lease carries both nodes; its release deletes both.
    ///
    /// Round trips: as for a writer's acquire (create, list, watch per
    /// wake-up); giving up adds 1 (delete the writer node). `NotHeld` (after
    /// deleting the writer node) when the reader node is gone.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the shared hold as it was: the armed
    /// clean-up deletes the writer node (found by owner token) and never
    /// the reader node.
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        self.check_minimum(request).await?;
        acquire::upgrade(&self.inner.sessions, &self.inner.tree, lease, request).await
    }

    /// Confirms the node still exists with our fencing token (creation zxid)
    /// and owner session.
    ///
    /// Round trips: 1 (`exists` of the node).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn renew(&self, lease: &Lease, _ttl: Duration) -> Result<Renewal> {
        extend::renew(&self.inner.sessions, self.base(), lease).await
    }

    /// Confirms every lease's node in one multi-read.
    ///
    /// Round trips: 1 for the whole batch (at most
    /// [`max_batch`](LockBackend::max_batch) leases).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        extend::renew_batch(&self.inner.sessions, self.base(), batch).await
    }

    /// 1024 leases: one multi-read stays far below the server's packet limit.
    fn max_batch(&self) -> usize {
        extend::MAX_BATCH
    }

    /// Deletes the node, waking the contenders that watch it (an upgraded
    /// hold deletes its writer and reader nodes together), then checks in
    /// the background that the waiters it let in claim their turn within
    /// their waiter-liveness window (passing over a silent one).
    ///
    /// Round trips: 1 (delete; a multi-request of two deletes for an
    /// upgraded hold, plus 2 if one of its nodes was already gone). A delete that got no answer or a transient
    /// refusal is retried in the background (list, delete) for as long as
    /// the session lives, and the call reports the error. In the
    /// background: a list and a multi-read; a `getData` and a `delete` per
    /// silent waiter.
    ///
    /// # Cancel safety
    ///
    /// The delete is sent when the call starts; if the future is dropped
    /// before its answer, a background clean-up deletes the node (found by
    /// owner token) while the session lives. At the latest the lock frees
    /// when the owner's session ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        release::revoke(&self.inner.sessions, self.base(), lease).await?;
        let dir = self.inner.tree.dir(lease.name());
        acquire::hand_on_turns(self.inner.sessions.latest(), dir);
        Ok(())
    }

    /// Every lease of one session shares its liveness channel. No round
    /// trip: it follows the session's state as the client library reports it.
    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let node = LeaseNode::from_lease(self.base(), lease).ok()?;
        self.inner.sessions.liveness_of(node.session)
    }

    /// Lists the queue and reads its last holder's node: its token (the
    /// newest among the holders': its creation zxid, or for a hold kept
    /// after release the token its data records) and, for an exclusive
    /// holder, its label; `waiters` counts the nodes behind the holders.
    ///
    /// Round trips: 2 (list, get data), again if that holder left in
    /// between.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        status::inspect(&self.inner.sessions, &self.inner.tree, name).await
    }

    /// A persistent recursive watch on the name's directory: a notice per
    /// child created, deleted or written — a waiter claiming its turn
    /// writes its node — (and per disconnect and reconnect). The stream
    /// ends with the session.
    ///
    /// Round trips: 1 (`addWatch`); none per notice.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream removes the watch.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        changes::notices(&self.inner.sessions, &self.inner.tree, name)
            .await
            .map(Some)
    }

    /// Hands the lease's node (an upgraded hold's two) to a session of its
    /// own whose timeout is `hold`, in one multi-request (delete, create at
    /// the same path): the node keeps its place and token, no longer ends
    /// with this client's session, and goes when that session is closed
    /// (`hold` from now, while this process lives) or expires (if it
    /// exits). See the `hold` module.
    ///
    /// Round trips: a session handshake, 1 multi-read, 1 multi-request;
    /// the close later, in the background.
    ///
    /// # Cancel safety
    ///
    /// The work runs as its own task: once called, it completes even if the
    /// future is dropped.
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        hold::release_after(&self.inner.sessions, &self.inner.tree, lease, hold).await
    }
}
