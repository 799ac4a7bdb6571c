//! Change notices of a name, for leader observers: a persistent recursive
//! watch on its directory, so every child created, deleted or written (a
//! contender queued, a hold granted, a waiter claiming its turn, a hold
//! released, kept or ended with its session) is a notice.
//!
//! The writes matter: a waiter whose turn came holds only once it claimed
//! it (see the `acquire::claim` module), one `setData` after its
//! predecessor's deletion. An observer that reads at the deletion finds
//! the name vacant; the claim is the notice that it is held again.

use std::sync::Arc;

use distlock_core::{ChangeNotices, Liveness, LockName, Result};
use futures::StreamExt;
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::error::to_lock_error;
use crate::queue::LockTree;
use crate::rpc::call;
use crate::session::Session;
use crate::sessions::Sessions;

/// A persistent recursive watch on `name`'s directory (it need not exist
/// yet), on the current session. Every event is a notice — also a disconnect and a
/// reconnect, after which events may have been lost (ZOOKEEPER-4698), so
/// the observer reads again. The stream ends with the session.
///
/// Round trips: one (`addWatch`).
///
/// # Cancel safety
///
/// Dropping the future or the stream removes the watch.
pub(crate) async fn notices(
    sessions: &Sessions,
    tree: &LockTree,
    name: &LockName,
) -> Result<ChangeNotices> {
    let session = sessions.current(None).await?;
    let dir = tree.dir(name);
    let mode = if sessions.config().notice_claims() {
        zk::AddWatchMode::PersistentRecursive
    } else {
        zk::AddWatchMode::Persistent
    };
    let watching = session.client.watch(&dir, mode);
    let watcher = call(&session, watching)
        .await
        .map_err(|e| to_lock_error(e, &format!("watching `{name}`")))?;
    let live = session.liveness();
    let follow = Follow {
        _session: session,
        watcher,
        live,
    };
    Ok(futures::stream::unfold(follow, next_notice).boxed())
}

/// A persistent watch and the session it lives on.
struct Follow {
    /// Kept so that the session outlives the watch.
    _session: Arc<Session>,
    watcher: zk::PersistentWatcher,
    live: watch::Receiver<Liveness>,
}

/// The next notice, or the end once the session ended.
async fn next_notice(mut follow: Follow) -> Option<((), Follow)> {
    if matches!(*follow.live.borrow_and_update(), Liveness::Lost(_)) {
        return None;
    }
    tokio::select! {
        event = follow.watcher.changed() => {
            let ended = event.event_type == zk::EventType::Session
                && event.session_state.is_terminated();
            (!ended).then_some(((), follow))
        }
        () = lost(&mut follow.live) => None,
    }
}

/// Resolves once the session is lost (or its liveness channel closed).
async fn lost(live: &mut watch::Receiver<Liveness>) {
    while live.changed().await.is_ok() {
        if matches!(*live.borrow_and_update(), Liveness::Lost(_)) {
            return;
        }
    }
}
