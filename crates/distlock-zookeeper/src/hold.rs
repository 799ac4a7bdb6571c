//! Lock-at-least-for: a hold released before its minimum stays held on the
//! ensemble until then, on a session of its own.
//!
//! A hold's node is ephemeral: it lives as long as the session that owns
//! it, and this client's session ends with the process. Released early,
//! the node is handed to a fresh session opened for the time still owed:
//! in one multi-request on that session, the node is deleted (checked
//! against the version read just before) and created again at the same
//! path, ephemeral, now owned by the new session, and its data written once
//! more (so it is at version 1: an odd version, which no pass-over of a
//! waiter's node at that path can delete, see the `acquire` module). Same
//! path, same sequence number: the node keeps its place in line. Its data
//! records the token of the hold it continues (its creation zxid changed)
//! and its label.
//!
//! The new session's timeout is the time owed (the ensemble raises it to
//! its `minSessionTimeout`, which only holds longer). While this process
//! lives, a task keeps that session and closes it once the time owed has
//! passed; the close deletes the node and wakes the waiters. If the
//! process exits first, the ensemble expires the session — at least its
//! timeout after it last heard from it, which was after the hand-over — and
//! deletes the node then. No clock but the ensemble's expiry is involved.
//!
//! A session closes when its last client handle drops, and a runtime that
//! shuts down drops its tasks (the keeper's handle with them) while others
//! may still run: that could close a session early. So one handle of each
//! session still owed time is parked in a process-wide list that nothing
//! drops but its keeper, once the time has passed.
//!
//! The ensemble grants sessions of at most its `maxSessionTimeout`, so a
//! minimum (with its drift allowance) above that cannot be kept this way:
//! an acquire that asks for one is refused up front. The longest session
//! is learned once per backend, from one session asked for the longest
//! timeout there is and closed at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::sync::lock;
use distlock_core::validity::server_hold;
use distlock_core::{Lease, Liveness, LockError, Result};
use tokio::sync::OnceCell;
use zookeeper_client as zk;

use crate::config::ZkConfig;
use crate::error::{to_lock_error, BACKEND};
use crate::node_data::NodeData;
use crate::queue::{LeaseNode, LockTree};
use crate::rpc::call;
use crate::session::Session;
use crate::sessions::Sessions;

/// The longest session timeout the protocol carries (milliseconds in an
/// `i32`): asking for it gets the ensemble's `maxSessionTimeout`.
const LONGEST_ASK: Duration = Duration::from_millis(i32::MAX as u64);

/// A handle of each hold session still owed time (see the module docs).
static OWED: Mutex<Vec<zk::Client>> = Mutex::new(Vec::new());

/// The longest session the ensemble grants, learned at the first acquire
/// with a minimum.
#[derive(Debug, Default)]
pub(crate) struct HoldLimit(OnceCell<Duration>);

impl HoldLimit {
    /// Refuses a lock-at-least-for `minimum` whose hold (with the drift
    /// allowance) outlasts the longest session the ensemble grants:
    /// `InvalidOptions`, naming `maxSessionTimeout`.
    ///
    /// Round trips: none once known; the first time, one session handshake
    /// (and its close).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-open probing session; the next
    /// call probes again.
    pub(crate) async fn check(&self, config: &ZkConfig, minimum: Duration) -> Result<()> {
        let longest = *self.0.get_or_try_init(|| longest_session(config)).await?;
        let hold = server_hold(minimum);
        if hold > longest {
            return Err(LockError::invalid_options(format!(
                "ZooKeeper keeps a lock-at-least-for minimum with a session of its own: \
                 {minimum:?} needs a session of {hold:?}, but this ensemble grants at most \
                 {longest:?} (raise `maxSessionTimeout` in zoo.cfg)"
            )));
        }
        Ok(())
    }
}

/// Opens a session asking for [`LONGEST_ASK`] and closes it: the timeout
/// granted is the ensemble's `maxSessionTimeout`.
async fn longest_session(config: &ZkConfig) -> Result<Duration> {
    let asking = config.clone().with_session_timeout(LONGEST_ASK);
    let probe = Session::open(&asking, config.connect_timeout()).await?;
    Ok(probe.timeout)
}

/// Hands `lease`'s node (an upgraded hold's two) to a session of `hold`
/// and keeps that session until `hold` has passed; see the module docs.
///
/// Round trips: one session handshake, one multi-read (the nodes' data and
/// versions), one multi-request (delete and create each node); the close,
/// `hold` later, in the background.
///
/// # Cancel safety
///
/// The work runs as its own task: once called, it completes even if the
/// future is dropped.
pub(crate) async fn release_after(
    sessions: &Sessions,
    tree: &LockTree,
    lease: &Lease,
    hold: Duration,
) -> Result<()> {
    let node = LeaseNode::from_lease(&tree.base, lease)?;
    let owner_lost = sessions
        .liveness_of(node.session)
        .is_some_and(|rx| matches!(*rx.borrow(), Liveness::Lost(_)));
    if owner_lost {
        return Err(LockError::not_held(lease.name().to_string()));
    }
    let (config, tree, lease) = (sessions.config().clone(), tree.clone(), lease.clone());
    let keeping = tokio::spawn(async move { keep(&config, &tree, &lease, &node, hold).await });
    keeping.await.unwrap_or_else(|e| {
        Err(LockError::unavailable(
            BACKEND,
            format!("keeping a released hold: the task ended early ({e})"),
        ))
    })
}

