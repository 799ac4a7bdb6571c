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
//! An acquire that may wait puts its key as a holder when nothing could
//! block it, and otherwise as a **waiter** (marked, on the client's waiter
//! lease) that must claim its turn when it comes; whoever deletes an entry
//! of the line then checks that the waiters it let in claim within their
//! waiter-liveness window, and passes over those that do not ([`claim`](mod@claim),
//! [`hand_over`]).
//!
//! Every key is attached to the client's etcd lease; a lock is never handed
//! out on a lease this client can no longer vouch for. When the lease is
//! lost while we wait (or the server forgot it), the acquire queues again
//! on a fresh lease, a few times at most.

mod claim;
mod hand_over;
mod line;
mod queue_entry;
mod try_once;
mod upgrade;
mod watch;

use std::time::{Duration, Instant};

use std::sync::Arc;

use distlock_core::{AcquireRequest, Grant, LockError, Mode, Result, Wait};
use etcd_client::{Compare, CompareOp};

use crate::backend::EtcdBackend;
use crate::cluster::Cluster;
use crate::errors::{is_lease_not_found, BACKEND};
use crate::keys::{entry_key, entry_value, fencing, not_shared};
use crate::session::LeaseGen;
use claim::{claim, waiting_value, Waiter};
use hand_over::Lookout;
use line::{ops, recheck, Line, Place};
use queue_entry::{QueueEntry, Queued};
use watch::{until_changed, Leases, Waited};

pub(crate) use claim::window_of;

/// Checks in the background that the waiters a deletion under `name` let
/// in claim their turn within their window, passing over those that do
/// not (see [`hand_over`]).
///
/// Round trips: one member-local Range; more only for a waiter that has not
/// claimed its turn (in the background).
pub(crate) fn hand_on_turns(backend: &EtcdBackend, name: &distlock_core::LockName) {
    hand_over::spawn(backend.shared_cluster(), backend.name_dir(name));
}
pub(crate) use upgrade::upgrade;

/// How many times one acquire queues again on a fresh etcd lease after its
/// lease was lost while it waited, before it reports the error.
const MAX_LEASE_RETRIES: u32 = 3;

const LEASE_UNKNOWN: &str = "the server no longer knows the lease";
const LEASE_LAPSED: &str = "the client's etcd lease lapsed while acquiring";
const LEASE_LOST: &str = "the client's etcd lease was lost while waiting";
const KEY_VANISHED: &str = "our queue key vanished while waiting (lease expired)";
const WAITER_LEASE_LOST: &str = "the client's waiter lease was lost while waiting";

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
    /// Our key is gone while our leases live (we were passed over, having
    /// not claimed our turn within the window): queue again.
    Requeue,
}

/// Waits in line until the lock is ours or the deadline passes, queueing
/// again on a fresh etcd lease when ours is lost meanwhile (at most
/// `MAX_LEASE_RETRIES` times), and again at the back of the line when our
/// key went while our leases live — then with twice the window (up to the
/// session timeout), so that a client too slow to claim its turn within the
/// window is not passed over again and again.
///
/// Round trips: those of [`wait_in_line`], once per place in line, plus a
/// LeaseGrant before each place on a new lease.
async fn queue(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let deadline = request.options.wait.deadline(Instant::now());
    let config = backend.config();
    let mut window = config.waiter_timeout();
    let mut retries = 0;
    loop {
        match wait_in_line(backend, dir, request, deadline, window).await? {
            InLine::Granted(grant) => return Ok(Some(grant)),
            InLine::TimedOut => return Ok(None),
            InLine::Requeue => {
                window = window
                    .saturating_mul(2)
                    .min(config.session_timeout().max(window));
                let window_ms = window.as_millis() as u64;
                tracing::debug!(lock = %request.name, window_ms, "distlock.etcd.requeued");
            }
            InLine::LeaseLost(_) if retries < MAX_LEASE_RETRIES => retries += 1,
            InLine::LeaseLost(why) => return Err(LockError::unavailable(BACKEND, why)),
        }
    }
}

/// One place in line: queue a key on the current etcd lease (as a waiter
/// with `window`, on the waiter lease, when something blocks it), then wait
/// until it fits beside every key before it, and claim the turn if it
/// waited.
///
/// Round trips: one Txn to queue (put and read the entries that decide our
/// turn); per wait, one Watch (plus one local Range when the revision
/// moved) and one local read when it fires; one Txn to claim the turn; one
/// DeleteRange when the place is given up. A LeaseGrant when the waiter
/// lease must be granted.
async fn wait_in_line(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    deadline: Option<Instant>,
    window: Duration,
) -> Result<InLine> {
    let leases = LineLeases::of(backend).await?;
    let mut entry = new_entry(backend, dir, request, &leases, window);
    let place = Place::new(dir, entry.key(), request.mode);
    let start = match enter_line(&mut entry, &place, free_of_blockers(dir, request.mode)).await {
        Ok(Some(start)) => start,
        Ok(None) => {
            return Err(LockError::backend(
                BACKEND,
                "queue key already existed",
                "random queue key collision",
            ))
        }
        Err(e) if is_lease_not_found(&e) => {
            leases.forget(backend, LEASE_UNKNOWN);
            return Ok(InLine::LeaseLost(LEASE_UNKNOWN));
        }
        Err(e) => return Err(e),
    };
    let (mine, waiting) = (start.mine, start.waiting);
    tracing::debug!(lock = %request.name, key = entry.key(), revision = mine, waiting, "distlock.etcd.queued");
    let mut lookout = waiting.then(|| Lookout::new(dir, entry.key(), window));
    let mut watched = leases.watch();
    let waits = Waits {
        deadline,
        leases: &mut watched,
        lookout: lookout.as_mut(),
    };
    let turn = wait_turn(backend.cluster(), &place, start, waits).await?;
    let ended = Ended {
        request,
        entry,
        leases: &leases,
        mine,
        waiting,
    };
    ended.settle(backend.cluster(), turn).await
}

