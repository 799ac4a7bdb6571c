//! Handing a turn on: after this client deleted an entry of a name's line
//! (a release, a waiter giving up, a waiter passed over), the entries that
//! delete may have let in must claim their turn within their window; one
//! that does not is passed over (see [`super::claim`](mod@super::claim)).
//!
//! 1. Read the line, oldest first, with values (one Range of at most
//!    [`LINE_READ`] entries, served by the member that answered our delete
//!    — it applied that delete before answering — without a quorum round).
//! 2. The entries whose turn it is are the longest prefix that fits
//!    together by the core's rule ([`Mode::admitted`]); those still marked
//!    as waiters are due to claim.
//! 3. At each one's deadline (the read's answer plus the window its mark
//!    carries), read it again (member-local); if its mod revision did not
//!    move (no claim), delete it in a transaction guarded by its create and
//!    mod revisions, so a claim that lands first always wins.
//! 4. A deletion lets the next entries in: back to 1 (a few rounds at
//!    most).
//!
//! A live waiter is woken by the delete that let it in and claims within a
//! few round trips, long before its window ends; only a waiter that died in
//! line (or one stalled for longer than its window, which then queues
//! again) is passed over.
//!
//! The client that let a waiter in may be gone before the window ended
//! (killed, or exited right after its release). So the waiters behind keep
//! a [`Lookout`] too: while a marked waiter is ahead of its own key, a
//! waiting acquire reads the head of the line once per its own window
//! (member-local) and passes over a turn it saw unclaimed, with the same
//! mod revision, for that turn's window: a silent turn costs the line at
//! most two windows then. What neither reaches (beyond the prefix read, or
//! with no live client anywhere in line) is left to the waiter lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{Mode, Result};
use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};

use super::claim::window_of;
use crate::cluster::Cluster;
use crate::keys::mode_of;

/// The most entries one read of the line looks at.
const LINE_READ: i64 = 64;

/// The most rounds (each passing over at least one waiter) one hand-on
/// makes before leaving the rest to the waiter leases.
const MAX_ROUNDS: usize = 16;

/// Hands the turn on under `dir` in the background (see the module docs).
///
/// Round trips: one Range; per waiter still unclaimed at its deadline, one
/// member-local Range and one Txn; again per round.
pub(crate) fn spawn(cluster: Arc<Cluster>, dir: String) {
    tokio::spawn(async move { hand_on(&cluster, &dir).await });
}

/// An entry whose turn came, still marked as a waiter.
#[derive(Debug)]
struct Due {
    key: String,
    create_revision: i64,
    mod_revision: i64,
    /// The window its mark carries.
    window: Duration,
}

/// Rounds of steps 1–4 until no waiter was passed over.
async fn hand_on(cluster: &Cluster, dir: &str) {
    for _ in 0..MAX_ROUNDS {
        let head = match read_head(cluster, dir).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(dir, error = %e, "distlock.etcd.hand_on_failed");
                return;
            }
        };
        if head.due.is_empty() || !pass_over_silent(cluster, head.due, head.read_at).await {
            return;
        }
    }
}

/// A waiting acquire's look at the head of its line (see the module docs).
pub(crate) struct Lookout {
    dir: String,
    /// Our key.
    key: String,
    /// How often to look: our own window.
    every: Duration,
    /// The next look, while one is worth it.
    next: Option<Instant>,
    /// Turns seen unclaimed, and since when.
    seen: Vec<(Due, Instant)>,
}

impl Lookout {
    /// The lookout of the entry `key` under `dir`, looking every `every`.
    pub(crate) fn new(dir: &str, key: &str, every: Duration) -> Self {
        Lookout {
            dir: dir.to_string(),
            key: key.to_string(),
            every,
            next: Some(Instant::now() + every),
            seen: Vec::new(),
        }
    }

    /// When to look next; `None` while nothing ahead of us could be passed
    /// over.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Looks again after our place changed (what is ahead of us did).
    pub(crate) fn rearm(&mut self) {
        self.next.get_or_insert_with(|| Instant::now() + self.every);
    }

