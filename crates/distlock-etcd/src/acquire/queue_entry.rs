//! Creating the queue key (as a holder, or as a waiter when something
//! blocks it, see [`super::claim`](mod@super::claim)), and removing it again when the acquire
//! does not end holding the lock — also when its future is dropped;
//! rewriting it to hand a permit waiter's place on.
//!
//! A transaction that may create our key runs as its own task, so it always
//! completes; the clean-up armed for a dropped acquire waits for that task
//! before it deletes the key (a delete sent at once could overtake the put
//! and leave the key behind).

use std::sync::Arc;
use std::time::Duration;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{LockError, Result};
use etcd_client::{
    Compare, CompareOp, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use tokio::sync::oneshot;

use crate::acquire::claim::Waiter;
use crate::acquire::hand_over;
use crate::acquire::line::read_results;
use crate::cluster::Cluster;
use crate::errors::BACKEND;

/// Attempts at deleting a key when the cluster fails.
const DELETE_ATTEMPTS: u32 = 3;

/// One queue key of this client, and the clean-up that deletes it unless
/// the acquire ends holding the lock.
pub(crate) struct QueueEntry {
    cluster: Arc<Cluster>,
    key: String,
    lease_id: i64,
    /// The key's value: the owner token, and the holder label if any
    /// ([`entry_value`](crate::keys::entry_value)).
    value: Vec<u8>,
    /// How the key is put when something blocks it, and the name's key
    /// range (to hand the turn on once the key is removed).
    waiter: Option<(Waiter, String)>,
    cleanup: CleanupOnDrop,
}

/// What a queueing transaction did.
pub(crate) enum Queued {
    /// Our key is in the queue: its create revision, and what the reads
    /// that followed the put found.
    In {
        /// Our create revision.
        mine: i64,
        /// The keys each read found, in order.
        reads: Vec<Vec<KeyValue>>,
        /// It was put as a waiter: it must claim its turn.
        waiting: bool,
    },
    /// A condition failed: nothing was created; what the `otherwise` reads
    /// found.
    Refused {
        /// The keys each read found, in order.
        reads: Vec<Vec<KeyValue>>,
    },
}

impl QueueEntry {
    /// The entry `key` with `value`, to attach to etcd lease `lease_id`;
    /// nothing is sent yet.
    pub(crate) fn new(cluster: Arc<Cluster>, key: String, lease_id: i64, value: Vec<u8>) -> Self {
        QueueEntry {
            cluster,
            key,
            lease_id,
            value,
            waiter: None,
            cleanup: CleanupOnDrop::new(BACKEND, "queue key"),
        }
    }

    /// Puts the key as `waiter` when something under `dir` blocks it (see
    /// [`enqueue_in_line`](Self::enqueue_in_line)); once such a key is
    /// removed, the turn it may have held up is handed on.
    pub(crate) fn waiting_as(mut self, waiter: Waiter, dir: &str) -> Self {
        self.waiter = Some((waiter, dir.to_string()));
        self
    }

    /// The key's waiting mark, if it may be put as a waiter.
    pub(crate) fn waiter(&self) -> Option<&Waiter> {
        self.waiter.as_ref().map(|(w, _)| w)
    }

    /// The holder value of the key (owner token and label).
    pub(crate) fn held_value(&self) -> &[u8] {
        &self.value
    }

    /// The queue key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Creates our key only if `free` holds (a compare that no key which
    /// would block ours exists: an acquire that does not wait); our create
    /// revision if it did.
    ///
    /// Round trips: one (Txn: compare, then put).
    pub(crate) async fn create_if(&mut self, free: Compare) -> Result<Option<i64>> {
        let txn = Txn::new().when([free]).and_then([self.put()]);
        let resp = self.create(txn).await?;
        if !resp.succeeded() {
            self.cleanup.disarm();
            return Ok(None);
        }
        header_revision(&resp).map(Some)
    }

    /// Queues our key if `when` holds (and the key does not exist yet),
    /// running `reads` after the put in the same transaction; otherwise
    /// runs `otherwise`. One transaction, one revision: the put's, our
    /// create revision.
    ///
    /// Round trips: one (Txn).
    pub(crate) async fn enqueue(
        &mut self,
        when: Vec<Compare>,
        reads: Vec<TxnOp>,
        otherwise: Vec<TxnOp>,
    ) -> Result<Queued> {
        let mut compares = vec![Compare::create_revision(
            self.key.as_str(),
            CompareOp::Equal,
            0,
        )];
        compares.extend(when);
        let mut ops = vec![self.put()];
        ops.extend(reads);
        let txn = Txn::new().when(compares).and_then(ops).or_else(otherwise);
        let resp = self.create(txn).await?;
        let reads = read_results(resp.op_responses());
        if !resp.succeeded() {
            self.cleanup.disarm();
            return Ok(Queued::Refused { reads });
        }
        let mine = header_revision(&resp)?;
        Ok(Queued::In {
            mine,
            reads,
            waiting: false,
        })
    }

    /// Queues our key (if it does not exist yet): as a holder if `free`
    /// holds (nothing that would block it exists), otherwise as a waiter
    /// (see [`waiting_as`](Self::waiting_as); without one, as a holder
    /// either way), running `reads` after the put. One transaction, one
    /// revision: the put's, our create revision.
    ///
    /// Round trips: one (Txn, the choice nested inside).
    ///
    /// # Cancel safety
    ///
    /// As for [`enqueue`](Self::enqueue): the transaction runs as its own
    /// task and the armed clean-up deletes the key once it landed.
    pub(crate) async fn enqueue_in_line(
        &mut self,
        free: Compare,
        reads: Vec<TxnOp>,
    ) -> Result<Queued> {
        let Some((waiter, _)) = self.waiter.clone() else {
            return self.enqueue(Vec::new(), reads, Vec::new()).await;
        };
        let held: Vec<TxnOp> = std::iter::once(self.put()).chain(reads.clone()).collect();
        let waiting = std::iter::once(self.put_waiting(&waiter))
            .chain(reads)
            .collect::<Vec<_>>();
        let choice = Txn::new().when([free]).and_then(held).or_else(waiting);
        let absent = Compare::create_revision(self.key.as_str(), CompareOp::Equal, 0);
        let txn = Txn::new().when([absent]).and_then([TxnOp::txn(choice)]);
        let resp = self.create(txn).await?;
        if !resp.succeeded() {
            self.cleanup.disarm();
            return Ok(Queued::Refused { reads: Vec::new() });
        }
        let mine = header_revision(&resp)?;
        let Some(TxnOpResponse::Txn(choice)) = resp.op_responses().into_iter().next() else {
            return Err(LockError::backend(
                BACKEND,
                "queueing transaction",
                "answer without the nested transaction",
            ));
        };
        Ok(Queued::In {
            mine,
            waiting: !choice.succeeded(),
            reads: read_results(choice.op_responses()),
        })
    }

    /// The lock is ours: keeps the key and returns it.
    pub(crate) fn keep(mut self) -> String {
        self.cleanup.disarm();
        self.key
    }

    /// Deletes the key now. The background clean-up stays armed until the
    /// delete is done, so dropping this future still removes the key.
    ///
    /// Round trips: one (DeleteRange), more only on failures.
    pub(crate) async fn remove(mut self) {
        delete_key(&self.cluster, &self.key).await;
        self.cleanup.disarm();
        if let Some((_, dir)) = &self.waiter {
            hand_over::spawn(self.cluster.clone(), dir.clone());
        }
    }

    /// Rewrites our key (same value and etcd lease; its create revision, the
    /// fencing token, stays) so that a permit waiting for this one's grant
    /// wakes. In the background, and only while the key still has create
    /// revision `mine` and our etcd lease: a late rewrite never brings a
    /// released key back, nor takes a key kept after its release (on a hold
    /// lease of its own, see `hold`) back to this client's lease.
    ///
    /// Round trips: one (Txn: compare, then put), in the background.
    pub(crate) fn hand_on(&self, mine: i64) {
        let key = self.key.as_str();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Equal, mine),
                Compare::lease(key, CompareOp::Equal, self.lease_id),
            ])
            .and_then([self.put()]);
        let (cluster, key) = (self.cluster.clone(), self.key.clone());
        tokio::spawn(async move {
            let sent = cluster
                .call("permit handoff", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await;
            if let Err(e) = sent {
                tracing::debug!(key, error = %e, "distlock.etcd.handoff_failed");
            }
        });
    }

    fn put(&self) -> TxnOp {
        TxnOp::put(
            self.key.as_str(),
            self.value.clone(),
            Some(PutOptions::new().with_lease(self.lease_id)),
        )
    }

    fn put_waiting(&self, waiter: &Waiter) -> TxnOp {
        TxnOp::put(
            self.key.as_str(),
            waiter.value.clone(),
            Some(PutOptions::new().with_lease(waiter.lease_id)),
        )
    }

    /// Sends `txn`, which may create our key, as its own task, and arms the
    /// clean-up: wait for that task, then delete the key.
    async fn create(&mut self, txn: Txn) -> Result<TxnResponse> {
        let (reply, answer) = oneshot::channel();
        let cluster = self.cluster.clone();
        let request = tokio::spawn(async move {
            let result = cluster
                .call("acquire transaction", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await;
            let _ = reply.send(result);
        });
        let (cluster, key) = (self.cluster.clone(), self.key.clone());
        let dir = self.waiter.as_ref().map(|(_, dir)| dir.clone());
        self.cleanup.arm(async move {
            let _ = request.await;
            delete_key(&cluster, &key).await;
            if let Some(dir) = dir {
                hand_over::spawn(cluster, dir);
            }
        });
        answer.await.unwrap_or_else(|_| {
            Err(LockError::unavailable(
                BACKEND,
                "the acquire transaction ended without an answer",
            ))
        })
    }
}

/// Deletes a key. A key left behind would block the lock for as long as
/// this client's etcd lease lives, so a failed delete is retried (deleting
/// is idempotent) before giving up with a warning.
///
/// Round trips: one (DeleteRange), more only on failures.
async fn delete_key(cluster: &Cluster, key: &str) {
    for attempt in 1..=DELETE_ATTEMPTS {
        let deleted = cluster
            .call("queue key cleanup", |mut c| async move {
                c.delete(key, None).await
            })
            .await;
        match deleted {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(key, attempt, error = %e, "distlock.etcd.cleanup_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::warn!(
        key,
        "distlock.etcd.cleanup_gave_up: the key stays until the client's etcd lease ends"
    );
}

/// The revision a transaction was applied at.
fn header_revision(resp: &TxnResponse) -> Result<i64> {
    resp.header().map(|h| h.revision()).ok_or_else(|| {
        LockError::backend(BACKEND, "transaction answer", "response without a header")
    })
}
