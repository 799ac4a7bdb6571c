//! Step 1 of an acquire: create the protected ephemeral sequential node.

use std::time::Instant;

use zookeeper_client as zk;

use crate::queue::{node_prefix, queue, LockTree};
use crate::rpc::call_until;
use crate::session::Session;

use super::Want;

/// Attempts at creating missing parents before giving up (a parent can be
/// removed by the server's container cleanup between its create and ours).
const PARENT_ATTEMPTS: usize = 5;

/// A contender's queue node, as the server created it.
#[derive(Clone, Debug)]
pub(super) struct QueueEntry {
    /// Full path.
    pub(super) path: String,
    /// The child name (`<owner>-<sequence>`).
    pub(super) name: String,
    /// Creation zxid: the fencing token once the node is first in line.
    pub(super) czxid: i64,
    /// The session that owns the node.
    pub(super) session: i64,
    /// The node's version when created (or found).
    pub(super) version: i32,
}

impl QueueEntry {
    pub(super) fn new(path: String, stat: &zk::Stat) -> Self {
        QueueEntry {
            name: path.rsplit('/').next().unwrap_or_default().to_string(),
            path,
            czxid: stat.czxid,
            session: stat.ephemeral_owner,
            version: stat.version,
        }
    }
}

/// Creates `<dir>/<owner>-<mode tag><sequence>`, ephemeral and sequential,
/// with `data` (the holder data, or a waiter's mark).
///
/// Round trips: 1; plus 1–2 to create missing container parents on a
/// name's first use; plus 2 (list, `exists`) to find the node by owner token
/// when the create's reply was lost.
pub(super) async fn queue_node(
    session: &Session,
    tree: &LockTree,
    want: &Want<'_>,
    data: &[u8],
    deadline: Option<Instant>,
) -> Result<QueueEntry, zk::Error> {
    let dir = want.dir.as_str();
    let prefix = node_prefix(dir, &want.owner, want.mode);
    let mode = zk::CreateMode::EphemeralSequential.with_acls(tree.acls());
    let mut parent_attempts = 0;
    loop {
        if session.is_lost() {
            return Err(zk::Error::SessionExpired);
        }
        let created = call_until(
            session,
            deadline,
            session.client.create(&prefix, data, &mode),
        )
        .await;
        match created {
            Ok((stat, seq)) => return Ok(QueueEntry::new(format!("{prefix}{seq}"), &stat)),
            Err(zk::Error::NoNode) if parent_attempts < PARENT_ATTEMPTS => {
                parent_attempts += 1;
                make_parents(session, tree, dir, deadline).await?;
            }
            Err(zk::Error::ConnectionLoss) => {
                // The create may have been applied: look for our owner token.
                if let Some(found) = find_own(session, want, deadline).await? {
                    return Ok(found);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates the lock directory and its missing ancestors as container nodes
/// (the server deletes them once empty): 1 round trip per missing level.
async fn make_parents(
    session: &Session,
    tree: &LockTree,
    dir: &str,
    deadline: Option<Instant>,
) -> Result<(), zk::Error> {
    let parents = zk::CreateMode::Container.with_acls(tree.acls());
    call_until(session, deadline, session.client.mkdir(dir, &parents)).await
}

/// After a create whose reply was lost: our node, if the create was applied
/// (list, then `exists` of each node with our owner token and mode until
/// one is owned by this session: 2 round trips, more only when an earlier
/// attempt's node lingers). An upgrade's reader node has the same owner
/// token but another mode, so it is never mistaken for the new node.
/// `None` means "create again"; a connection lost meanwhile also does.
async fn find_own(
    session: &Session,
    want: &Want<'_>,
    deadline: Option<Instant>,
) -> Result<Option<QueueEntry>, zk::Error> {
    let dir = want.dir.as_str();
    let children = match call_until(session, deadline, session.client.list_children(dir)).await {
        Ok(c) => c,
        Err(zk::Error::NoNode | zk::Error::ConnectionLoss) => return Ok(None),
        Err(e) => return Err(e),
    };
    let line = queue(&children);
    let candidates = line
        .iter()
        .filter(|n| n.owner == want.owner && n.mode == want.mode);
    for candidate in candidates {
        let path = format!("{dir}/{}", candidate.name);
        let stat = call_until(session, deadline, session.client.check_stat(&path)).await?;
        // A node of an earlier attempt, on a session given up on, is not
        // the one this create made.
        if let Some(stat) = stat.filter(|s| s.ephemeral_owner == session.id) {
            return Ok(Some(QueueEntry::new(path, &stat)));
        }
    }
    Ok(None)
}
