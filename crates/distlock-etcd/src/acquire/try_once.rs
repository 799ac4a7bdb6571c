//! Acquires that do not wait: take the name at once or leave nothing
//! behind.
//!
//! A writer puts its key only if the name has no key at all, a reader only
//! if it has no writer or permit key: one compare-and-put, nothing to undo.
//! "Fewer than `n` permits of this count" is no compare etcd can make, so a
//! permit puts its key only if no writer or reader key exists, reads the
//! oldest permits in the same transaction, and takes the key back when it
//! does not fit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireRequest, Grant, LockError, Mode, Result};
use etcd_client::{Compare, CompareOp};

use super::line::{ops, Line, Place};
use super::queue_entry::{QueueEntry, Queued};
use super::{free_of_blockers, mismatch, LEASE_LAPSED, LEASE_UNKNOWN};
use crate::backend::EtcdBackend;
use crate::errors::{is_lease_not_found, BACKEND};
use crate::keys::{entry_key, entry_value, fencing, not_permits};
use crate::session::LeaseGen;

/// Tries once without queueing; once more on a fresh etcd lease if the
/// server forgot ours.
///
/// Round trips: those of [`try_once_on`]; a LeaseGrant and a second try
/// when the server forgot our etcd lease.
pub(super) async fn try_once(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let gen = backend.etcd_session().lease().await?;
    match try_once_on(backend, dir, request, &gen).await {
        Err(e) if is_lease_not_found(&e) => {
            backend.etcd_session().lease_gone(&gen, LEASE_UNKNOWN);
            let gen = backend.etcd_session().lease().await?;
            try_once_on(backend, dir, request, &gen).await
        }
        other => other,
    }
}

/// Takes the name at once on `gen`, or leaves nothing behind.
///
/// Round trips: one (Txn); a permit that does not fit, one more
/// (DeleteRange); one DeleteRange if the etcd lease lapsed meanwhile.
async fn try_once_on(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    gen: &Arc<LeaseGen>,
) -> Result<Option<Grant>> {
    let key = entry_key(dir, request.mode, gen.id());
    let value = entry_value(request.owner, request.label.as_deref());
    let mut entry = QueueEntry::new(backend.shared_cluster(), key, gen.id(), value);
    let sent = Instant::now();
    let taken = match request.mode {
        Mode::Permit { .. } => try_permit(entry, dir, request).await?,
        mode => entry
            .create_if(free_of_blockers(dir, mode))
            .await?
            .map(|revision| (revision, entry)),
    };
    let Some((revision, entry)) = taken else {
        return Ok(None);
    };
    if !gen.usable(Duration::ZERO) {
        entry.remove().await;
        return Err(LockError::unavailable(BACKEND, LEASE_LAPSED));
    }
    Ok(Some(
        Grant::new(fencing(revision), sent).with_data(entry.keep()),
    ))
}

/// A permit without waiting: queues only if no writer or reader key
/// exists, goes if it fits beside the permits before it, and otherwise
/// takes its key back at once. A permit of another count among the oldest
/// permits is a mismatch either way.
///
/// Round trips: one (Txn: compare, then put and read — or only read); one
/// more (DeleteRange) when the key was put but does not fit.
async fn try_permit(
    mut entry: QueueEntry,
    dir: &str,
    request: &AcquireRequest,
) -> Result<Option<(i64, QueueEntry)>> {
    let place = Place::new(dir, entry.key(), request.mode);
    let (start, end) = not_permits(dir);
    let free = Compare::create_revision(start, CompareOp::Equal, 0).with_range(end);
    let census = place.permit_census().map(|r| r.op()).into_iter().collect();
    match entry
        .enqueue(vec![free], ops(&place.reads(None)), census)
        .await?
    {
        Queued::Refused { reads } => match reads.first().and_then(|r| place.mismatch(r)) {
            Some(declared) => Err(mismatch(request, declared)),
            None => Ok(None),
        },
        Queued::In { mine, reads, .. } => match place.line(mine, mine, &reads) {
            Line::First { .. } => Ok(Some((mine, entry))),
            Line::Mismatch { declared } => {
                entry.remove().await;
                Err(mismatch(request, declared))
            }
            _ => {
                entry.remove().await;
                Ok(None)
            }
        },
    }
}