/// The etcd leases a place in line lives on: the client's (a holder's key,
/// and a waiter's once it claimed its turn) and, with waiter claims, the
/// waiter lease (a waiter's key until then).
struct LineLeases {
    client: Arc<LeaseGen>,
    waiter: Option<Arc<LeaseGen>>,
}

impl LineLeases {
    /// The current leases, granting those that are missing.
    ///
    /// Round trips: none, or a LeaseGrant per lease to grant.
    async fn of(backend: &EtcdBackend) -> Result<Self> {
        let client = backend.etcd_session().lease().await?;
        let waiter = match backend.config().waiter_claims() {
            true => Some(backend.waiter_session().lease().await?),
            false => None,
        };
        Ok(LineLeases { client, waiter })
    }

    /// Receivers of their liveness.
    fn watch(&self) -> Leases {
        Leases {
            client: self.client.subscribe(),
            waiter: self.waiter.as_ref().map(|w| w.subscribe()),
        }
    }

    /// Both still have time to live.
    fn live(&self) -> bool {
        self.client.usable(Duration::ZERO)
            && self
                .waiter
                .as_ref()
                .is_none_or(|w| w.usable(Duration::ZERO))
    }

    /// Why a place in line ended with a lease lost.
    fn lost_reason(&self) -> &'static str {
        match self.waiter.as_ref().is_some_and(|w| w.is_lost()) {
            true => WAITER_LEASE_LOST,
            false => LEASE_LOST,
        }
    }

    /// The server no longer knows one of them: both are given up.
    fn forget(&self, backend: &EtcdBackend, why: &str) {
        backend.etcd_session().lease_gone(&self.client, why);
        if let Some(w) = &self.waiter {
            backend.waiter_session().lease_gone(w, why);
        }
    }
}

/// Our queue entry, on `leases`: put as a holder, or as a waiter with
/// `window` when something blocks it (with waiter claims).
fn new_entry(
    backend: &EtcdBackend,
    dir: &str,
    request: &AcquireRequest,
    leases: &LineLeases,
    window: Duration,
) -> QueueEntry {
    let key = entry_key(dir, request.mode, leases.client.id());
    let value = entry_value(request.owner, request.label.as_deref());
    let entry = QueueEntry::new(backend.shared_cluster(), key, leases.client.id(), value);
    match &leases.waiter {
        Some(w) => {
            let waiter = Waiter {
                value: waiting_value(window),
                lease_id: w.id(),
            };
            entry.waiting_as(waiter, dir)
        }
        None => entry,
    }
}

/// A place in line whose wait ended.
struct Ended<'a> {
    request: &'a AcquireRequest,
    entry: QueueEntry,
    leases: &'a LineLeases,
    mine: i64,
    waiting: bool,
}

impl Ended<'_> {
    /// What the end of the wait means: the lock (claimed if it waited), or
    /// the key given up (deleted) and why.
    ///
    /// Round trips: one Txn to claim, or one DeleteRange.
    async fn settle(self, cluster: &Cluster, turn: Turn) -> Result<InLine> {
        let Ended {
            request,
            entry,
            leases,
            mine,
            waiting,
        } = self;
        let given_up = match turn {
            Turn::Granted { sent, handoff } => {
                let first = First {
                    gen: &leases.client,
                    mine,
                    sent,
                    handoff,
                    waiting,
                };
                return first_in_line(cluster, entry, first).await;
            }
            Turn::TimedOut => Ok(InLine::TimedOut),
            Turn::LeaseLost => Ok(InLine::LeaseLost(leases.lost_reason())),
            Turn::Mismatch(declared) => Err(mismatch(request, declared)),
            // Gone (passed over, or its lease ended), or a lagging member
            // has not seen it yet: deleted either way before queueing again.
            Turn::Gone if leases.live() => Ok(InLine::Requeue),
            Turn::Gone => Ok(InLine::LeaseLost(KEY_VANISHED)),
        };
        entry.remove().await;
        given_up
    }
}

