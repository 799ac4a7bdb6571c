//! The client's one background task: extends due guards in batches, declares
//! guards lost when their validity passes, and mirrors session liveness.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::Liveness;
use crate::lease::Lease;
use crate::sync::lock;

use super::guard::{GuardShared, GuardState, LostReason};
use super::ClientInner;

/// Extends due guards of one client until it has none left (the next
/// `adopt` starts a new task).
pub(crate) async fn run(client: Weak<ClientInner>) {
    loop {
        let Some(inner) = client.upgrade() else {
            return;
        };
        let Some((due, next_wake)) = due_guards(&inner) else {
            return;
        };
        if due.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(next_wake.into()) => {}
                _ = inner.wake.notified() => {}
            }
            continue;
        }
        extend_batch(&inner, &due).await;
    }
}

/// The guards due for extension now and when the next one is due; marks
/// guards whose validity passed as lost. `None` once the client has no
/// guards (the task then ends).
fn due_guards(inner: &ClientInner) -> Option<(Vec<Arc<GuardShared>>, Instant)> {
    let now = Instant::now();
    let mut due = Vec::new();
    let mut next_wake = now + Duration::from_secs(3600);
    let mut reg = lock(&inner.guards);
    if reg.guards.is_empty() {
        reg.watchdog_running = false;
        return None;
    }
    let mut finished = Vec::new();
    for g in reg.guards.values() {
        if g.is_lost() {
            finished.push(g.id);
            continue;
        }
        let valid_until = lock(&g.lease).valid_until();
        if now >= valid_until {
            g.mark_lost(LostReason::Expired);
            finished.push(g.id);
            continue;
        }
        let at = *lock(&g.next_extend);
        if now >= at {
            due.push(g.clone());
        } else {
            next_wake = next_wake.min(at);
        }
        next_wake = next_wake.min(valid_until);
    }
    for id in finished {
        reg.guards.remove(&id);
    }
    Some((due, next_wake))
}

/// One `extend_many` for every due guard, never waiting past the earliest
/// validity among them.
async fn extend_batch(inner: &ClientInner, due: &[Arc<GuardShared>]) {
    let leases: Vec<Lease> = due.iter().map(|g| lock(&g.lease).clone()).collect();
    let deadline = leases
        .iter()
        .map(Lease::valid_until)
        .min()
        .unwrap_or_else(Instant::now);
    let results =
        tokio::time::timeout_at(deadline.into(), inner.backend.extend_many(&leases)).await;
    let now = Instant::now();
    let Ok(results) = results else {
        // Timed out at the earliest validity: the next round marks those lost.
        for g in due {
            retry_soon(g, now);
        }
        return;
    };
    for ((g, result), lease) in due.iter().zip(results).zip(&leases) {
        match result {
            Ok(renewed) => g.renewed(renewed),
            Err(e) if e.is_not_held() => g.rejected(lease),
            // The layer logged the failure; try again before the validity ends.
            Err(_) => retry_soon(g, now),
        }
    }
}

fn retry_soon(g: &GuardShared, now: Instant) {
    let lease = lock(&g.lease).clone();
    let retry = (lease.ttl() / 10)
        .min(lease.remaining() / 2)
        .max(Duration::from_millis(1));
    *lock(&g.next_extend) = now + retry;
}

/// Mirrors a backend's session liveness into one guard's state.
pub(crate) async fn follow_liveness(shared: Weak<GuardShared>, mut rx: watch::Receiver<Liveness>) {
    loop {
        let current = rx.borrow_and_update().clone();
        {
            let Some(g) = shared.upgrade() else { return };
            match current {
                Liveness::Live => set_state(&g, GuardState::Suspended, GuardState::Held),
                Liveness::Suspended => set_state(&g, GuardState::Held, GuardState::Suspended),
                Liveness::Lost(why) => {
                    g.mark_lost(LostReason::Session(why));
                    return;
                }
            }
        }
        // Holding the guard here is fine: release and drop notify `ended`.
        let Some(g) = shared.upgrade() else { return };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    // The backend dropped its session channel: the session is gone.
                    g.mark_lost(LostReason::Session("session closed".into()));
                    return;
                }
            }
            _ = g.ended.notified() => return,
        }
    }
}

fn set_state(g: &GuardShared, from: GuardState, to: GuardState) {
    g.state.send_if_modified(|s| {
        let change = *s == from;
        if change {
            *s = to.clone();
        }
        change
    });
}
