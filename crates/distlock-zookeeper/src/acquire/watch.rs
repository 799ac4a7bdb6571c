//! Step 3 of an acquire that is not first in line: watch only the node
//! right before ours (no herd effect), then sleep until it goes.

use std::time::Instant;

use distlock_core::Liveness;
use tokio::sync::watch;
use zookeeper_client as zk;

use crate::rpc::call_until;
use crate::session::Session;

/// What registering the watch found.
pub(super) enum Watch {
    /// The predecessor exists; the watcher fires when it changes.
    Set(zk::OneshotWatcher),
    /// The predecessor is already gone.
    Gone,
}

/// Registers a watch on `predecessor` (a full path): 1 round trip.
pub(super) async fn predecessor(
    session: &Session,
    predecessor: &str,
    deadline: Option<Instant>,
) -> Result<Watch, zk::Error> {
    let watched = call_until(
        session,
        deadline,
        session.client.check_and_watch_stat(predecessor),
    )
    .await?;
    Ok(match watched {
        (Some(_), watcher) => Watch::Set(watcher),
        (None, _) => Watch::Gone,
    })
}

/// Why the sleep ended.
pub(super) enum Woken {
    /// The predecessor changed (usually: it was deleted), or the connection
    /// came and went: read the line again rather than rely only on the
    /// watch surviving a reconnect.
    Changed,
    /// The session ended: our node is gone with it.
    SessionLost(String),
    /// The caller's deadline passed.
    TimedOut,
}

/// Sleeps until the watch fires, the session's liveness changes, or the
/// deadline passes. No round trip.
pub(super) async fn until_woken(
    session: &Session,
    watcher: zk::OneshotWatcher,
    live: &mut watch::Receiver<Liveness>,
    deadline: Option<Instant>,
) -> Woken {
    if let Liveness::Lost(why) = &*live.borrow_and_update() {
        return Woken::SessionLost(why.clone());
    }
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
                return Woken::SessionLost(event.session_state.to_string());
            }
            Woken::Changed
        }
        changed = live.changed() => {
            if changed.is_err() {
                return Woken::SessionLost("session closed".to_string());
            }
            match &*live.borrow_and_update() {
                Liveness::Lost(why) => Woken::SessionLost(why.clone()),
                _ => Woken::Changed,
            }
        }
        () = timeout => Woken::TimedOut,
    }
}