    /// One look: passes over the turns that stayed unclaimed for their
    /// window since we first saw them; looks again in one window while a
    /// marked waiter is ahead of our key.
    ///
    /// Round trips: one member-local Range; one Txn per turn passed over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pass-over is one guarded delete, whole or not at all;
    /// a dropped look only forgets since when it saw a turn unclaimed.
    pub(crate) async fn look(&mut self, cluster: &Cluster) {
        let head = match read_head(cluster, &self.dir).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(dir = self.dir, error = %e, "distlock.etcd.lookout_failed");
                self.next = Some(Instant::now() + self.every);
                return;
            }
        };
        let worth_it = head.waiters_before(&self.key);
        let mut seen = Vec::new();
        for due in head.due {
            let since = self
                .seen
                .iter()
                .find(|(s, _)| s.key == due.key && s.mod_revision == due.mod_revision)
                .map_or(head.read_at, |(_, since)| *since);
            match since + due.window <= head.read_at {
                true => {
                    pass_over(cluster, &due).await;
                }
                false => seen.push((due, since)),
            }
        }
        self.seen = seen;
        self.next = worth_it.then(|| Instant::now() + self.every);
    }
}

/// What one read of the head of a line found.
struct Head {
    /// When the read was answered.
    read_at: Instant,
    /// The turns not claimed yet.
    due: Vec<Due>,
    /// Every entry read, oldest first: its key and whether it is marked.
    entries: Vec<(Vec<u8>, bool)>,
}

impl Head {
    /// Whether `key` was read with a marked waiter before it.
    fn waiters_before(&self, key: &str) -> bool {
        let Some(at) = self.entries.iter().position(|(k, _)| k == key.as_bytes()) else {
            return false;
        };
        self.entries[..at].iter().any(|(_, marked)| *marked)
    }
}

/// Steps 1 and 2: the head of the line, and its turns not claimed yet.
///
/// Round trips: one (serializable Range, oldest first, with values).
async fn read_head(cluster: &Cluster, dir: &str) -> Result<Head> {
    let options = GetOptions::new()
        .with_serializable()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(LINE_READ);
    let resp = cluster
        .read("reading whose turn it is", |mut c| {
            let options = options.clone();
            async move { c.get(dir, Some(options)).await }
        })
        .await?;
    let read_at = Instant::now();
    let line = resp.kvs();
    let modes: Vec<Mode> = line.iter().map(|kv| mode_of(dir, kv.key())).collect();
    let turns = Mode::admitted(&[], &modes);
    let due = line[..turns]
        .iter()
        .filter_map(|kv| {
            let window = window_of(kv.value())?;
            Some(Due {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                window,
            })
        })
        .collect();
    let entries = line
        .iter()
        .map(|kv| (kv.key().to_vec(), window_of(kv.value()).is_some()))
        .collect();
    Ok(Head {
        read_at,
        due,
        entries,
    })
}

/// Step 3: passes over each waiter of `due` (read at `read_at`) that has
/// not claimed its turn by the end of its window; true if one was.
async fn pass_over_silent(cluster: &Cluster, mut due: Vec<Due>, read_at: Instant) -> bool {
    due.sort_by_key(|d| d.window);
    let mut passed = false;
    for waiter in &due {
        tokio::time::sleep_until((read_at + waiter.window).into()).await;
        if still_unclaimed(cluster, waiter).await && pass_over(cluster, waiter).await {
            passed = true;
        }
    }
    passed
}

/// Whether `waiter` still has the mod revision it had (a member-local read:
/// a lagging member only lets the guarded delete decide).
///
/// Round trips: one (serializable Range).
async fn still_unclaimed(cluster: &Cluster, waiter: &Due) -> bool {
    let options = GetOptions::new().with_keys_only().with_serializable();
    let read = cluster
        .read("reading a waiter", |mut c| {
            let options = options.clone();
            let key = waiter.key.as_str();
            async move { c.get(key, Some(options)).await }
        })
        .await;
    read.is_ok_and(|resp| {
        resp.kvs()
            .first()
            .is_some_and(|kv| kv.mod_revision() == waiter.mod_revision)
    })
}

/// Deletes `waiter` if it is still the unclaimed waiter we read; true if it
/// was.
///
/// Round trips: one (Txn: compare create and mod revisions, then delete).
async fn pass_over(cluster: &Cluster, waiter: &Due) -> bool {
    let key = waiter.key.as_str();
    let txn = Txn::new()
        .when([
            Compare::create_revision(key, CompareOp::Equal, waiter.create_revision),
            Compare::mod_revision(key, CompareOp::Equal, waiter.mod_revision),
        ])
        .and_then([TxnOp::delete(key, None)]);
    let deleted = cluster
        .call("passing over a silent waiter", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await;
    match deleted {
        Ok(resp) if resp.succeeded() => {
            tracing::info!(key, "distlock.etcd.waiter_passed_over");
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::debug!(key, error = %e, "distlock.etcd.pass_over_failed");
            false
        }
    }
}
