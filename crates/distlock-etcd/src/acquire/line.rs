//! Where an entry stands in its name's queue: which ranges to read for its
//! mode, and what they say.
//!
//! Every mode decides the same way: read the entries created before ours
//! that can decide our turn, and ask the core's compatibility rule
//! ([`Mode::fits`]) whether ours fits beside them. Entries before ours are
//! only ever deleted, never created, so a read at any revision at or after
//! our create revision can only over-count them: "it fits" seen once stays
//! true. What is read, and what to wait for when it does not fit, depend on
//! the mode (the key layout in [`crate::keys`] makes each one contiguous
//! range):
//!
//! - **exclusive** (the mutex, a writer): the newest two keys under the
//!   name, ours and the one just before it; it goes when it is first, and
//!   otherwise waits for that predecessor's delete. An upgrade's writer
//!   entry reads three and passes over its own reader entry.
//! - **shared** (a reader): the newest non-reader key before ours; it goes
//!   when there is none, and otherwise waits for that key's delete (the
//!   last writer or permit ahead).
//! - **permit of `n`**: the newest non-permit key before ours, the oldest
//!   `n + 1` permits and the permit just before ours. Behind a non-permit
//!   it waits for that key's delete. With exactly `n` permits ahead it is
//!   the first permit waiting, and waits for any permit's delete (only it
//!   watches that range). Further back it waits for the permit just before
//!   it to be deleted *or rewritten*: a permit that is granted after waiting
//!   rewrites its key when a later permit exists, handing the first
//!   waiter's place on. So each release wakes the one waiter it lets in.

use distlock_core::{Fit, Mode, Result};
use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse};

use crate::cluster::Cluster;
use crate::keys::{mode_of, not_permits, not_shared, permits, split_queue, Range};

/// One entry's place in its name's queue: what to read to judge it.
pub(crate) struct Place {
    dir: String,
    key: String,
    mode: Mode,
    /// For an upgrade's writer entry: the reader entry it upgrades, ahead of
    /// it, which it passes over and which must still exist.
    reader: Option<String>,
}

/// Where an entry stands, as one read found it.
#[derive(Debug)]
pub(crate) enum Line {
    /// It fits beside every entry before it: granted. `handoff`: a later
    /// permit may be waiting for this one's grant (see the module docs).
    First {
        /// Rewrite the key so that the permit behind it wakes.
        handoff: bool,
    },
    /// It must wait for `wait`, as a read at `revision` found.
    Behind {
        /// What to wait for.
        wait: WaitFor,
        /// The revision of the read that found it.
        revision: i64,
    },
    /// Our key is gone (its etcd lease expired or it was deleted).
    Gone,
    /// An upgrade's reader entry is gone: the read lock was lost.
    ReaderGone,
    /// A permit of another count is ahead: refused.
    Mismatch {
        /// The count that permit declared.
        declared: u32,
    },
}

/// What a waiting entry waits for.
#[derive(Debug)]
pub(crate) enum WaitFor {
    /// The delete of one key; with `rewrites`, also a rewrite of it.
    Key {
        /// The key decides our turn.
        key: String,
        /// Its mod revision when the read found it.
        mod_revision: i64,
        /// A rewrite (a permit handing the first waiter's place on) counts.
        rewrites: bool,
    },
    /// Any delete among the permits (the first permit waiting).
    Permits {
        /// The permits' key range.
        range: Range,
        /// The keys of the permits ahead, oldest first, when the read found
        /// them (to tell whether one went before the watch started).
        ahead: Vec<Vec<u8>>,
        /// Our create revision.
        bound: i64,
    },
}

/// One range read of a queue read.
pub(crate) struct Read {
    key: String,
    options: GetOptions,
}

impl Read {
    /// The read as a transaction operation.
    pub(crate) fn op(&self) -> TxnOp {
        TxnOp::get(self.key.as_str(), Some(self.options.clone()))
    }
}

/// The operations of `reads`, for a transaction.
pub(crate) fn ops(reads: &[Read]) -> Vec<TxnOp> {
    reads.iter().map(Read::op).collect()
}

impl Place {
    /// The place of `key`, an entry of `mode` under `dir`.
    pub(crate) fn new(dir: &str, key: &str, mode: Mode) -> Self {
        Place {
            dir: dir.to_string(),
            key: key.to_string(),
            mode,
            reader: None,
        }
    }

    /// The place of `key`, the writer entry upgrading the reader entry
    /// `reader`.
    pub(crate) fn upgrading(dir: &str, key: &str, reader: &str) -> Self {
        Place {
            reader: Some(reader.to_string()),
            ..Place::new(dir, key, Mode::Exclusive)
        }
    }

