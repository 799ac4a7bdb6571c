//! Removing a contender's queue nodes when nobody is left to do it: an
//! acquire dropped half-way, a release whose delete got no answer.
//!
//! The node is found by owner token (the "protection" prefix), so this also
//! covers a create whose reply never arrived. It runs as the task of a
//! [`CleanupOnDrop`](distlock_core::cleanup::CleanupOnDrop).

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use crate::error::session_ended;
use crate::queue::queue;
use crate::rpc::call;
use crate::session::Session;

/// Rounds of "list, delete ours" before giving up (the node is ephemeral:
/// at the latest it goes with the session).
const ROUNDS: usize = 50;

/// Pause between rounds while the ensemble does not answer.
const PAUSE: Duration = Duration::from_millis(100);

/// Deletes every queue node of `owner` (hex) under `dir`: per round, list
/// the directory (1 round trip) and delete ours (1 each), retrying through
/// disconnects for as long as the session lives.
pub(crate) async fn remove_queue_nodes(session: Arc<Session>, dir: String, owner: String) {
    for _ in 0..ROUNDS {
        if session.is_lost() {
            return; // ephemeral: the nodes went (or go) with the session
        }
        let children = match call(&session, session.client.list_children(&dir)).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => return,
            Err(e) if session_ended(&e) => return,
            Err(_) => {
                tokio::time::sleep(PAUSE).await;
                continue;
            }
        };
        if delete_all_of(&session, &dir, &owner, &children).await {
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Deletes `owner`'s nodes among `children` (1 round trip each); true when
/// none is left.
async fn delete_all_of(session: &Session, dir: &str, owner: &str, children: &[String]) -> bool {
    let mut done = true;
    for node in queue(children).into_iter().filter(|n| n.owner == owner) {
        let path = format!("{dir}/{}", node.name);
        if delete_node(session, &path).await {
            tracing::debug!(node = %path, "distlock.zookeeper.queue_node_removed");
        } else {
            done = false;
        }
    }
    done
}

/// Deletes one node (1 round trip); true when it is gone (deleted now or
/// already).
pub(crate) async fn delete_node(session: &Session, path: &str) -> bool {
    matches!(
        call(session, session.client.delete(path, None)).await,
        Ok(()) | Err(zk::Error::NoNode)
    )
}
