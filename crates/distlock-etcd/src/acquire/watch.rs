//! Waiting for what decides our turn: one key's delete (or rewrite), or
//! any delete among the permits.
//!
//! The watch must be *synced* in etcd's terms: a watch whose start revision
//! is already in the past is served by a catch-up loop that runs every
//! 100 ms, which would add up to 100 ms to every handoff. Starting it at
//! (revision of the read that found the key) + 1 is synced only while
//! nobody wrote since that read, which under contention is rarely true. So
//! the watch starts at the member's current revision (always synced), and
//! its created response says which revision that is. If others wrote since
//! our read, what we wait for may have happened in between: one
//! serializable read at exactly that revision, on the same member, closes
//! the gap.

use std::time::{Duration, Instant};

use distlock_core::Liveness;
use etcd_client::{
    Client, GetOptions, SortOrder, SortTarget, WatchFilterType, WatchOptions, WatchStream,
};
use tokio::sync::watch;

use crate::acquire::hand_over::Lookout;
use crate::acquire::line::WaitFor;
use crate::changes::synced_watch;
use crate::cluster::Cluster;

/// How a wait for our turn ended.
pub(crate) enum Waited {
    /// What we waited for may have happened (or the watch failed): read the
    /// queue again.
    Recheck,
    /// An etcd lease our key depends on was lost: our key goes with it.
    LeaseLost,
    /// The caller's wait ran out.
    Deadline,
}

/// The liveness of the etcd leases a queued key depends on: the client's
/// (it holds the key once granted) and, while the key waits as a waiter,
/// the waiter lease it lives on.
pub(crate) struct Leases {
    /// The client's etcd lease.
    pub(crate) client: watch::Receiver<Liveness>,
    /// The waiter lease, while the key lives on it.
    pub(crate) waiter: Option<watch::Receiver<Liveness>>,
}

impl Leases {
    /// Resolves once either lease is lost.
    async fn lost(&mut self) {
        match &mut self.waiter {
            Some(waiter) => tokio::select! {
                () = lease_lost(&mut self.client) => {}
                () = lease_lost(waiter) => {}
            },
            None => lease_lost(&mut self.client).await,
        }
    }
}

/// Waits until `wait` happens (after `read_revision`, the revision of the
/// read that found it still pending), the deadline passes, or an etcd
/// lease the key depends on is lost; meanwhile a waiter's `lookout` looks
/// at the head of the line when it is due to (see
/// [`Lookout`]).
///
/// Round trips: one to open the watch (plus one local read when the
/// revision moved since our read), then none until the event but the
/// lookout's: one local read per window while a marked waiter is ahead.
///
/// # Cancel safety
///
/// Cancel safe: it reads and watches; a look that passes over a silent
/// turn is one guarded delete, whole or not at all.
pub(crate) async fn until_changed(
    cluster: &Cluster,
    wait: &WaitFor,
    read_revision: i64,
    deadline: Option<Instant>,
    leases: &mut Leases,
    mut lookout: Option<&mut Lookout>,
) -> Waited {
    let change = watch_change(cluster, wait, read_revision);
    tokio::pin!(change);
    loop {
        let next_look = lookout.as_ref().and_then(|l| l.next());
        tokio::select! {
            () = &mut change => return Waited::Recheck,
            () = leases.lost() => return Waited::LeaseLost,
            () = deadline_passes(deadline) => return Waited::Deadline,
            () = deadline_passes(next_look), if next_look.is_some() => {
                if let Some(lookout) = lookout.as_deref_mut() {
                    lookout.look(cluster).await;
                }
            }
        }
    }
}

