//! The lock recipe: acquire, wait, extend, release, status — in that order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use distlock_core::{
    async_trait, validate_ttl, AcquireOptions, Capabilities, DistributedLock, FencingToken, Lease,
    Liveness, LockError, LockName, LockStatus, OwnerToken, Result,
};
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::queue::{lock_dir, node_prefix, queue, LeaseNode, QueueNode};
use crate::session::Session;
use crate::BACKEND;

/// Shortest ttl accepted: the watchdog extends at a third of it, and each
/// extension is a round trip to the ensemble.
const MIN_TTL: Duration = Duration::from_millis(50);

/// How many retired sessions' liveness channels are remembered (for leases
/// still held by guards when their session was replaced).
const REMEMBERED_SESSIONS: usize = 64;

/// Attempts at creating missing parents before giving up (a parent can be
/// removed by the server's container cleanup between our create and ours).
const PARENT_ATTEMPTS: usize = 5;

/// A distributed lock on a ZooKeeper ensemble; see the [crate docs](crate).
///
/// Cloning is cheap: clones share the session.
#[derive(Clone)]
pub struct ZkBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: ZkConfig,
    /// chroot + root: every lock directory lives right under it.
    base: String,
    /// ACL for every node we create; empty means `world:anyone` ALL.
    acl: Vec<zk::Acl>,
    current: Mutex<Arc<Session>>,
    /// Serializes reconnects so concurrent callers open one new session.
    reconnecting: tokio::sync::Mutex<()>,
    /// Liveness of the sessions this backend opened (current and retired).
    known: Mutex<VecDeque<(i64, watch::Receiver<Liveness>)>>,
}

impl fmt::Debug for ZkBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkBackend")
            .field("config", &self.inner.config)
            .field("session", &*lock(&self.inner.current))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one attempt on one session ended with.
enum Outcome {
    Acquired(Lease),
    TimedOut,
    /// Our queue node is gone (with its session, usually): start over.
    Restart(String),
}

impl ZkBackend {
    /// Connects with a `zk://` URL (see [`ZkConfig::from_url`]).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the half-open session.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(ZkConfig::from_url(url)?).await
    }

    /// Connects with explicit settings: opens the session (one handshake).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the half-open session.
    pub async fn connect_with(config: ZkConfig) -> Result<Self> {
        config.validate()?;
        let session = Session::open(
            &config,
            config.requested_session_timeout() + Duration::from_secs(1),
        )
        .await?;
        let acl = match config.user() {
            // `auth` stands for the identities this session authenticated as.
            Some(_) => vec![
                zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
                zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
            ],
            None => Vec::new(),
        };
        let inner = Inner {
            base: config.base_path(),
            config,
            acl,
            known: Mutex::new(VecDeque::from([(session.id, session.liveness())])),
            current: Mutex::new(session),
            reconnecting: tokio::sync::Mutex::new(()),
        };
        Ok(ZkBackend {
            inner: Arc::new(inner),
        })
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &ZkConfig {
        &self.inner.config
    }

    /// The session's negotiated timeout (what bounds how long a dead holder
    /// keeps its locks).
    pub fn session_timeout(&self) -> Duration {
        lock(&self.inner.current).timeout
    }

    /// The current session's id.
    pub fn session_id(&self) -> i64 {
        lock(&self.inner.current).id
    }

    /// The current session's liveness.
    pub fn session_liveness(&self) -> watch::Receiver<Liveness> {
        lock(&self.inner.current).liveness()
    }

    /// The underlying client of the current session, for callers that need
    /// raw ZooKeeper operations on the same session (benchmarks, tooling).
    pub fn zk_client(&self) -> zk::Client {
        lock(&self.inner.current).client.clone()
    }
}