/// One node of the hold, as read before the hand-over.
struct Held {
    path: String,
    version: i32,
    /// Its data on the new session.
    kept: Vec<u8>,
}

/// Opens the hold's session, hands the nodes over, and leaves a task
/// that closes the session once `hold` has passed.
async fn keep(
    config: &ZkConfig,
    tree: &LockTree,
    lease: &Lease,
    node: &LeaseNode,
    hold: Duration,
) -> Result<()> {
    let holder = hold_session(config, hold).await?;
    let held = read_held(&holder, lease, node).await?;
    match hand_over(&holder, tree, &held).await {
        Ok(()) => {
            tracing::debug!(node = %node.path, hold_ms = hold.as_millis() as u64, "distlock.zookeeper.hold_kept");
            close_after(holder, hold);
            Ok(())
        }
        Err(zk::Error::NoNode | zk::Error::BadVersion) => {
            Err(LockError::not_held(lease.name().to_string()))
        }
        Err(e) => {
            // No answer: the nodes may have moved, so the session stays
            // for the time owed all the same.
            if matches!(e, zk::Error::ConnectionLoss | zk::Error::Timeout) {
                close_after(holder, hold);
            }
            let doing = format!("keeping the released hold of `{}`", lease.name());
            Err(to_lock_error(e, &doing))
        }
    }
}

/// Parks a handle of `holder` (see the module docs) and closes the session
/// once `hold` has passed: its nodes go, the waiters wake.
fn close_after(holder: Arc<Session>, hold: Duration) {
    lock(&OWED).push(holder.client.clone());
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        lock(&OWED).retain(|c| c.session_id() != holder.client.session_id());
        drop(holder); // the last handle: closes the session
    });
}

/// A session whose timeout is at least `hold` (asked in whole
/// milliseconds, rounded up).
///
/// Round trips: one session handshake (plus auth).
async fn hold_session(config: &ZkConfig, hold: Duration) -> Result<Arc<Session>> {
    let ask = Duration::from_millis(
        u64::try_from(hold.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
    );
    let session = Session::open(
        &config.clone().with_session_timeout(ask),
        config.connect_timeout(),
    )
    .await?;
    if session.timeout < hold {
        return Err(LockError::invalid_config(format!(
            "keeping a released hold for {hold:?} needs a session that long, but the ensemble \
             granted {:?} (raise `maxSessionTimeout` in zoo.cfg); the lock stays held until \
             released again or this client's session ends",
            session.timeout
        )));
    }
    Ok(session)
}

/// Reads the hold's nodes (1 round trip: a multi-read) and checks they are
/// still the lease's: its token, owned by its session.
async fn read_held(holder: &Session, lease: &Lease, node: &LeaseNode) -> Result<Vec<Held>> {
    let paths: Vec<&str> = std::iter::once(node.path.as_str())
        .chain(node.reader.as_deref())
        .collect();
    let mut reads = holder.client.new_multi_reader();
    for path in &paths {
        reads
            .add_get_data(path)
            .map_err(|e| to_lock_error(e, "reading a released hold"))?;
    }
    let answers = call(holder, reads.commit())
        .await
        .map_err(|e| to_lock_error(e, &format!("reading the hold of `{}`", lease.name())))?;
    if answers.len() != paths.len() {
        return Err(LockError::not_held(lease.name().to_string()));
    }
    paths
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (path, answer))| still_held(lease, node, path, answer, i == 0))
        .collect()
}

/// One node of the hold as read, if it is still the lease's: owned by the
/// lease's session, not kept already, and (`main`: the lease's own node,
/// not an upgrade's reader node) created by the lease's grant.
fn still_held(
    lease: &Lease,
    node: &LeaseNode,
    path: &str,
    answer: zk::MultiReadResult,
    main: bool,
) -> Result<Held> {
    let not_held = || LockError::not_held(lease.name().to_string());
    let zk::MultiReadResult::Data { data, stat } = answer else {
        return Err(not_held());
    };
    let data = NodeData::parse(&data);
    let ours = stat.ephemeral_owner == node.session
        && data.kept_token.is_none()
        && (!main || stat.czxid as u64 == lease.fencing_token().0);
    if !ours {
        return Err(not_held());
    }
    Ok(Held {
        path: path.to_string(),
        version: stat.version,
        kept: NodeData::kept(stat.czxid as u64, data.label.as_deref()),
    })
}

/// Deletes each node (version-checked) and creates it again at the same
/// path, ephemeral on the hold's session, at version 1, in one
/// multi-request.
async fn hand_over(holder: &Session, tree: &LockTree, held: &[Held]) -> Result<(), zk::Error> {
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(tree.acls());
    let mut writes = holder.client.new_multi_writer();
    for node in held {
        writes.add_delete(&node.path, Some(node.version))?;
        writes.add_create(&node.path, &node.kept, &ephemeral)?;
        writes.add_set_data(&node.path, &node.kept, Some(0))?;
    }
    call(holder, async {
        writes.commit().await.map_err(zk::Error::from)
    })
    .await
    .map(|_| ())
}