    /// The ranges to read, keys only. `bound` is our create revision for a
    /// read after the key was created: served by the member alone, bounded
    /// to keys created at or before ours. Without it (the reads inside the
    /// queueing transaction) every other key is older than ours anyway.
    pub(crate) fn reads(&self, bound: Option<i64>) -> Vec<Read> {
        match (self.mode, &self.reader) {
            (Mode::Shared, _) => {
                let (start, end) = not_shared(&self.dir);
                vec![
                    ranged(&start, Some(&end), newest(1), bound),
                    exact(&self.key, bound),
                ]
            }
            (Mode::Permit { limit }, _) => {
                let (not_start, not_end) = not_permits(&self.dir);
                let (start, end) = permits(&self.dir);
                let mut reads = vec![
                    ranged(&not_start, Some(&not_end), newest(1), bound),
                    self.oldest_permits(limit, bound),
                    ranged(&start, Some(&end), newest(2), bound),
                ];
                if bound.is_some() {
                    // Unbounded: is any permit newer than ours?
                    let latest = newest(1).with_range(end.as_str()).with_serializable();
                    reads.push(ranged(&start, None, latest, None));
                }
                reads
            }
            (_, Some(reader)) => vec![
                ranged(&self.dir, None, newest(3).with_prefix(), bound),
                exact(reader, bound),
            ],
            (_, None) => vec![ranged(&self.dir, None, newest(2).with_prefix(), bound)],
        }
    }

    /// For a permit request: the read of the oldest `limit + 1` permits,
    /// which shows a permit of another count if one must refuse it.
    pub(crate) fn permit_census(&self) -> Option<Read> {
        match self.mode {
            Mode::Permit { limit } => Some(self.oldest_permits(limit, None)),
            _ => None,
        }
    }

    fn oldest_permits(&self, limit: u32, bound: Option<i64>) -> Read {
        let (start, end) = permits(&self.dir);
        ranged(&start, Some(&end), oldest(i64::from(limit) + 1), bound)
    }

    /// What `reads` (the results of [`reads`](Self::reads), in order, read
    /// at `revision`) say about our entry, created at `mine`.
    pub(crate) fn line(&self, mine: i64, revision: i64, reads: &[Vec<KeyValue>]) -> Line {
        let read = |i: usize| reads.get(i).map(Vec::as_slice).unwrap_or(&[]);
        match self.mode {
            Mode::Shared => self.shared(mine, revision, read(0), read(1)),
            Mode::Permit { limit } => {
                let permits = PermitReads {
                    blockers: read(0),
                    oldest: read(1),
                    newest: read(2),
                    latest: read(3),
                };
                self.permit(limit, mine, revision, &permits)
            }
            _ => self.exclusive(mine, revision, read(0), read(1)),
        }
    }

    /// The permit count of another count among `kvs` (the oldest permits),
    /// if any: a permit request meeting it is refused.
    pub(crate) fn mismatch(&self, kvs: &[KeyValue]) -> Option<u32> {
        match self.fits(kvs.iter()) {
            Fit::Mismatch { declared } => Some(declared),
            _ => None,
        }
    }

    /// The core's rule, for our mode beside `ahead`.
    fn fits<'a>(&self, ahead: impl Iterator<Item = &'a KeyValue>) -> Fit {
        self.mode.fits(ahead.map(|kv| mode_of(&self.dir, kv.key())))
    }

    fn is_ours(&self, kv: &KeyValue, mine: i64) -> bool {
        kv.key() == self.key.as_bytes() && kv.create_revision() == mine
    }

    /// A writer: first, or behind the key just before it.
    fn exclusive(&self, mine: i64, revision: i64, queue: &[KeyValue], reader: &[KeyValue]) -> Line {
        let (found, predecessor) = split_queue(queue, &self.key, self.reader.as_deref());
        if found != Some(mine) {
            return Line::Gone;
        }
        if let Some(key) = &self.reader {
            if !reader.iter().any(|kv| kv.key() == key.as_bytes()) {
                return Line::ReaderGone;
            }
        }
        match (self.fits(predecessor.into_iter()), predecessor) {
            (Fit::Waits, Some(kv)) => behind(key_wait(kv, false), revision),
            (fit, _) => decided(fit),
        }
    }

    /// A reader: in unless a writer or permit is ahead; then behind the
    /// newest of those.
    fn shared(&self, mine: i64, revision: i64, blockers: &[KeyValue], own: &[KeyValue]) -> Line {
        if !own.iter().any(|kv| self.is_ours(kv, mine)) {
            return Line::Gone;
        }
        let blocker = blockers.iter().find(|kv| kv.create_revision() < mine);
        match (self.fits(blocker.into_iter()), blocker) {
            (Fit::Waits, Some(kv)) => behind(key_wait(kv, false), revision),
            (fit, _) => decided(fit),
        }
    }

    /// A permit of `limit`: in when fewer than `limit` permits (of that
    /// count) and nothing else are ahead.
    fn permit(&self, limit: u32, mine: i64, revision: i64, reads: &PermitReads<'_>) -> Line {
        if !reads
            .newest
            .first()
            .is_some_and(|kv| self.is_ours(kv, mine))
        {
            return Line::Gone;
        }
        let blocker = reads.blockers.iter().find(|kv| kv.create_revision() < mine);
        let predecessor = reads.newest.iter().find(|kv| kv.create_revision() < mine);
        // The oldest permits before ours: all of them when ours is among the
        // oldest `limit + 1`, at least `limit` of them otherwise.
        let before: Vec<&KeyValue> = reads
            .oldest
            .iter()
            .take_while(|kv| kv.key() != self.key.as_bytes())
            .filter(|kv| kv.create_revision() < mine)
            .collect();
        let position = reads
            .oldest
            .iter()
            .position(|kv| kv.key() == self.key.as_bytes());
        let mut ahead: Vec<&KeyValue> = blocker.into_iter().chain(before.iter().copied()).collect();
        if let Some(p) = predecessor.filter(|p| !ahead.iter().any(|kv| kv.key() == p.key())) {
            ahead.push(p);
        }
        let fit = self.fits(ahead.into_iter());
        if fit != Fit::Waits {
            let handoff = reads
                .latest
                .first()
                .is_some_and(|kv| !self.is_ours(kv, mine));
            return match fit {
                Fit::Fits => Line::First { handoff },
                other => decided(other),
            };
        }
        let wait = match (blocker, predecessor) {
            (Some(kv), _) => key_wait(kv, false),
            (None, Some(kv)) if position != Some(limit as usize) => key_wait(kv, true),
            _ => WaitFor::Permits {
                range: permits(&self.dir),
                ahead: before.iter().map(|kv| kv.key().to_vec()).collect(),
                bound: mine,
            },
        };
        behind(wait, revision)
    }
}

