//! Handing a turn on in etcd (the rule itself is the core's:
//! [`distlock_core::line`]): after this client deleted an entry of a name's
//! line (a release, a waiter giving up, a waiter passed over), the entries
//! that delete may have let in must claim their turn within their window;
//! one that does not is passed over (see [`super::claim`](mod@super::claim)).
//!
//! - The head of the line is one Range of at most [`LINE_READ`] entries,
//!   oldest first, with values, served by the member that answered (it
//!   applied our delete before answering) without a quorum round.
//! - An entry is the same as read while its create and mod revisions are;
//!   passing it over is a delete in a transaction guarded by both, so a
//!   claim that lands first always wins.
//!
//! What neither the hand-on nor a lookout reaches (beyond the prefix read,
//! or with no live client anywhere in line) is left to the waiter lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::line::{self, Due, Head, Line};
use distlock_core::{async_trait, LockError, Mode};
use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};

use super::claim::window_of;
use crate::cluster::Cluster;
use crate::keys::mode_of;

/// The most entries one read of the line looks at.
const LINE_READ: i64 = 64;

/// Hands the turn on under `dir` in the background (see the module docs).
///
/// Round trips: one Range; per waiter still unclaimed at its deadline, one
/// member-local Range and one Txn; again per round.
pub(crate) fn spawn(cluster: Arc<Cluster>, dir: String) {
    tokio::spawn(async move {
        line::hand_on(&EtcdLine {
            cluster: &cluster,
            dir: &dir,
        })
        .await;
    });
}

/// An entry of a line at the revisions read.
#[derive(Debug, PartialEq)]
pub(crate) struct Entry {
    key: String,
    create_revision: i64,
    mod_revision: i64,
}

/// The line of waiters under one name's directory.
struct EtcdLine<'a> {
    cluster: &'a Cluster,
    dir: &'a str,
}

/// A waiting acquire's look at the head of its line
/// ([`distlock_core::line::Lookout`] on its directory).
pub(crate) struct Lookout {
    dir: String,
    inner: line::Lookout<Entry>,
}

impl Lookout {
    /// The lookout of the entry `key` under `dir`, looking every `every`.
    pub(crate) fn new(dir: &str, key: &str, every: Duration) -> Self {
        Lookout {
            dir: dir.to_string(),
            inner: line::Lookout::new(key, every),
        }
    }

    /// When to look next; `None` while nothing ahead of us could be passed
    /// over.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.inner.next()
    }

    /// Looks again after our place changed (what is ahead of us did).
    pub(crate) fn rearm(&mut self) {
        self.inner.rearm();
    }

    /// One look (see [`line::Lookout::look`]): looks again while a marked
    /// waiter is ahead of our key.
    ///
    /// Round trips: one member-local Range; one Txn per turn passed over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pass-over is one guarded delete, whole or not at all;
    /// a dropped look only forgets since when it saw a turn unclaimed.
    pub(crate) async fn look(&mut self, cluster: &Cluster) {
        let line = EtcdLine {
            cluster,
            dir: &self.dir,
        };
        self.inner.look(&line).await;
    }
}

#[async_trait]
impl Line for EtcdLine<'_> {
    type Entry = Entry;
    type Error = LockError;

    fn describe(&self) -> &str {
        self.dir
    }

    /// Round trips: one (serializable Range, oldest first, with values).
    async fn read_head(&self, me: Option<&str>) -> Result<Head<Entry>, LockError> {
        let options = GetOptions::new()
            .with_serializable()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(LINE_READ);
        let dir = self.dir;
        let resp = self
            .cluster
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
                Some(Due {
                    window: window_of(kv.value())?,
                    entry: Entry {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        create_revision: kv.create_revision(),
                        mod_revision: kv.mod_revision(),
                    },
                })
            })
            .collect();
        // Worth another look while a marked waiter is ahead of our key.
        let look_again = me.is_some_and(|me| {
            let at = line.iter().position(|kv| kv.key() == me.as_bytes());
            at.is_some_and(|at| line[..at].iter().any(|kv| window_of(kv.value()).is_some()))
        });
        Ok(Head {
            read_at,
            due,
            look_again,
        })
    }

    /// A member-local read: a lagging member only lets the guarded delete
    /// decide.
    ///
    /// Round trips: one (serializable Range).
    async fn still_unclaimed(&self, waiter: &Entry) -> bool {
        let options = GetOptions::new().with_keys_only().with_serializable();
        let read = self
            .cluster
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

    /// Round trips: one (Txn: compare create and mod revisions, then
    /// delete).
    async fn pass_over(&self, waiter: &Entry) -> bool {
        let key = waiter.key.as_str();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Equal, waiter.create_revision),
                Compare::mod_revision(key, CompareOp::Equal, waiter.mod_revision),
            ])
            .and_then([TxnOp::delete(key, None)]);
        let deleted = self
            .cluster
            .call("passing over a silent waiter", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
        match deleted {
            Ok(resp) => resp.succeeded(),
            Err(e) => {
                tracing::debug!(key, error = %e, "distlock.etcd.pass_over_failed");
                false
            }
        }
    }
}