impl Inner {
    fn acls(&self) -> zk::Acls<'_> {
        if self.acl.is_empty() {
            zk::Acls::anyone_all()
        } else {
            zk::Acls::new(&self.acl)
        }
    }

    /// The current session, opening a new one if it was lost (within the
    /// caller's deadline, but at least [`RPC_FLOOR`]).
    async fn session(&self, deadline: Option<Instant>) -> Result<Arc<Session>> {
        {
            let current = lock(&self.current);
            if !current.is_lost() {
                return Ok(current.clone());
            }
        }
        let _one_at_a_time = self.reconnecting.lock().await;
        {
            let current = lock(&self.current);
            if !current.is_lost() {
                return Ok(current.clone());
            }
        }
        let mut within = self.config.requested_session_timeout() + Duration::from_secs(1);
        if let Some(d) = deadline {
            within = within.min(d.saturating_duration_since(Instant::now()).max(RPC_FLOOR));
        }
        let fresh = Session::open(&self.config, within).await?;
        {
            let mut known = lock(&self.known);
            known.push_back((fresh.id, fresh.liveness()));
            while known.len() > REMEMBERED_SESSIONS {
                known.pop_front();
            }
        }
        *lock(&self.current) = fresh.clone();
        Ok(fresh)
    }

    fn known_liveness(&self, session: i64) -> Option<watch::Receiver<Liveness>> {
        lock(&self.known)
            .iter()
            .find(|(id, _)| *id == session)
            .map(|(_, rx)| rx.clone())
    }
}

/// The least time a request gets, even when the caller's wait is over (a
/// try-lock still needs its round trips).
const RPC_FLOOR: Duration = Duration::from_secs(1);

/// How long one request may take: the session timeout (an answer that takes
/// longer means the session cannot be relied on anyway), cut to the caller's
/// deadline but not below [`RPC_FLOOR`].
fn rpc_bound(session: &Session, deadline: Option<Instant>) -> Duration {
    let floor = RPC_FLOOR.min(session.timeout);
    match deadline {
        None => session.timeout,
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .max(floor)
            .min(session.timeout),
    }
}

/// Runs one request bounded by the session timeout; see [`call_until`].
async fn call<T>(
    session: &Session,
    request: impl Future<Output = std::result::Result<T, zk::Error>>,
) -> std::result::Result<T, zk::Error> {
    call_until(session, None, request).await
}

/// Runs one request bounded by [`rpc_bound`] (a request that runs out of time
/// fails with `Timeout`). Terminal session errors mark the session lost.
async fn call_until<T>(
    session: &Session,
    deadline: Option<Instant>,
    request: impl Future<Output = std::result::Result<T, zk::Error>>,
) -> std::result::Result<T, zk::Error> {
    let result = match tokio::time::timeout(rpc_bound(session, deadline), request).await {
        Ok(r) => r,
        Err(_) => Err(zk::Error::Timeout),
    };
    if let Err(e @ (zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed)) =
        &result
    {
        session.mark_lost(&e.to_string());
    }
    result
}

fn session_ended(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

/// Maps a ZooKeeper error to ours, with what we were doing.
fn to_lock_error(e: zk::Error, context: &str) -> LockError {
    match e {
        zk::Error::ConnectionLoss | zk::Error::Timeout => LockError::unavailable(
            BACKEND,
            format!("{context}: no answer from the ensemble ({e})"),
        ),
        zk::Error::SessionExpired | zk::Error::ClientClosed => {
            LockError::unavailable(BACKEND, format!("{context}: the session ended ({e})"))
        }
        zk::Error::NoAuth => LockError::backend(
            BACKEND,
            format!("{context}: refused by the node's ACL (another identity owns this tree)"),
            e,
        ),
        e => LockError::backend(BACKEND, context.to_string(), e),
    }
}

/// Validity of a lease confirmed by a request sent at `sent`.
fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    let drift = ttl / 100 + Duration::from_millis(1);
    sent + ttl.saturating_sub(drift)
}

/// Removes a contender's queue node(s) unless disarmed: the cancellation
/// guarantee of `acquire`. The node is found by owner token, so this also
/// covers a create whose reply never arrived.
struct QueueGuard {
    session: Arc<Session>,
    dir: String,
    owner_hex: String,
    armed: bool,
}

impl QueueGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Deletes our node now (1 round trip); on trouble, leaves the job to
    /// the background cleanup.
    async fn remove_now(&mut self, path: &str) {
        if matches!(
            call(&self.session, self.session.client.delete(path, None)).await,
            Ok(()) | Err(zk::Error::NoNode)
        ) {
            self.armed = false;
        }
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime: the node is ephemeral and goes with the session.
            return;
        };
        let session = self.session.clone();
        let dir = std::mem::take(&mut self.dir);
        let owner = std::mem::take(&mut self.owner_hex);
        rt.spawn(remove_queue_nodes(session, dir, owner));
    }
}

