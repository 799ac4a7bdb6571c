//! Creating the queue key, and removing it again when the acquire does not
//! end holding the lock — also when its future is dropped; rewriting it to
//! hand a permit waiter's place on.
//!
//! A transaction that may create our key runs as its own task, so it always
//! completes; the clean-up armed for a dropped acquire waits for that task
//! before it deletes the key (a delete sent at once could overtake the put
//! and leave the key behind).

use std::sync::Arc;
use std::time::Duration;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{LockError, OwnerToken, Result};
use etcd_client::{Compare, CompareOp, KeyValue, PutOptions, Txn, TxnOp, TxnResponse};
use tokio::sync::oneshot;

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
    },
    /// A condition failed: nothing was created; what the `otherwise` reads
    /// found.
    Refused {
        /// The keys each read found, in order.
        reads: Vec<Vec<KeyValue>>,
    },
}

impl QueueEntry {
    /// The entry `key`, to attach to etcd lease `lease_id`; nothing is sent
    /// yet.
    pub(crate) fn new(cluster: Arc<Cluster>, key: String, lease_id: i64) -> Self {
        QueueEntry {
            cluster,
            key,
            lease_id,
            cleanup: CleanupOnDrop::new(BACKEND, "queue key"),
        }
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
    pub(crate) async fn create_if(
        &mut self,
        free: Compare,
        owner: OwnerToken,
    ) -> Result<Option<i64>> {
        let txn = Txn::new().when([free]).and_then([self.put(owner)]);
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
        owner: OwnerToken,
        reads: Vec<TxnOp>,
        otherwise: Vec<TxnOp>,
    ) -> Result<Queued> {
        let mut compares = vec![Compare::create_revision(
            self.key.as_str(),
            CompareOp::Equal,
            0,
        )];
        compares.extend(when);
        let mut ops = vec![self.put(owner)];
        ops.extend(reads);
        let txn = Txn::new().when(compares).and_then(ops).or_else(otherwise);
        let resp = self.create(txn).await?;
        let reads = read_results(resp.op_responses());
        if !resp.succeeded() {
            self.cleanup.disarm();
            return Ok(Queued::Refused { reads });
        }
        let mine = header_revision(&resp)?;
        Ok(Queued::In { mine, reads })
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
    }

    /// Rewrites our key (same value and etcd lease; its create revision, the
    /// fencing token, stays) so that a permit waiting for this one's grant
    /// wakes. In the background, and only while the key still has create
    /// revision `mine`: a late rewrite never brings a released key back.
    ///
    /// Round trips: one (Txn: compare, then put), in the background.
    pub(crate) fn hand_on(&self, mine: i64, owner: OwnerToken) {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                mine,
            )])
            .and_then([self.put(owner)]);
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

    fn put(&self, owner: OwnerToken) -> TxnOp {
        TxnOp::put(
            self.key.as_str(),
            owner.to_hex(),
            Some(PutOptions::new().with_lease(self.lease_id)),
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
        self.cleanup.arm(async move {
            let _ = request.await;
            delete_key(&cluster, &key).await;
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