/// Returns once `wait` may have happened: its event, a cancelled watch, a
/// gap read that finds it happened, or a failed endpoint (after a short
/// pause, having moved to the next endpoint).
async fn watch_change(cluster: &Cluster, wait: &WaitFor, read_revision: i64) {
    let timeout = cluster.request_timeout();
    let Ok((endpoint, client)) = cluster.pick().await else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    let Some((mut stream, watch_revision)) = open_watch(&client, wait, timeout).await else {
        return endpoint_failed(cluster, endpoint).await;
    };
    if watch_revision != read_revision && !pending_at(&client, wait, watch_revision, timeout).await
    {
        return;
    }
    if !next_change(&mut stream).await {
        endpoint_failed(cluster, endpoint).await;
    }
}

/// Opens a watch for `wait` from the member's current revision; returns
/// the stream and that revision.
async fn open_watch(
    client: &Client,
    wait: &WaitFor,
    timeout: Duration,
) -> Option<(WatchStream, i64)> {
    let deletes = [WatchFilterType::NoPut];
    let (key, options) = match wait {
        WaitFor::Key { key, rewrites, .. } => {
            let options = WatchOptions::new();
            let options = match rewrites {
                true => options,
                false => options.with_filters(deletes),
            };
            (key.as_str(), options)
        }
        WaitFor::Permits {
            range: (start, end),
            ..
        } => (
            start.as_str(),
            WatchOptions::new()
                .with_range(end.as_str())
                .with_filters(deletes),
        ),
    };
    match synced_watch(client, key, options, timeout).await {
        Ok(opened) => Some(opened),
        Err(e) => {
            tracing::debug!(error = %e, "distlock.etcd.watch_failed");
            None
        }
    }
}

/// Whether `wait` had still not happened at `revision` (the watch's
/// start), asked of the member that opened the watch, so it has that
/// revision.
///
/// Round trips: one (serializable Range).
async fn pending_at(client: &Client, wait: &WaitFor, revision: i64, timeout: Duration) -> bool {
    let mut kv = client.kv_client();
    let at = GetOptions::new()
        .with_revision(revision)
        .with_serializable();
    let read = match wait {
        WaitFor::Key { key, rewrites, .. } => {
            let options = match rewrites {
                true => at.with_keys_only(),
                false => at.with_count_only(),
            };
            kv.get(key.as_str(), Some(options))
        }
        WaitFor::Permits {
            range: (start, end),
            ahead,
            bound,
        } => {
            let limit = i64::try_from(ahead.len() + 1).unwrap_or(i64::MAX);
            let options = at
                .with_range(end.as_str())
                .with_sort(SortTarget::Create, SortOrder::Ascend)
                .with_limit(limit)
                .with_keys_only()
                .with_max_create_revision(*bound);
            kv.get(start.as_str(), Some(options))
        }
    };
    let Ok(Ok(resp)) = tokio::time::timeout(timeout, read).await else {
        return false;
    };
    match wait {
        WaitFor::Key {
            rewrites: false, ..
        } => resp.count() > 0,
        WaitFor::Key { mod_revision, .. } => resp
            .kvs()
            .first()
            .is_some_and(|kv| kv.mod_revision() == *mod_revision),
        WaitFor::Permits { ahead, bound, .. } => resp
            .kvs()
            .iter()
            .filter(|kv| kv.create_revision() < *bound)
            .map(|kv| kv.key())
            .eq(ahead.iter().map(Vec::as_slice)),
    }
}

/// Reads the watch until an event or a cancelled watch (true), or a broken
/// stream (false). The watch's filters already dropped the events that do
/// not count.
async fn next_change(stream: &mut WatchStream) -> bool {
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                if !resp.events().is_empty() || resp.canceled() {
                    return true;
                }
            }
            Ok(None) | Err(_) => return false,
        }
    }
}

/// Moves off a failing endpoint, pausing briefly before the recheck.
async fn endpoint_failed(cluster: &Cluster, endpoint: usize) {
    cluster.failed(endpoint);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Resolves once the lease reports `Lost` (or its sender is gone).
async fn lease_lost(lease: &mut watch::Receiver<Liveness>) {
    loop {
        if matches!(*lease.borrow_and_update(), Liveness::Lost(_)) {
            return;
        }
        if lease.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves at the deadline; never without one.
async fn deadline_passes(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
