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
    /// (not by ttl expiry), lease handoff, batched extension.
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
            .shared(false)
            .semaphore(false)
            .min_ttl(MIN_TTL)
            .max_ttl(MAX_TTL)
            .build()
    }

    /// Queues a key under the name and waits for the key just before it to
    /// go (see the `acquire` module).
    ///
    /// Round trips: without waiting, one (a Txn that puts our key only if no
    /// key exists under the name). Otherwise one Txn to queue our key and
    /// read our predecessor (the lock is ours if there is none), then per
    /// predecessor: one to open a watch on it (plus one local Range when
    /// others wrote meanwhile), and one Range when it goes. Giving up at the
    /// deadline costs one DeleteRange. A LeaseGrant when the client's etcd
    /// lease must be replaced.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deletes our queue key in the background (also a
    /// key whose creating transaction was still in flight, once it lands).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        acquire::grant(self, request).await
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
    /// delete), up to three on transient failures. The deletion wakes the
    /// next waiter's watch.
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

    /// Round trips: one (Range over the name, oldest first, limit 1, with
    /// the total count).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        status::inspect(self, name).await
    }
}
