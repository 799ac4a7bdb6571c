//! Acquire: create the queue entry, find what decides its turn, watch it.
//!
//! Every mode queues the same way: an entry key under the name (its mode in
//! the key, see [`crate::keys`]), attached to the client's etcd lease; the
//! entries' create revisions order the queue and are the fencing tokens. An
//! entry goes when it fits (by the core's rule) beside every entry created
//! before it; until then it watches the one key (or, for the first permit
//! waiting, the one range) that decides its turn — see [`line`].
//!
//! An acquire that does not wait puts its key only if nothing could block
//! it (a writer: no key at all; a reader: no writer or permit), or, for a
//! permit, puts it and takes it back when it does not fit.
//!
//! Every key is attached to the client's etcd lease; a lock is never handed
//! out on a lease this client can no longer vouch for. When the lease is
//! lost while we wait (or the server forgot it), the acquire queues again
//! on a fresh lease, a few times at most.

mod line;
mod queue_entry;
mod try_once;
mod upgrade;
mod watch;

use std::time::{Duration, Instant};

use distlock_core::{AcquireRequest, Grant, Liveness, LockError, Mode, OwnerToken, Result, Wait};
use etcd_client::Compare;
use tokio::sync::watch as channel;

use crate::backend::EtcdBackend;
use crate::cluster::Cluster;
use crate::errors::{is_lease_not_found, BACKEND};
use crate::keys::{entry_key, fencing};
use crate::session::LeaseGen;
use line::{ops, recheck, Line, Place};
use queue_entry::{QueueEntry, Queued};
use watch::{until_changed, Waited};

pub(crate) use upgrade::upgrade;

/// How many times one acquire queues again on a fresh etcd lease after its
/// lease was lost while it waited, before it reports the error.
const MAX_LEASE_RETRIES: u32 = 3;

const LEASE_UNKNOWN: &str = "the server no longer knows the lease";
const LEASE_LAPSED: &str = "the client's etcd lease lapsed while acquiring";
const LEASE_LOST: &str = "the client's etcd lease was lost while waiting";
const KEY_VANISHED: &str = "our queue key vanished while waiting (lease expired)";

/// Takes `request.name` in `request.mode`, waiting up to
/// `request.options.wait`.
///
/// Round trips: without waiting, one Txn (a permit that does not fit: and
/// one DeleteRange); waiting, one Txn to queue, then per wait one Watch
/// (+ one local Range if the revision moved) and one local read when it
/// fires; giving up at the deadline costs one DeleteRange.
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
        try_once::try_once(backend, &dir, request).await
    } else {
        queue(backend, &dir, request).await
    }
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

/// One place in line: queue a key on the current etcd lease, then wait
/// until it fits beside every key before it.
///
/// Round trips: one Txn to queue (put and read the entries that decide our
/// turn); per wait, one Watch (plus one local Range when the revision
/// moved) and one local read when it fires; one DeleteRange when the place
/// is given up.
async fn wait_in_line(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    deadline: Option<Instant>,
) -> Result<InLine> {
    let gen = backend.etcd_session().lease().await?;
    let mut lease_state = gen.subscribe();
    let key = entry_key(dir, request.mode, gen.id());
    let place = Place::new(dir, &key, request.mode);
    let mut entry = QueueEntry::new(backend.shared_cluster(), key, gen.id());
    let start = match enter(&mut entry, &place, Vec::new(), request.owner).await {
        Ok(Some(start)) => start,
        Ok(None) => {
            return Err(LockError::backend(
                BACKEND,
                "queue key already existed",
                "random queue key collision",
            ))
        }
        Err(e) if is_lease_not_found(&e) => {
            backend.etcd_session().lease_gone(&gen, LEASE_UNKNOWN);
            return Ok(InLine::LeaseLost(LEASE_UNKNOWN));
        }
        Err(e) => return Err(e),
    };
    let mine = start.mine;
    tracing::debug!(lock = %request.name, key = entry.key(), revision = mine, "distlock.etcd.queued");
    let turn = wait_turn(backend.cluster(), &place, start, deadline, &mut lease_state).await?;
    match turn {
        Turn::Granted { sent, handoff } => {
            let handoff = handoff.then_some(request);
            Ok(first_in_line(entry, &gen, mine, sent, handoff).await)
        }
        Turn::TimedOut => {
            entry.remove().await;
            Ok(InLine::TimedOut)
        }
        Turn::LeaseLost => {
            entry.remove().await;
            Ok(InLine::LeaseLost(LEASE_LOST))
        }
        Turn::Mismatch(declared) => {
            entry.remove().await;
            Err(mismatch(request, declared))
        }
        Turn::Gone => {
            // Gone, or a lagging member has not seen it yet: delete it
            // either way before queueing again.
            entry.remove().await;
            Ok(InLine::LeaseLost(KEY_VANISHED))
        }
    }
}

