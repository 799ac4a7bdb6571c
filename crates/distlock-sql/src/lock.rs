//! The algorithm's entry points: [`LockBackend`] for the SQL backend, each
//! operation dispatched by the lease's or the request's mode — the
//! exclusive hold (mutex, writer) in the name's row of the locks table,
//! readers and permits in rows of the holders table.
//!
//! The core's checked layer around it has already validated the options,
//! the ttl, the mode and the lease's backend, drawn the owner token, and
//! turns each [`Grant`] and [`Renewal`] into a lease with the one validity
//! rule.

use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, FencingToken, Grant, Lease, LockBackend, LockError,
    LockName, LockStatus, Mode, Renewal, Result, Wait,
};

use crate::acquire::acquire;
use crate::backend::SqlBackend;
use crate::config::Database;
use crate::key::key;
use crate::notify::Subscription;
use crate::renew::{renew, renew_batch};
use crate::upgrade::upgrade;

/// The most leases one batched extension statement carries: four bound
/// parameters each at most, far below SQLite's 32 766 and MySQL's 65 535.
pub const MAX_BATCH: usize = 128;

#[async_trait]
impl LockBackend for SqlBackend {
    fn kind(&self) -> &'static str {
        self.database().backend_name()
    }

    fn claims(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(false)
            .wait_notification(self.database() == Database::Postgres)
            .session_liveness(false)
            .ttl_expiry(true)
            .lease_handoff(true)
            .cross_process(self.store().dialect().cross_process())
            .batch_extend(true)
            .shared(true)
            .semaphore(true)
            .upgrade(true)
            .min_ttl(Duration::from_millis(1))
            .max_ttl(Duration::from_secs(7 * 24 * 3600))
            .build()
    }

    /// Tries once, then waits: woken by `NOTIFY` on PostgreSQL, polling with
    /// the options' backoff elsewhere, never sleeping past the remaining
    /// time of the holders in the way.
    ///
    /// Round trips per attempt, exclusive: one statement when the lock is
    /// taken (every database) or held on PostgreSQL; two when held on MySQL
    /// and SQLite (the second reads the holders' remaining time); one more
    /// to record the writer's intent when readers or permit holders are in
    /// the way, and one after the wait to remove it. Readers and permits:
    /// one transaction — PostgreSQL `BEGIN`, lock, read, grant, `COMMIT`
    /// (4 when it waits); MySQL `BEGIN`, lock, expire, read, insert, count,
    /// `COMMIT` (5 when it waits); SQLite the same statements. Waiting on
    /// PostgreSQL costs none.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an attempt dropped while its statement or transaction
    /// is in flight is followed, in the background, by a release
    /// conditioned on this acquire's owner token (a no-op unless it took
    /// the lock), on the same connection; a writer's intent is removed in
    /// the background too.
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        let subscription = self.subscription(request.options.wait).await?;
        acquire(self.store(), request, subscription).await
    }

    /// Extends the lease to `ttl` from the database's now, if its owner
    /// still holds it unexpired; `NotHeld` otherwise.
    ///
    /// Round trips: one statement, in every mode.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        renew(self.store(), lease, ttl).await
    }

    /// Extends every lease of the batch, each to its own ttl; each lease
    /// whose owner no longer holds it unexpired answers `NotHeld`.
    ///
    /// Round trips: one statement for the batch's exclusive leases and one
    /// for its readers and permits, run at the same time (one statement
    /// when the batch holds one kind). On MySQL/MariaDB, which cannot
    /// return rows from an `UPDATE`, a second statement reads which leases
    /// are still held when the first one's count says some were not
    /// extended.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the leases.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        renew_batch(self.store(), batch).await
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Releases the hold if the lease's owner still holds it unexpired;
    /// `NotHeld` otherwise. The name's row stays, so fencing tokens keep
    /// rising.
    ///
    /// Round trips: one statement, in every mode (on PostgreSQL the
    /// waiters' notification rides on its commit).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        let (store, name) = (self.store(), lease.name());
        let owner = lease.owner().to_hex();
        let released = if lease.mode() == Mode::Exclusive {
            store.release(name, &key(name), &owner).await?
        } else {
            store.release_holder(name, &key(name), &owner).await?
        };
        if released {
            Ok(())
        } else {
            Err(LockError::not_held(name.as_str()))
        }
    }

    /// Turns the reader `lease` into the writer in one transaction, once it
    /// is the only holder, waiting for the other holders to leave (its
    /// intent keeps new readers out meanwhile); the fencing token is the
    /// name's next one.
    ///
    /// Round trips per attempt: one transaction — PostgreSQL `BEGIN`, lock,
    /// read, upgrade or intent, `COMMIT`; MySQL `BEGIN`, lock, expire, read,
    /// two statements to upgrade or one for the intent, `COMMIT`; SQLite
    /// the same statements. One more after a wait that ran out, to remove
    /// the intent.
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the reader held: an attempt dropped before
    /// its outcome is known is undone in the background on its connection
    /// (an upgrade that committed becomes the reader again, with the same
    /// expiry), and the intent is removed in the background.
    async fn upgrade(&self, lease: &Lease, request: &AcquireRequest) -> Result<Option<Grant>> {
        let subscription = self.subscription(request.options.wait).await?;
        upgrade(self.store(), lease, request, subscription).await
    }

    /// Whether the name is held (exclusively, or by readers or permit
    /// holders), its last fencing token and the holders' remaining time on
    /// the database clock.
    ///
    /// Round trips: one statement.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let store = self.store();
        let holder = store.holder(name, &key(name), store.timeout()).await?;
        Ok(match holder {
            None => LockStatus::new(false, None, None, None),
            Some(h) => {
                let held = h.is_held() || h.is_shared();
                LockStatus::new(
                    held,
                    (h.fence > 0).then_some(FencingToken(h.fence)),
                    held.then(|| h.until_free()),
                    None,
                )
            }
        })
    }
}

impl SqlBackend {
    /// A subscription to release notifications for a request that may
    /// wait, where the database has them.
    async fn subscription(&self, wait: Wait) -> Result<Option<Subscription>> {
        if wait == Wait::NoWait {
            return Ok(None);
        }
        self.store().subscribe().await
    }
}
