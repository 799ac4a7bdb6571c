//! Step 5 of an acquire that may not hold yet: watch only the nodes that
//! decide its turn (see the `turn` module: one node, or for a permit the
//! `limit` nodes right before it), then sleep until one of them goes.

use std::time::Instant;

use distlock_core::Liveness;
use futures::future::{join_all, select_all};
use tokio::sync::watch;
use zookeeper_client as zk;

use super::hand_over::Lookout;
use crate::rpc::call_while_live;
use crate::session::Session;

/// What registering the watches found.
pub(super) enum Watch {
    /// Every node exists; each watcher fires when its node changes. Never
    /// empty.
    Set(Vec<zk::OneshotWatcher>),
    /// One of them is already gone (or there was nothing to watch): read
    /// the line again.
    Gone,
}

/// Registers a watch on each of `nodes` (full paths). The requests are sent
/// together: one round-trip time, one `exists` per node.
pub(super) async fn deciders(
    session: &Session,
    nodes: &[String],
    deadline: Option<Instant>,
) -> Result<Watch, zk::Error> {
    let requests = nodes
        .iter()
        .map(|node| call_while_live(session, deadline, session.client.check_and_watch_stat(node)));
    let mut watchers = Vec::with_capacity(nodes.len());
    for answer in join_all(requests).await {
        match answer? {
            (Some(_), watcher) => watchers.push(watcher),
            (None, _) => return Ok(Watch::Gone),
        }
    }
    if watchers.is_empty() {
        return Ok(Watch::Gone);
    }
    Ok(Watch::Set(watchers))
}

/// Why the sleep ended.
pub(super) enum Woken {
    /// A watched node changed (usually: it was deleted), or the connection
    /// came and went: read the line again rather than rely only on the
    /// watches surviving a reconnect.
    Changed,
    /// The session ended: our node is gone with it.
    SessionLost(String),
    /// The caller's deadline passed.
    TimedOut,
}

/// Sleeps until one of the watches fires, the session's liveness changes,
/// or the deadline passes; meanwhile a waiter's `lookout` looks at the
/// turns ahead when it is due to (see [`Lookout`]). No round trip but the
/// lookout's.
pub(super) async fn until_woken(
    session: &Session,
    watchers: Vec<zk::OneshotWatcher>,
    live: &mut watch::Receiver<Liveness>,
    deadline: Option<Instant>,
    mut lookout: Option<&mut Lookout>,
) -> Woken {
    if let Liveness::Lost(why) = &*live.borrow_and_update() {
        return Woken::SessionLost(why.clone());
    }
    if watchers.is_empty() {
        return Woken::Changed; // nothing to wait for: read the line again
    }
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    let any_changed = select_all(watchers.into_iter().map(|w| Box::pin(w.changed())));
    tokio::pin!(timeout);
    tokio::pin!(any_changed);
    loop {
        let next_look = lookout.as_ref().and_then(|l| l.next());
        let look = async {
            match next_look {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            (event, _, _) = &mut any_changed => {
                if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                    session.mark_lost(&format!("session {}", event.session_state));
                    return Woken::SessionLost(event.session_state.to_string());
                }
                return Woken::Changed;
            }
            changed = live.changed() => {
                if changed.is_err() {
                    return Woken::SessionLost("session closed".to_string());
                }
                return match &*live.borrow_and_update() {
                    Liveness::Lost(why) => Woken::SessionLost(why.clone()),
                    _ => Woken::Changed,
                };
            }
            () = &mut timeout => return Woken::TimedOut,
            () = look => {
                if let Some(lookout) = lookout.as_deref_mut() {
                    lookout.look(session).await;
                }
            }
        }
    }
}
