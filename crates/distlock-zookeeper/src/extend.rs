//! Extend: confirm that a lease's node is still there, created by this hold
//! (same creation zxid) and owned by the lease's session.
//!
//! Nothing on the server counts a ttl down, so there is nothing to push
//! back: a node that still exists is a lock still held, one that is gone
//! (released, or with its session) is never held again. One lease costs one
//! `exists`; a batch costs one multi-read of every node.

use std::time::{Duration, Instant};

use distlock_core::{Lease, Liveness, LockError, Renewal, Result};
use zookeeper_client as zk;

use crate::error::{to_lock_error, BACKEND};
use crate::queue::LeaseNode;
use crate::rpc::call;
use crate::sessions::Sessions;

/// The most leases one multi-read confirms. Each read costs its path (at
/// most ~300 bytes with the default prefix) in the request and an empty
/// data plus a stat (~70 bytes) in the answer, so a full batch stays far
/// below the server's 1 MiB packet limit (`jute.maxbuffer`).
pub(crate) const MAX_BATCH: usize = 1024;

/// Confirms one lease: 1 round trip (`exists` of its node). A lease of
/// another client's session (handed off) that does not read as held is
/// read again after a `sync`: the server this client is connected to may
/// not have applied that client's create yet (2 more round trips).
pub(crate) async fn renew(sessions: &Sessions, base: &str, lease: &Lease) -> Result<Renewal> {
    let node = locate(sessions, base, lease)?;
    let session = sessions.current(None).await?;
    let sent = Instant::now();
    let doing = || format!("extending `{}`", lease.name());
    let stat = call(&session, session.client.check_stat(&node.path))
        .await
        .map_err(|e| to_lock_error(e, &doing()))?;
    let confirmed = confirm(lease, &node, stat.as_ref());
    if confirmed.is_ok() || !is_foreign(sessions, &node) {
        return confirmed.map(|()| Renewal::sent_at(sent));
    }
    call(&session, session.client.sync(&node.path))
        .await
        .map_err(|e| to_lock_error(e, &doing()))?;
    let stat = call(&session, session.client.check_stat(&node.path))
        .await
        .map_err(|e| to_lock_error(e, &doing()))?;
    confirm(lease, &node, stat.as_ref()).map(|()| Renewal::sent_at(sent))
}

/// Whether `node` was made by another client's session (a handed-off
/// lease), whose writes this client's server may not have applied yet.
fn is_foreign(sessions: &Sessions, node: &LeaseNode) -> bool {
    sessions.liveness_of(node.session).is_none()
}

/// Confirms every lease of `batch` with one multi-read: 1 round trip in all.
/// One answer per entry, in order.
pub(crate) async fn renew_batch(
    sessions: &Sessions,
    base: &str,
    batch: &[(Lease, Duration)],
) -> Vec<Result<Renewal>> {
    let located: Vec<Result<LeaseNode>> = batch
        .iter()
        .map(|(lease, _)| locate(sessions, base, lease))
        .collect();
    let paths: Vec<&str> = located
        .iter()
        .filter_map(|n| n.as_ref().ok().map(|n| n.path.as_str()))
        .collect();
    let sent = Instant::now();
    let mut reads = read_all(sessions, &paths).await;
    let mut answers = Vec::with_capacity(batch.len());
    for ((lease, _), node) in batch.iter().zip(located) {
        let answer = match node {
            Err(e) => Err(e),
            Ok(node) => {
                let read = reads.next().unwrap_or_else(|| Err(short_answer()));
                match read.map_err(|e| e.for_lease(lease)) {
                    Err(e) => Err(e),
                    Ok(stat) => match confirm(lease, &node, stat.as_ref()) {
                        // A handed-off lease: read again after a sync.
                        Err(_) if is_foreign(sessions, &node) => renew(sessions, base, lease).await,
                        confirmed => confirmed.map(|()| Renewal::sent_at(sent)),
                    },
                }
            }
        };
        answers.push(answer);
    }
    answers
}

/// Where a lease's node is, refusing leases whose session this backend
/// already saw end (`NotHeld`) or is cut off from (`Unavailable`).
fn locate(sessions: &Sessions, base: &str, lease: &Lease) -> Result<LeaseNode> {
    let node = LeaseNode::from_lease(base, lease)?;
    let Some(liveness) = sessions.liveness_of(node.session) else {
        // Not one of ours (a handed-off lease): the server decides.
        return Ok(node);
    };
    let state = liveness.borrow().clone();
    match state {
        Liveness::Live => Ok(node),
        Liveness::Lost(_) => Err(LockError::not_held(lease.name().to_string())),
        Liveness::Suspended => Err(LockError::unavailable(
            BACKEND,
            format!(
                "extending `{}`: disconnected, the session may or may not be alive",
                lease.name()
            ),
        )),
    }
}

/// Held when the node exists with the lease's fencing token (creation zxid)
/// and owner session.
fn confirm(lease: &Lease, node: &LeaseNode, stat: Option<&zk::Stat>) -> Result<()> {
    match stat {
        Some(stat)
            if stat.czxid as u64 == lease.fencing_token().0
                && stat.ephemeral_owner == node.session =>
        {
            Ok(())
        }
        _ => Err(LockError::not_held(lease.name().to_string())),
    }
}

/// One node's read in a multi-read: its stat (`None`: no such node) or why
/// it could not be read.
type NodeRead = std::result::Result<Option<zk::Stat>, ReadError>;

/// A read that failed, to be worded for the lease it was for.
#[derive(Clone)]
enum ReadError {
    /// The ensemble refused or did not answer.
    Zk(zk::Error),
    /// No session to send the read on.
    NoSession(String),
}

impl ReadError {
    fn for_lease(self, lease: &Lease) -> LockError {
        let doing = format!("extending `{}`", lease.name());
        match self {
            ReadError::Zk(e) => to_lock_error(e, &doing),
            ReadError::NoSession(why) => LockError::unavailable(BACKEND, format!("{doing}: {why}")),
        }
    }
}

/// Reads every path in one multi-read (1 round trip); one answer per path,
/// in order.
async fn read_all(sessions: &Sessions, paths: &[&str]) -> std::vec::IntoIter<NodeRead> {
    if paths.is_empty() {
        return Vec::new().into_iter();
    }
    let answers = match multi_read(sessions, paths).await {
        Ok(results) if results.len() == paths.len() => results.into_iter().map(node_read).collect(),
        Ok(_) => vec![Err(short_answer()); paths.len()],
        Err(e) => vec![Err(e); paths.len()],
    };
    answers.into_iter()
}

fn short_answer() -> ReadError {
    ReadError::Zk(zk::Error::UnexpectedError(
        "a multi-read answer of the wrong length".into(),
    ))
}

async fn multi_read(
    sessions: &Sessions,
    paths: &[&str],
) -> std::result::Result<Vec<zk::MultiReadResult>, ReadError> {
    let session = sessions
        .current(None)
        .await
        .map_err(|e| ReadError::NoSession(e.to_string()))?;
    let mut reader = session.client.new_multi_reader();
    for path in paths {
        reader.add_get_data(path).map_err(ReadError::Zk)?;
    }
    call(&session, reader.commit()).await.map_err(ReadError::Zk)
}

fn node_read(result: zk::MultiReadResult) -> NodeRead {
    match result {
        zk::MultiReadResult::Data { stat, .. } => Ok(Some(stat)),
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode,
        } => Ok(None),
        zk::MultiReadResult::Error { err } => Err(ReadError::Zk(err)),
        _ => Err(ReadError::Zk(zk::Error::UnexpectedError(
            "an unexpected multi-read answer".into(),
        ))),
    }
}