/// Our entry fits: the lock is ours, unless our etcd lease may have lapsed
/// meanwhile. A permit granted after waiting hands the first waiter's place
/// on to a later permit (`handoff`).
async fn first_in_line(
    entry: QueueEntry,
    gen: &LeaseGen,
    mine: i64,
    sent: Instant,
    handoff: Option<&AcquireRequest>,
) -> InLine {
    if !gen.usable(Duration::ZERO) {
        entry.remove().await;
        return InLine::LeaseLost(LEASE_LAPSED);
    }
    if let Some(request) = handoff {
        entry.hand_on(mine, request.owner);
    }
    InLine::Granted(Grant::new(fencing(mine), sent).with_data(entry.keep()))
}

/// How waiting for our turn ended.
enum Turn {
    /// Our entry fits, as a read sent at `sent` found.
    Granted {
        sent: Instant,
        handoff: bool,
    },
    TimedOut,
    /// The etcd lease our entry lives on was lost.
    LeaseLost,
    /// Our entry (or an upgrade's reader entry) is gone.
    Gone,
    /// A permit of another count is ahead.
    Mismatch(u32),
}

/// A freshly queued entry: its create revision, where the queueing
/// transaction's reads found it, and when that transaction was sent.
struct Start {
    mine: i64,
    line: Line,
    sent: Instant,
}

/// Queues `entry` at `place`, the transaction also checking `when`: where
/// the entry starts waiting, or `None` when a condition failed and nothing
/// was created.
///
/// Round trips: one Txn (put, then read the entries that decide our turn).
async fn enter(
    entry: &mut QueueEntry,
    place: &Place,
    when: Vec<Compare>,
    owner: OwnerToken,
) -> Result<Option<Start>> {
    let sent = Instant::now();
    let queued = entry
        .enqueue(when, owner, ops(&place.reads(None)), Vec::new())
        .await?;
    Ok(match queued {
        Queued::In { mine, reads } => Some(Start {
            mine,
            line: place.line(mine, mine, &reads),
            sent,
        }),
        Queued::Refused { .. } => None,
    })
}

/// Waits from `start` until the entry fits, the deadline passes or the
/// etcd lease is lost.
///
/// Round trips: per wait, one Watch (plus one local Range when the revision
/// moved) and one local read when it fires.
async fn wait_turn(
    cluster: &Cluster,
    place: &Place,
    start: Start,
    deadline: Option<Instant>,
    lease_state: &mut channel::Receiver<Liveness>,
) -> Result<Turn> {
    let Start {
        mine,
        mut line,
        mut sent,
    } = start;
    loop {
        let (wait, revision) = match line {
            Line::First { handoff } => return Ok(Turn::Granted { sent, handoff }),
            Line::Gone | Line::ReaderGone => return Ok(Turn::Gone),
            Line::Mismatch { declared } => return Ok(Turn::Mismatch(declared)),
            Line::Behind { wait, revision } => (wait, revision),
        };
        match until_changed(cluster, &wait, revision, deadline, lease_state).await {
            Waited::Recheck => {}
            Waited::Deadline => return Ok(Turn::TimedOut),
            Waited::LeaseLost => return Ok(Turn::LeaseLost),
        }
        sent = Instant::now();
        line = recheck(cluster, place, mine).await?;
    }
}

/// The refusal of a permit request meeting permits of another count.
fn mismatch(request: &AcquireRequest, declared: u32) -> LockError {
    LockError::PermitMismatch {
        name: request.name.to_string(),
        declared,
        requested: match request.mode {
            Mode::Permit { limit } => limit,
            _ => 0,
        },
    }
}
