//! Creating the queue key, and removing it again when the acquire does not
//! end holding the lock — also when its future is dropped.
//!
//! A transaction that may create our key runs as its own task, so it always
//! completes; the clean-up armed for a dropped acquire waits for that task
//! before it deletes the key (a delete sent at once could overtake the put
//! and leave the key behind).

use std::sync::Arc;
use std::time::Duration;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{LockError, OwnerToken, Result};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use tokio::sync::oneshot;

use crate::acquire::line::{line_of, newest_two, Line};
use crate::cluster::Cluster;
use crate::errors::BACKEND;
use crate::keys::queue_key;
use crate::session::LeaseGen;

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

impl QueueEntry {
    /// A new key under `dir` on etcd lease `gen`; nothing is sent yet.
    pub(crate) fn new(cluster: Arc<Cluster>, dir: &str, gen: &LeaseGen) -> Self {
        QueueEntry {
            cluster,
            key: queue_key(dir, gen.id()),
            lease_id: gen.id(),
            cleanup: CleanupOnDrop::new(BACKEND, "queue key"),
        }
    }

    /// The queue key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Creates our key only if no key exists under `dir` (an acquire that
    /// does not wait); our create revision if it did.
    ///
    /// Round trips: one (Txn: compare "no key in the range", then put).
    pub(crate) async fn create_if_free(
        &mut self,
        dir: &str,
        owner: OwnerToken,
    ) -> Result<Option<i64>> {
        let txn = Txn::new()
            .when([Compare::create_revision(dir, CompareOp::Equal, 0).with_prefix()])
            .and_then([self.put(owner)]);
        let resp = self.create(txn).await?;
        if !resp.succeeded() {
            self.cleanup.disarm();
            return Ok(None);
        }
        header_revision(&resp).map(Some)
    }

    /// Queues our key and finds its place: our create revision, and the key
    /// just before ours.
    ///
    /// Round trips: one (Txn: put our key with the lease, then read the two
    /// newest keys under the name — ours and the one just before it).
    pub(crate) async fn enqueue(&mut self, dir: &str, owner: OwnerToken) -> Result<(i64, Line)> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([self.put(owner), TxnOp::get(dir, Some(newest_two()))]);
        let resp = self.create(txn).await?;
        if !resp.succeeded() {
            return Err(LockError::backend(
                BACKEND,
                "queue key already existed",
                "random queue key collision",
            ));
        }
        // One transaction, one revision: the put's, our create revision.
        let mine = header_revision(&resp)?;
        let kvs = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(mut g) => Some(g.take_kvs()),
                _ => None,
            })
            .unwrap_or_default();
        Ok((mine, line_of(&kvs, &self.key, mine, mine)))
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
