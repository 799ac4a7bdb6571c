//! Acquire: create the queue key, find the predecessor, watch its delete.
//!
//! An acquire that does not wait puts its key only if the name has no key
//! at all. An acquire that waits queues its key, then, while a key older
//! than ours exists, watches the one just before ours (no herd) and reads
//! the queue again once it goes. Our key being the oldest means we hold the
//! lock; its create revision is the fencing token.
//!
//! Every key is attached to the client's etcd lease; a lock is never handed
//! out on a lease this client can no longer vouch for. When the lease is
//! lost while we wait (or the server forgot it), the acquire queues again
//! on a fresh lease, a few times at most.

mod line;
mod queue_entry;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireRequest, Grant, LockError, Result, Wait};

use crate::backend::EtcdBackend;
use crate::errors::{is_lease_not_found, BACKEND};
use crate::keys::fencing;
use crate::session::LeaseGen;
use line::{recheck, Line};
use queue_entry::QueueEntry;
use watch::{until_deleted, Waited};

/// How many times one acquire queues again on a fresh etcd lease after its
/// lease was lost while it waited, before it reports the error.
const MAX_LEASE_RETRIES: u32 = 3;

const LEASE_UNKNOWN: &str = "the server no longer knows the lease";
const LEASE_LAPSED: &str = "the client's etcd lease lapsed while acquiring";
const LEASE_LOST: &str = "the client's etcd lease was lost while waiting";
const KEY_VANISHED: &str = "our queue key vanished while waiting (lease expired)";

/// Takes `request.name`, waiting up to `request.options.wait`.
///
/// Round trips: without waiting, one Txn; waiting, one Txn to queue, then
/// per predecessor one Watch (+ one local Range if the revision moved) and
/// one Range when it goes; giving up at the deadline costs one DeleteRange.
///
/// # Cancel safety
///
/// Dropping the future deletes our queue key in the background (also a key
/// whose creating transaction was still in flight, once it lands).
pub(crate) async fn grant(
    backend: &EtcdBackend,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let dir = backend.name_dir(&request.name);
    if request.options.wait == Wait::NoWait {
        try_once(backend, &dir, request).await
    } else {
        queue(backend, &dir, request).await
    }
}

/// Tries once without queueing; once more on a fresh etcd lease if the
/// server forgot ours.
///
/// Round trips: one Txn; a LeaseGrant and a second Txn when the server
/// forgot our etcd lease.
async fn try_once(
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

/// Puts our key on `gen` if the name has no key at all.
///
/// Round trips: one (Txn), plus one DeleteRange if the etcd lease lapsed
/// meanwhile.
async fn try_once_on(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    gen: &Arc<LeaseGen>,
) -> Result<Option<Grant>> {
    let mut entry = QueueEntry::new(backend.shared_cluster(), dir, gen);
    let sent = Instant::now();
    let Some(revision) = entry.create_if_free(dir, request.owner).await? else {
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

/// How one place in line ended.
enum InLine {
    Granted(Grant),
    TimedOut,
    /// Our etcd lease (and with it our key) is gone: queue again.
    LeaseLost(&'static str),
}

/// Waits in line until the lock is ours or the deadline passes, queueing
/// again on a fresh etcd lease when ours is lost meanwhile.
///
/// Round trips: those of [`wait_in_line`], once per place in line (at most
/// `1 + MAX_LEASE_RETRIES`), plus a LeaseGrant before each new place.
async fn queue(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let deadline = request.options.wait.deadline(Instant::now());
    let mut retries = 0;
    loop {
        match wait_in_line(backend, dir, request, deadline).await? {
            InLine::Granted(grant) => return Ok(Some(grant)),
            InLine::TimedOut => return Ok(None),
            InLine::LeaseLost(_) if retries < MAX_LEASE_RETRIES => retries += 1,
            InLine::LeaseLost(why) => return Err(LockError::unavailable(BACKEND, why)),
        }
    }
}

/// One place in line: queue a key on the current etcd lease, then wait for
/// each predecessor's delete until ours is the oldest key.
///
/// Round trips: one Txn to queue; per predecessor, one Watch (plus one
/// local Range when the revision moved) and one Range when it goes; one
/// DeleteRange when the place is given up.
async fn wait_in_line(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    deadline: Option<Instant>,
) -> Result<InLine> {
    let gen = backend.etcd_session().lease().await?;
    let mut lease_state = gen.subscribe();
    let mut entry = QueueEntry::new(backend.shared_cluster(), dir, &gen);
    let mut sent = Instant::now();
    let (mine, mut line) = match entry.enqueue(dir, request.owner).await {
        Ok(queued) => queued,
        Err(e) if is_lease_not_found(&e) => {
            backend.etcd_session().lease_gone(&gen, LEASE_UNKNOWN);
            return Ok(InLine::LeaseLost(LEASE_UNKNOWN));
        }
        Err(e) => return Err(e),
    };
    tracing::debug!(lock = %request.name, key = entry.key(), revision = mine, "distlock.etcd.queued");
    loop {
        let (predecessor, revision) = match line {
            Line::First => return Ok(first_in_line(entry, &gen, mine, sent).await),
            Line::Gone => {
                // Gone, or a lagging member has not seen it yet: delete it
                // either way before queueing again.
                entry.remove().await;
                return Ok(InLine::LeaseLost(KEY_VANISHED));
            }
            Line::Behind {
                predecessor,
                revision,
            } => (predecessor, revision),
        };
        let waited = until_deleted(
            backend.cluster(),
            &predecessor,
            revision,
            deadline,
            &mut lease_state,
        );
        match waited.await {
            Waited::Recheck => {}
            Waited::Deadline => {
                entry.remove().await;
                return Ok(InLine::TimedOut);
            }
            Waited::LeaseLost => {
                entry.remove().await;
                return Ok(InLine::LeaseLost(LEASE_LOST));
            }
        }
        sent = Instant::now();
        line = recheck(backend.cluster(), dir, entry.key(), mine).await?;
    }
}

/// Our key is the oldest: the lock is ours, unless our etcd lease may have
/// lapsed meanwhile.
async fn first_in_line(entry: QueueEntry, gen: &LeaseGen, mine: i64, sent: Instant) -> InLine {
    if !gen.usable(Duration::ZERO) {
        entry.remove().await;
        return InLine::LeaseLost(LEASE_LAPSED);
    }
    InLine::Granted(Grant::new(fencing(mine), sent).with_data(entry.keep()))
}
