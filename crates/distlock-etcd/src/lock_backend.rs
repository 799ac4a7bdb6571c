//! The contract: [`LockBackend`] for [`EtcdBackend`], each operation in its
//! own module (`acquire`, `renew`, `release`, `status`).

use std::time::Duration;

use async_trait::async_trait;
use distlock_core::{
    AcquireRequest, Capabilities, ChangeNotices, Grant, Lease, Liveness, LockBackend, LockName,
    LockStatus, Renewal, Result,
};
use tokio::sync::watch;

use crate::backend::EtcdBackend;
use crate::errors::BACKEND;
use crate::{acquire, changes, hold, release, renew, status};

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
    /// semaphore permits and atomic upgrade, all in the one queue; holder
    /// labels (in the key's value), change notices (an etcd watch) and
    /// lock-at-least-for (the keys move to an etcd lease of their own).
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
            .labels(true)
            .watch(true)
            .at_least(true)
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
    /// transient failures. The deletion wakes the next waiters' watches;
    /// in the background, one member-local Range checks that the waiters it
    /// let in claim their turn within their waiter-liveness window (and
    /// passes over a silent one: one Txn).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have deleted the key; if not, the
    /// lock stays held until released again or the client's etcd lease
    /// ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        release::revoke(self, lease).await?;
        acquire::hand_on_turns(self, lease.name());
        Ok(())
    }

    /// The liveness of the client's etcd lease the lock's key is attached
    /// to; `None` for a lease of another client (an exported lease).
    ///
    /// Round trips: none.
    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.etcd_session().liveness_of(lease.data())
    }

    /// Holders are the oldest entries that fit together by the core's rule;
    /// the rest wait. An exclusive holder's label (a leader's identity) is
    /// read from its key's value, its token is its own create revision.
    ///
    /// Round trips: one (Range over the name, oldest first, with values).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        status::inspect(self, name).await
    }

    /// An etcd watch on the name's key range, from the member's current
    /// revision: a notice per change of its entries (a grant, a release, a
    /// hold kept or ended, an etcd lease's expiry). The stream ends with the
    /// watch (a failed member).
    ///
    /// Round trips: one to open the watch; none per notice.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream closes the watch.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        changes::notices(self, name).await.map(Some)
    }

    /// Moves the lease's keys to a fresh etcd lease of `hold` (whole
    /// seconds, rounded up), in one transaction guarded by the create
    /// revision and owner token: from then on they no longer end with this
    /// client, and etcd deletes them (waking the waiters) when that lease
    /// expires. The keys keep their place and fencing token.
    ///
    /// Round trips: two (LeaseGrant, Txn); a LeaseRevoke more when the
    /// lease no longer held its key (`NotHeld`).
    ///
    /// # Cancel safety
    ///
    /// The work runs as its own task: once called, it completes even if the
    /// future is dropped.
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        hold::release_after(self, lease, hold).await
    }
}