/// Background cleanup of every queue node of `owner` under `dir`: list the
/// directory (1 round trip) and delete ours (1 each), retrying through
/// disconnects for as long as the session lives.
async fn remove_queue_nodes(session: Arc<Session>, dir: String, owner: String) {
    for _ in 0..50 {
        if session.is_lost() {
            return; // ephemeral: the nodes went (or go) with the session
        }
        let children = match call(&session, session.client.list_children(&dir)).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => return,
            Err(e) if session_ended(&e) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut done = true;
        for node in queue(&children).into_iter().filter(|n| n.owner == owner) {
            let path = format!("{dir}/{}", node.name);
            match call(&session, session.client.delete(&path, None)).await {
                Ok(()) | Err(zk::Error::NoNode) => {
                    tracing::debug!(node = %path, "zookeeper.queue_node_removed");
                }
                Err(_) => done = false,
            }
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl ZkBackend {
    /// Creates the protected ephemeral sequential node: 1 round trip, plus
    /// 1–2 to create missing parents on a name's first use, plus 1 to find
    /// the node by owner token if the reply was lost.
    async fn create_queue_node(
        &self,
        session: &Session,
        dir: &str,
        owner_hex: &str,
        deadline: Option<Instant>,
    ) -> std::result::Result<(String, zk::Stat), zk::Error> {
        let inner = &self.inner;
        let prefix = node_prefix(dir, owner_hex);
        let mode = zk::CreateMode::EphemeralSequential.with_acls(inner.acls());
        let mut parent_attempts = 0;
        loop {
            if session.is_lost() {
                return Err(zk::Error::SessionExpired);
            }
            match call_until(
                session,
                deadline,
                session.client.create(&prefix, &[], &mode),
            )
            .await
            {
                Ok((stat, seq)) => return Ok((format!("{prefix}{seq}"), stat)),
                Err(zk::Error::NoNode) if parent_attempts < PARENT_ATTEMPTS => {
                    parent_attempts += 1;
                    // Container parents: the server deletes them once empty.
                    let parents = zk::CreateMode::Container.with_acls(inner.acls());
                    call_until(session, deadline, session.client.mkdir(dir, &parents)).await?;
                }
                Err(zk::Error::ConnectionLoss) => {
                    // The create may have been applied: look for our owner token.
                    let children = match call_until(
                        session,
                        deadline,
                        session.client.list_children(dir),
                    )
                    .await
                    {
                        Ok(c) => c,
                        Err(zk::Error::NoNode) => continue,
                        Err(zk::Error::ConnectionLoss) => continue,
                        Err(e) => return Err(e),
                    };
                    if let Some(ours) = queue(&children).into_iter().find(|n| n.owner == owner_hex)
                    {
                        let path = format!("{dir}/{}", ours.name);
                        if let Some(stat) =
                            call_until(session, deadline, session.client.check_stat(&path)).await?
                        {
                            return Ok((path, stat));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One acquire attempt on one session: create, then list / watch the
    /// predecessor until first in line or out of time.
    async fn acquire_on(
        &self,
        session: Arc<Session>,
        name: &LockName,
        options: &AcquireOptions,
        deadline: Option<Instant>,
    ) -> Result<Outcome> {
        let dir = lock_dir(&self.inner.base, name);
        let owner = OwnerToken::random();
        let owner_hex = owner.to_hex();
        let mut live = session.liveness();
        // Armed before the create is sent: dropping this future at any point
        // from here on removes whatever node we may have.
        let mut guard = QueueGuard {
            session: session.clone(),
            dir: dir.clone(),
            owner_hex: owner_hex.clone(),
            armed: true,
        };

        // Round trip 1: create our node.
        let (mut path, mut stat) = match self
            .create_queue_node(&session, &dir, &owner_hex, deadline)
            .await
        {
            Ok(created) => created,
            Err(e) if session_ended(&e) => return Ok(Outcome::Restart(e.to_string())),
            Err(e) => {
                return Err(to_lock_error(
                    e,
                    &format!("creating a queue node for `{name}`"),
                ))
            }
        };
        let mut node_name = path.rsplit('/').next().unwrap_or_default().to_string();

        loop {
            // Round trip 2 (again after each wake-up): list the queue.
            let sent = Instant::now();
            let children = match call_until(&session, deadline, session.client.list_children(&dir))
                .await
            {
                Ok(c) => c,
                Err(zk::Error::NoNode) => Vec::new(),
                Err(zk::Error::ConnectionLoss) if !session.is_lost() => continue,
                Err(e) if session_ended(&e) || session.is_lost() => {
                    return Ok(Outcome::Restart(e.to_string()))
                }
                Err(e) => return Err(to_lock_error(e, &format!("listing the queue of `{name}`"))),
            };
            let line = queue(&children);
            let ours: Vec<&QueueNode> = line.iter().filter(|n| n.owner == owner_hex).collect();
            if ours.is_empty() {
                // Our node is gone: the session ended (the next request
                // says so) or someone deleted it. Either way, start over.
                return Ok(Outcome::Restart(format!("queue node {path} vanished")));
            }
            if ours.len() > 1 || ours[0].name != node_name {
                // A create retried after a lost reply may have landed twice:
                // keep the earliest, drop the rest.
                let keep = ours[0].name.clone();
                for extra in ours.iter().skip(1) {
                    let p = format!("{dir}/{}", extra.name);
                    let _ = call_until(&session, deadline, session.client.delete(&p, None)).await;
                }
                if keep != node_name {
                    path = format!("{dir}/{keep}");
                    match call_until(&session, deadline, session.client.check_stat(&path)).await {
                        Ok(Some(s)) => stat = s,
                        Ok(None) => continue,
                        Err(e) => return Err(to_lock_error(e, "reading our queue node")),
                    }
                    node_name = keep;
                }
                continue;
            }
            let position = line.iter().position(|n| n.name == node_name).unwrap_or(0);
            if position == 0 {
                guard.disarm();
                let session_id = stat.ephemeral_owner;
                let lease = Lease::new(
                    BACKEND,
                    name.clone(),
                    owner,
                    FencingToken(stat.czxid as u64),
                    options.ttl,
                    valid_until(sent, options.ttl),
                )
                .with_data(
                    LeaseNode {
                        path,
                        session: session_id,
                    }
                    .to_data(),
                );
                tracing::debug!(lock = %name, fencing = stat.czxid, "zookeeper.acquired");
                return Ok(Outcome::Acquired(lease));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                guard.remove_now(&path).await;
                return Ok(Outcome::TimedOut);
            }

            // Round trip 3: watch only the node right before ours.
            let predecessor = format!("{dir}/{}", line[position - 1].name);
            let watcher = match call_until(
                &session,
                deadline,
                session.client.check_and_watch_stat(&predecessor),
            )
            .await
            {
                Ok((None, _)) => continue, // already gone
                Ok((Some(_), watcher)) => watcher,
                Err(zk::Error::ConnectionLoss) if !session.is_lost() => continue,
                Err(e) if session_ended(&e) || session.is_lost() => {
                    return Ok(Outcome::Restart(e.to_string()))
                }
                Err(e) => return Err(to_lock_error(e, "watching the predecessor")),
            };
            if let Liveness::Lost(why) = &*live.borrow_and_update() {
                return Ok(Outcome::Restart(why.clone()));
            }
            tracing::debug!(lock = %name, position, "zookeeper.waiting");
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = watcher.changed() => {
                    if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                        session.mark_lost(&format!("session {}", event.session_state));
                        return Ok(Outcome::Restart(event.session_state.to_string()));
                    }
                }
                changed = live.changed() => {
                    if changed.is_err() {
                        return Ok(Outcome::Restart("session closed".to_string()));
                    }
                    if let Liveness::Lost(why) = &*live.borrow_and_update() {
                        return Ok(Outcome::Restart(why.clone()));
                    }
                    // Suspended, or connected again: read the queue afresh
                    // rather than rely only on the watch surviving the
                    // reconnect.
                }
                () = timeout => {
                    guard.remove_now(&path).await;
                    return Ok(Outcome::TimedOut);
                }
            }
        }
    }
}

#[async_trait]
impl DistributedLock for ZkBackend {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(true)
            .wait_notification(true)
            .session_liveness(true)
            .ttl_expiry(false)
            .lease_handoff(true)
            .cross_process(true)
            .batch_extend(true)
            .min_ttl(MIN_TTL)
            .build()
    }

    /// Queues a protected ephemeral sequential node and waits until it is
    /// first in line.
    ///
    /// Uncontended: 2 round trips (create, list). Contended: create, list,
    /// then per wake-up one watch registration and one list. A name's first
    /// use adds 1–2 round trips to create its container parents. If the
    /// session ends while waiting, the attempt starts over on a new session
    /// (losing its place in line) while the wait allows.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued: a guard
    /// armed before the create is sent deletes our node in the background,
    /// finding it by owner token when the create's reply was never seen.
    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        options.validate(&self.capabilities())?;
        let deadline = options.wait.deadline(Instant::now());
        loop {
            let session = self.inner.session(deadline).await?;
            match self.acquire_on(session, name, options, deadline).await? {
                Outcome::Acquired(lease) => return Ok(Some(lease)),
                Outcome::TimedOut => return Ok(None),
                Outcome::Restart(why) => {
                    tracing::debug!(lock = %name, reason = %why, "zookeeper.acquire_restarts");
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(LockError::unavailable(
                            BACKEND,
                            format!("acquiring `{name}`: lost its place in line ({why})"),
                        ));
                    }
                }
            }
        }
    }

    /// Confirms the node still exists with our fencing token (creation zxid)
    /// and owner session: 1 round trip. The new validity is `ttl` from the
    /// moment the request was sent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        lease.check_backend(BACKEND)?;
        validate_ttl(ttl, &self.capabilities())?;
        let mut results = self
            .extend_all(&[lease.renewed(ttl, lease.valid_until())])
            .await;
        results
            .pop()
            .unwrap_or_else(|| Err(LockError::not_held(lease.name().to_string())))
    }

    /// Deletes the node: 1 round trip. A delete that failed for any reason
    /// but "no such node" or the ACL is retried in the background for as
    /// long as the session lives, and the call reports the error.
    ///
    /// # Cancel safety
    ///
    /// The delete is sent when the call starts; dropping the future does not
    /// recall it. If it never reaches the server, the lock frees when the
    /// owner's session ends.
    async fn release(&self, lease: &Lease) -> Result<()> {
        lease.check_backend(BACKEND)?;
        let node = LeaseNode::from_lease(&self.inner.base, lease)?;
        let retired = self
            .inner
            .known_liveness(node.session)
            .is_some_and(|rx| matches!(*rx.borrow(), Liveness::Lost(_)));
        let session = self.inner.session(None).await?;
        // Round trip 1: delete.
        match call(&session, session.client.delete(&node.path, None)).await {
            Ok(()) if retired => Err(LockError::not_held(lease.name().to_string())),
            Ok(()) => {
                tracing::debug!(lock = %lease.name(), fencing = lease.fencing_token().0, "zookeeper.released");
                Ok(())
            }
            Err(zk::Error::NoNode) => Err(LockError::not_held(lease.name().to_string())),
            Err(e @ zk::Error::NoAuth) => {
                Err(to_lock_error(e, &format!("releasing `{}`", lease.name())))
            }
            Err(e) => {
                // No answer, or a transient refusal (connection loss, timeout,
                // session moved to another server): the node may still be
                // there, and with a live session it would stay forever.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let dir = lock_dir(&self.inner.base, lease.name());
                    rt.spawn(remove_queue_nodes(
                        session.clone(),
                        dir,
                        lease.owner().to_hex(),
                    ));
                }
                Err(to_lock_error(
                    e,
                    &format!("releasing `{}` (retrying in the background)", lease.name()),
                ))
            }
        }
    }

    /// Checks every lease's node in one multi-read: 1 round trip in all.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        self.extend_all(leases).await
    }

    fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let node = LeaseNode::from_lease(&self.inner.base, lease).ok()?;
        self.inner.known_liveness(node.session)
    }

    /// Lists the queue and reads the first node's creation zxid: 2 round trips.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        let dir = lock_dir(&self.inner.base, name);
        let session = self.inner.session(None).await?;
        for _ in 0..3 {
            let children = match call(&session, session.client.list_children(&dir)).await {
                Ok(c) => c,
                Err(zk::Error::NoNode) => return Ok(LockStatus::new(false, None, None, Some(0))),
                Err(e) => return Err(to_lock_error(e, &format!("listing the queue of `{name}`"))),
            };
            let line = queue(&children);
            let Some(first) = line.first() else {
                return Ok(LockStatus::new(false, None, None, Some(0)));
            };
            let path = format!("{dir}/{}", first.name);
            match call(&session, session.client.check_stat(&path)).await {
                Ok(Some(stat)) => {
                    return Ok(LockStatus::new(
                        true,
                        Some(FencingToken(stat.czxid as u64)),
                        None,
                        Some(line.len() - 1),
                    ))
                }
                Ok(None) => continue, // the holder left meanwhile: look again
                Err(e) => return Err(to_lock_error(e, "reading the holder's node")),
            }
        }
        Err(LockError::unavailable(
            BACKEND,
            format!("the queue of `{name}` kept changing while being read"),
        ))
    }
}

