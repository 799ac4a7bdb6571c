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

/// Deletes every queue node of `owner` (hex) under `dir` but `keep` (the
/// reader node an upgrade leaves as it was): per round, list the directory
/// (1 round trip) and delete ours (1 each), retrying through disconnects
/// for as long as the session lives.
pub(crate) async fn remove_queue_nodes(
    session: Arc<Session>,
    dir: String,
    owner: String,
    keep: Option<String>,
) {
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
        let ours = Ours {
            owner: &owner,
            keep: keep.as_deref(),
        };
        if delete_all_of(&session, &dir, ours, &children).await {
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Deletes the queue node at `path` at once (1 round trip: it may be
/// holding up others), then every other node of `owner` under `dir` but
/// `keep`, as [`remove_queue_nodes`] does.
pub(crate) async fn remove_queue_node(
    session: Arc<Session>,
    path: String,
    dir: String,
    owner: String,
    keep: Option<String>,
) {
    if !session.is_lost() {
        delete_node(&session, &path).await;
    }
    remove_queue_nodes(session, dir, owner, keep).await;
}

/// Which nodes a clean-up removes: those of `owner` (hex), except `keep`.
#[derive(Clone, Copy)]
struct Ours<'a> {
    owner: &'a str,
    keep: Option<&'a str>,
}

/// Deletes our nodes among `children` (1 round trip each); true when none
/// is left.
async fn delete_all_of(session: &Session, dir: &str, ours: Ours<'_>, children: &[String]) -> bool {
    let mut done = true;
    let line = queue(children);
    let mine = line
        .iter()
        .filter(|n| n.owner == ours.owner && Some(n.name.as_str()) != ours.keep);
    for node in mine {
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