/// The reads of a permit's place, by what they hold.
struct PermitReads<'a> {
    /// The newest non-permit at or before ours.
    blockers: &'a [KeyValue],
    /// The oldest `limit + 1` permits at or before ours.
    oldest: &'a [KeyValue],
    /// The newest two permits at or before ours: ours and the one before.
    newest: &'a [KeyValue],
    /// The newest permit of all (rechecks only): a later one exists when it
    /// is not ours.
    latest: &'a [KeyValue],
}

/// A read of `key` (up to `end`, if given), keys only, bounded to keys
/// created at or before `bound` and served by the member alone, if given.
fn ranged(key: &str, end: Option<&str>, options: GetOptions, bound: Option<i64>) -> Read {
    let options = match end {
        Some(end) => options.with_range(end),
        None => options,
    };
    let options = match bound {
        Some(mine) => options.with_serializable().with_max_create_revision(mine),
        None => options,
    };
    Read {
        key: key.to_string(),
        options: options.with_keys_only(),
    }
}

/// A read of exactly `key`, keys only; served by the member alone after our
/// key was created (`bound`).
fn exact(key: &str, bound: Option<i64>) -> Read {
    let options = GetOptions::new().with_keys_only();
    Read {
        key: key.to_string(),
        options: match bound {
            Some(_) => options.with_serializable(),
            None => options,
        },
    }
}

/// Newest first, `limit` keys.
fn newest(limit: i64) -> GetOptions {
    GetOptions::new()
        .with_sort(SortTarget::Create, SortOrder::Descend)
        .with_limit(limit)
}

/// Oldest first, `limit` keys.
fn oldest(limit: i64) -> GetOptions {
    GetOptions::new()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(limit)
}

fn key_wait(kv: &KeyValue, rewrites: bool) -> WaitFor {
    WaitFor::Key {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        mod_revision: kv.mod_revision(),
        rewrites,
    }
}

fn behind(wait: WaitFor, revision: i64) -> Line {
    Line::Behind { wait, revision }
}

/// A decided line: granted, or refused for a mismatch. (`Waits` with
/// nothing to wait for cannot be read; the key counts as gone, which
/// queues again.)
fn decided(fit: Fit) -> Line {
    match fit {
        Fit::Fits => Line::First { handoff: false },
        Fit::Mismatch { declared } => Line::Mismatch { declared },
        Fit::Waits => Line::Gone,
    }
}

/// After what we waited for happened: where does our entry stand now?
///
/// The read is serializable (answered by the member without a quorum
/// round): it may lag, but entries created before ours are only ever
/// deleted, never created, so a member that shows our key shows at least
/// every entry still ahead of it; a lagging answer can only make us wait
/// longer.
///
/// Round trips: one — a Range for the mutex (as before any other mode
/// existed), a read-only Txn of Ranges for the other modes.
pub(crate) async fn recheck(cluster: &Cluster, place: &Place, mine: i64) -> Result<Line> {
    let reads = place.reads(Some(mine));
    let (revision, results) = match reads.as_slice() {
        [one] => {
            let mut resp = cluster
                .read("queue read", |mut c| {
                    let (key, options) = (one.key.clone(), one.options.clone());
                    async move { c.get(key, Some(options)).await }
                })
                .await?;
            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            (revision, vec![resp.take_kvs()])
        }
        _ => {
            let txn = Txn::new().and_then(ops(&reads));
            let resp = cluster
                .read("queue read", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            (revision, read_results(resp.op_responses()))
        }
    };
    Ok(place.line(mine, revision, &results))
}

/// The keys each Range of a transaction read, in order.
pub(crate) fn read_results(responses: Vec<TxnOpResponse>) -> Vec<Vec<KeyValue>> {
    responses
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(mut g) => Some(g.take_kvs()),
            _ => None,
        })
        .collect()
}