/// The compare that proves no key that would block an entry of `mode`
/// under `dir` exists: no writer or permit for a reader, no key at all for
/// a writer or a permit (whether fewer than `n` permits are there is no
/// compare etcd has).
fn free_of_blockers(dir: &str, mode: Mode) -> Compare {
    match mode {
        Mode::Shared => {
            let (start, end) = not_shared(dir);
            Compare::create_revision(start, CompareOp::Equal, 0).with_range(end)
        }
        _ => Compare::create_revision(dir, CompareOp::Equal, 0).with_prefix(),
    }
}

/// What a waiting entry knows once it fits.
struct First<'a> {
    /// The client's etcd lease, which the key moves to.
    gen: &'a Arc<LeaseGen>,
    /// Our create revision.
    mine: i64,
    /// When the read that found it fitting was sent.
    sent: Instant,
    /// A later permit may wait for this one's grant.
    handoff: bool,
    /// It was put as a waiter and must claim its turn.
    waiting: bool,
}

/// Our entry fits: the lock is ours once a waiter claimed its turn, unless
/// our etcd lease may have lapsed meanwhile. A permit granted after waiting
/// without a claim hands the first waiter's place on to a later permit
/// (`handoff`); a claim is such a rewrite already.
///
/// Round trips: one (Txn) to claim, for a waiter.
async fn first_in_line(cluster: &Cluster, entry: QueueEntry, first: First<'_>) -> Result<InLine> {
    if !first.gen.usable(Duration::ZERO) {
        entry.remove().await;
        return Ok(InLine::LeaseLost(LEASE_LAPSED));
    }
    if let (true, Some(waiter)) = (first.waiting, entry.waiter()) {
        let held = entry.held_value().to_vec();
        let claimed = claim(
            cluster,
            entry.key(),
            first.mine,
            &waiter.value,
            held,
            first.gen.id(),
        );
        if !claimed.await? {
            entry.remove().await;
            return Ok(InLine::Requeue);
        }
    } else if first.handoff {
        entry.hand_on(first.mine);
    }
    let grant = Grant::new(fencing(first.mine), first.sent).with_data(entry.keep());
    Ok(InLine::Granted(grant))
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
/// transaction's reads found it, when that transaction was sent, and
/// whether it was put as a waiter.
struct Start {
    mine: i64,
    line: Line,
    sent: Instant,
    waiting: bool,
}

/// Queues `entry` at `place`, the transaction also checking `when`: where
/// the entry starts waiting, or `None` when a condition failed and nothing
/// was created.
///
/// Round trips: one Txn (put, then read the entries that decide our turn).
async fn enter(entry: &mut QueueEntry, place: &Place, when: Vec<Compare>) -> Result<Option<Start>> {
    let sent = Instant::now();
    let queued = entry
        .enqueue(when, ops(&place.reads(None)), Vec::new())
        .await?;
    Ok(start(place, queued, sent))
}

/// Queues `entry` at `place` as a holder if `free` holds, else as a waiter
/// (see [`QueueEntry::enqueue_in_line`]): where the entry starts waiting,
/// or `None` when a key of that name existed already.
///
/// Round trips: one Txn (put, then read the entries that decide our turn).
async fn enter_line(entry: &mut QueueEntry, place: &Place, free: Compare) -> Result<Option<Start>> {
    let sent = Instant::now();
    let queued = entry.enqueue_in_line(free, ops(&place.reads(None))).await?;
    Ok(start(place, queued, sent))
}

/// Where a queueing transaction sent at `sent` left our entry.
fn start(place: &Place, queued: Queued, sent: Instant) -> Option<Start> {
    match queued {
        Queued::In {
            mine,
            reads,
            waiting,
        } => Some(Start {
            mine,
            line: place.line(mine, mine, &reads),
            sent,
            waiting,
        }),
        Queued::Refused { .. } => None,
    }
}

/// What a wait in line watches beside its turn.
struct Waits<'a> {
    /// The caller's deadline.
    deadline: Option<Instant>,
    /// The leases our key depends on.
    leases: &'a mut Leases,
    /// A waiter's look at the head of the line.
    lookout: Option<&'a mut Lookout>,
}

/// Waits from `start` until the entry fits, the deadline passes or the
/// etcd lease is lost.
///
/// Round trips: per wait, one Watch (plus one local Range when the revision
/// moved) and one local read when it fires; a waiter's lookout one local
/// read per window while a marked waiter is ahead.
async fn wait_turn(
    cluster: &Cluster,
    place: &Place,
    start: Start,
    waits: Waits<'_>,
) -> Result<Turn> {
    let Waits {
        deadline,
        leases,
        mut lookout,
    } = waits;
    let Start {
        mine,
        mut line,
        mut sent,
        ..
    } = start;
    loop {
        let (wait, revision) = match line {
            Line::First { handoff } => return Ok(Turn::Granted { sent, handoff }),
            Line::Gone | Line::ReaderGone => return Ok(Turn::Gone),
            Line::Mismatch { declared } => return Ok(Turn::Mismatch(declared)),
            Line::Behind { wait, revision } => (wait, revision),
        };
        let looking = lookout.as_deref_mut();
        match until_changed(cluster, &wait, revision, deadline, leases, looking).await {
            Waited::Recheck => {
                if let Some(lookout) = lookout.as_deref_mut() {
                    lookout.rearm();
                }
            }
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
