//! The contract: [`LockBackend`] for [`EtcdBackend`], each operation in its
//! own module (`acquire`, `renew`, `release`, `status`).

use std::time::Duration;

use async_trait::async_trait;
use distlock_core::{
    AcquireRequest, Capabilities, Grant, Lease, Liveness, LockBackend, LockName, LockStatus,
    Renewal, Result,
};
use tokio::sync::watch;

use crate::backend::EtcdBackend;
use crate::errors::BACKEND;
use crate::{acquire, release, renew, status};

/// The shortest acquire ttl accepted.
const MIN_TTL: Duration = Duration::from_millis(100);
/// The longest acquire ttl accepted (the ttl is only the validity a lease
/// reports; the key lives as long as the client's etcd lease).
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[async_trait]
impl LockBackend for EtcdBackend {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    /// Fencing, FIFO, waiting by watch, liveness by the client's etcd lease
    /// (not by ttl expiry), lease handoff, batched extension; readers,
    /// semaphore permits and atomic upgrade, all in the one queue.
    fn claims(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(true)
            .wait_notification(true)
            .session_liveness(true)
            .ttl_expiry(false)
            .lease_handoff(true)
            .cross_process(true)
            .batch_extend(true)
            .shared(true)
            .semaphore(true)
            .upgrade(true)
            .min_ttl(MIN_TTL)
            .max_ttl(MAX_TTL)
            .build()
    }

    /// Queues an entry key of `request.mode` under the name and waits until
    /// it fits beside every entry before it, watching the one key (or, for
    /// the first permit waiting, the permits' range) that decides its turn
    /// (see the `acquire` module).
    ///
    /// Round trips: without waiting, one (a Txn that puts our key only if
    /// nothing that would block it exists; a permit that does not fit
    /// beside the permits before it, and one DeleteRange). Otherwise one Txn
    /// to queue our key and read the entries that decide its turn (it is
    /// ours if they let it in), then per wait: one to open a watch (plus one
    /// local Range when others wrote meanwhile), and one local read when it
    /// fires. A permit granted after waiting rewrites its key in the
    /// background when a later permit waits. Giving up at the deadline costs
    /// one DeleteRange. A LeaseGrant when the client's etcd lease must be
    /// replaced.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deletes our queue key in the background (also a
    /// key whose creating transaction was still in flight, once it lands).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        acquire::grant(self, request).await
    }

    /// Queues a writer entry behind the reader's own entry (checking in the
    /// same transaction that the reader still holds) and waits until
    /// nothing but that reader entry is ahead of it; the pair then holds the
    /// name exclusively, with the writer entry's create revision as fencing
    /// token (see `acquire::upgrade`).
    ///
    /// Round trips: one Txn (compare the reader's entry, put the writer
    /// entry, read the newest three entries), then per wait one Watch (plus
    /// one local Range when others wrote meanwhile) and one local read when
    /// it fires; giving up costs one DeleteRange.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deletes the writer entry in the background; the
    /// reader's entry is never touched, so the read lock stays held.
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        acquire::upgrade(self, lease, request).await
    }

    /// Confirms the lock's key is still ours. The ttl is only the validity
    /// the core computes from the request's send time: the key lives as
    /// long as the client's etcd lease. A key that is gone (released, or its
    /// etcd lease ended) is `NotHeld`, as is a key on an etcd lease this
    /// client already knows is lost.
    ///
    /// Round trips: one (Txn: compare create revision and owner token; the
    /// key existing proves its etcd lease alive on the server).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the transaction only reads.
    async fn renew(&self, lease: &Lease, _ttl: Duration) -> Result<Renewal> {
        renew::renew(self, lease).await
    }

    /// Round trips: one per batch (a Txn of sub-transactions, each comparing
    /// one key).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the transaction only reads.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        renew::renew_batch(self, batch).await
    }

    /// The sub-transactions one etcd Txn carries, under the server's
    /// `--max-txn-ops` limit.
    fn max_batch(&self) -> usize {
        renew::MAX_BATCH
    }

    /// Round trips: one (Txn: compare create revision and owner token, then
    /// delete — an upgraded lease's reader entry too), up to three on
    /// transient failures. The deletion wakes the next waiters' watches.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have deleted the key; if not, the
    /// lock stays held until released again or the client's etcd lease
    /// ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        release::revoke(self, lease).await
    }

    /// The liveness of the client's etcd lease the lock's key is attached
    /// to; `None` for a lease of another client (an exported lease).
    ///
    /// Round trips: none.
    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.etcd_session().liveness_of(lease.data())
    }

    /// Holders are the oldest entries that fit together by the core's rule;
    /// the rest wait.
    ///
    /// Round trips: one (Range over the name, oldest first, keys only).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        status::inspect(self, name).await
    }
}