impl ZkBackend {
    /// Extends each lease by its own ttl with one multi-read of all their
    /// nodes (1 round trip).
    async fn extend_all(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        let mut results: Vec<Option<Result<Lease>>> = Vec::with_capacity(leases.len());
        let mut to_read = Vec::new();
        for (i, lease) in leases.iter().enumerate() {
            let checked = lease
                .check_backend(BACKEND)
                .and_then(|()| LeaseNode::from_lease(&self.inner.base, lease))
                .and_then(|node| match self.inner.known_liveness(node.session) {
                    Some(rx) => match &*rx.borrow() {
                        Liveness::Lost(_) => Err(LockError::not_held(lease.name().to_string())),
                        Liveness::Suspended => Err(LockError::unavailable(
                            BACKEND,
                            format!(
                                "extending `{}`: disconnected, the session may or may not be alive",
                                lease.name()
                            ),
                        )),
                        Liveness::Live => Ok(node),
                    },
                    None => Ok(node),
                });
            match checked {
                Ok(node) => {
                    results.push(None);
                    to_read.push((i, node));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !to_read.is_empty() {
            let sent = Instant::now();
            let read = match self.inner.session(None).await {
                Ok(session) => {
                    let mut reader = session.client.new_multi_reader();
                    let mut added = Ok(());
                    for (_, node) in &to_read {
                        if let Err(e) = reader.add_get_data(&node.path) {
                            added = Err(e);
                            break;
                        }
                    }
                    match added {
                        Ok(()) => call(&session, reader.commit()).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(zk::Error::UnexpectedError(e.to_string())),
            };
            match read {
                Ok(reads) if reads.len() == to_read.len() => {
                    for ((i, node), read) in to_read.into_iter().zip(reads) {
                        let lease = &leases[i];
                        results[i] = Some(match read {
                            zk::MultiReadResult::Data { stat, .. }
                                if stat.czxid as u64 == lease.fencing_token().0
                                    && stat.ephemeral_owner == node.session =>
                            {
                                tracing::debug!(lock = %lease.name(), fencing = stat.czxid, "zookeeper.extended");
                                Ok(lease.renewed(lease.ttl(), valid_until(sent, lease.ttl())))
                            }
                            zk::MultiReadResult::Data { .. }
                            | zk::MultiReadResult::Error {
                                err: zk::Error::NoNode,
                            } => {
                                tracing::warn!(lock = %lease.name(), "zookeeper.lease_node_gone");
                                Err(LockError::not_held(lease.name().to_string()))
                            }
                            zk::MultiReadResult::Error { err } => {
                                Err(to_lock_error(err, &format!("extending `{}`", lease.name())))
                            }
                            _ => Err(LockError::unavailable(
                                BACKEND,
                                "unexpected multi-read answer",
                            )),
                        });
                    }
                }
                Ok(_) => {
                    for (i, _) in to_read {
                        results[i] = Some(Err(LockError::unavailable(
                            BACKEND,
                            "multi-read answered with the wrong number of results",
                        )));
                    }
                }
                Err(e) => {
                    for (i, _) in to_read {
                        results[i] = Some(Err(to_lock_error(
                            e.clone(),
                            &format!("extending `{}`", leases[i].name()),
                        )));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(LockError::unavailable(BACKEND, "lease not checked"))))
            .collect()
    }
}
