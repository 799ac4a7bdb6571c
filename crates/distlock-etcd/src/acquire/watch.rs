//! Waiting for the predecessor's delete.
//!
//! The watch must be *synced* in etcd's terms: a watch whose start revision
//! is already in the past is served by a catch-up loop that runs every
//! 100 ms, which would add up to 100 ms to every handoff. Starting it at
//! (revision of the read that found the predecessor) + 1 is synced only
//! while nobody wrote since that read, which under contention is rarely
//! true. So the watch starts at the member's current revision (always
//! synced), and its created response says which revision that is. If others
//! wrote since our read, the predecessor may have gone in between: one
//! serializable read at exactly that revision, on the same member, closes
//! the gap.

use std::time::{Duration, Instant};

use distlock_core::Liveness;
use etcd_client::{Client, EventType, GetOptions, WatchFilterType, WatchOptions, WatchStream};
use tokio::sync::watch;

use crate::cluster::Cluster;

/// How a wait for the predecessor ended.
pub(crate) enum Waited {
    /// The predecessor may be gone (deleted, or the watch failed): read the
    /// queue again.
    Recheck,
    /// Our etcd lease was lost: our key goes with it.
    LeaseLost,
    /// The caller's wait ran out.
    Deadline,
}

/// Waits until `predecessor` is deleted (after `read_revision`, the revision
/// of the read that found it), the deadline passes, or our etcd lease is
/// lost.
///
/// Round trips: one to open the watch (plus one local read when the
/// revision moved since our read), then none until the event.
///
/// # Cancel safety
///
/// Cancel safe: it only reads and watches.
pub(crate) async fn until_deleted(
    cluster: &Cluster,
    predecessor: &str,
    read_revision: i64,
    deadline: Option<Instant>,
    lease: &mut watch::Receiver<Liveness>,
) -> Waited {
    tokio::select! {
        () = watch_delete(cluster, predecessor, read_revision) => Waited::Recheck,
        () = lease_lost(lease) => Waited::LeaseLost,
        () = deadline_passes(deadline) => Waited::Deadline,
    }
}

/// Returns once `predecessor` may be gone: its delete event, a cancelled
/// watch, a gap read that no longer finds it, or a failed endpoint (after
/// a short pause, having moved to the next endpoint).
async fn watch_delete(cluster: &Cluster, predecessor: &str, read_revision: i64) {
    let timeout = cluster.request_timeout();
    let Ok((endpoint, client)) = cluster.pick().await else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    let Some((mut stream, watch_revision)) = open_watch(&client, predecessor, timeout).await else {
        return endpoint_failed(cluster, endpoint).await;
    };
    if watch_revision != read_revision
        && !still_there_at(&client, predecessor, watch_revision, timeout).await
    {
        return;
    }
    if !next_delete(&mut stream).await {
        endpoint_failed(cluster, endpoint).await;
    }
}

/// Opens a watch on `key`'s deletes from the member's current revision;
/// returns the stream and that revision.
async fn open_watch(client: &Client, key: &str, timeout: Duration) -> Option<(WatchStream, i64)> {
    let options = WatchOptions::new().with_filters([WatchFilterType::NoPut]);
    let mut watcher = client.watch_client();
    let opening = async {
        let mut stream = watcher.watch(key, Some(options)).await?;
        let created = stream.message().await?;
        Ok::<_, etcd_client::Error>((stream, created))
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok((stream, Some(created)))) if created.created() => {
            let revision = created.header().map(|h| h.revision()).unwrap_or(0);
            Some((stream, revision))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "distlock.etcd.watch_failed");
            None
        }
        _ => None,
    }
}

/// Whether `key` still exists at `revision` (the watch's start), asked of
/// the member that opened the watch, so it has that revision.
///
/// Round trips: one (serializable Range, count only).
async fn still_there_at(client: &Client, key: &str, revision: i64, timeout: Duration) -> bool {
    let mut kv = client.kv_client();
    let at = GetOptions::new()
        .with_revision(revision)
        .with_serializable()
        .with_count_only();
    matches!(
        tokio::time::timeout(timeout, kv.get(key, Some(at))).await,
        Ok(Ok(r)) if r.count() > 0
    )
}

/// Reads the watch until a delete event or a cancelled watch (true), or a
/// broken stream (false).
async fn next_delete(stream: &mut WatchStream) -> bool {
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                let deleted = resp
                    .events()
                    .iter()
                    .any(|e| e.event_type() == EventType::Delete);
                if deleted || resp.canceled() {
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
