//! The algorithm's entry points: [`LockBackend`] for the SQL backend, each
//! operation dispatched by strategy, then by the lease's or the request's
//! mode. Under the table strategy: the exclusive hold (mutex, writer) in
//! the name's row of the locks table, readers and permits in rows of the
//! holders table. Under the session strategy: the session engine
//! ([`crate::session`]), which keeps the holders rows for readers and
//! permits behind a gate on the name's session lock.
//!
//! The core's checked layer around it has already validated the options,
//! the ttl, the mode and the lease's backend, drawn the owner token, and
//! turns each [`Grant`] and [`Renewal`] into a lease with the one validity
//! rule.

use std::time::Duration;

use distlock_core::{
    async_trait, AcquireRequest, Capabilities, ChangeNotices, FencingToken, Grant, Lease, Liveness,
    LockBackend, LockError, LockName, LockStatus, Mode, Renewal, Result, Wait,
};
use tokio::sync::watch;

use crate::acquire::acquire;
use crate::backend::{BrokenOnPurpose, SqlBackend};
use crate::config::Database;
use crate::key::key;
use crate::notify::Subscription;
use crate::renew::{renew, renew_batch};
use crate::upgrade::upgrade;

pub use crate::renew::MAX_BATCH;

#[async_trait]
impl LockBackend for SqlBackend {
    fn kind(&self) -> &'static str {
        self.database().backend_name()
    }

    /// The table strategy's claims, or the session strategy's (session
    /// liveness instead of a ttl, waiting in the server's queue, no upgrade,
    /// no hand-off of a lease to another process). Labels and
    /// lock-at-least-for under both; change notices on PostgreSQL.
    fn claims(&self) -> Capabilities {
        if let Some(sessions) = self.sessions() {
            return sessions.claims();
        }
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
            .labels(true)
            .watch(self.database() == Database::Postgres)
            .at_least(true)
            .min_ttl(Duration::from_millis(1))
            .max_ttl(Duration::from_secs(7 * 24 * 3600))
            .build()
    }

    /// Tries once, then waits: woken by `NOTIFY` on PostgreSQL, polling with
    /// the options' backoff elsewhere, never sleeping past the remaining
    /// time of the holders in the way.
    ///
    /// Under the session strategy, exclusive: one statement, which waits
    /// in the server's queue when a session connection may be occupied by
    /// the wait (else tries, polling with the options' backoff); the fencing
    /// token comes in the same statement. MySQL's writer asks again, one
    /// statement each time, while readers or permit holders are still in.
    /// Readers and permits: the gate (one statement) then the grant
    /// transaction below. Opening a session connection costs its
    /// connection and setup (once).
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
    /// the background too. Under the session strategy a dropped wait in
    /// the server closes its session connection (which holds nothing
    /// else), and a dropped try is followed by a give-back on the same
    /// session.
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        if let Some(sessions) = self.sessions() {
            return sessions.grant(self.store(), request).await;
        }
        // Boxed, so that the session strategy's takes do not set up (and
        // move) a future the size of this one at every take.
        Box::pin(async {
            let subscription = self.subscription(request.options.wait).await?;
            acquire(self.store(), request, subscription).await
        })
        .await
    }

    /// Extends the lease to `ttl` from the database's now, if its owner
    /// still holds it unexpired; `NotHeld` otherwise.
    ///
    /// Round trips: one statement, in every mode. Under the session
    /// strategy, a mutex's or writer's lease costs none while its session
    /// is known alive (the renewal reports when the server last heard from
    /// it), one ping otherwise; a reader's or permit's renews its row (one
    /// statement).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        if let Some(sessions) = self.sessions() {
            return sessions.renew(self.store(), lease, ttl).await;
        }
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
    /// Under the session strategy: one statement for the batch's readers
    /// and permits, and none for its session locks but one ping per
    /// session not known alive.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the leases.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        if let Some(sessions) = self.sessions() {
            return sessions.renew_batch(self.store(), batch).await;
        }
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
    /// waiters' notification rides on its commit). Under the session
    /// strategy: one to give the session lock back (none when other local
    /// readers still share it), and one for a reader's or permit's row, at
    /// once.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl ends. Under the session strategy a give-back
    /// dropped half-way is finished in the background.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        if let Some(sessions) = self.sessions() {
            return sessions.revoke(self.store(), lease).await;
        }
        let (store, name) = (self.store(), lease.name());
        let owner = lease.owner().to_hex();
        // Boxed, as in `grant`.
        let released = Box::pin(async {
            if lease.mode() == Mode::Exclusive {
                store.release(name, &key(name), &owner).await
            } else {
                store.release_holder(name, &key(name), &owner).await
            }
        })
        .await?;
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
    /// Not served under the session strategy (its claims say so, and the
    /// core refuses before calling).
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
        if self.sessions().is_some() {
            return Err(LockError::Unsupported {
                backend: self.kind(),
                operation: "upgrading a shared hold (it needs strategy=table)",
            });
        }
        let subscription = self.subscription(request.options.wait).await?;
        upgrade(self.store(), lease, request, subscription).await
    }

    /// Under the session strategy: the liveness of the database session
    /// that holds `lease`'s session lock (`Lost` at once when it is found
    /// dead: killed, its server restarted, or silent for the session
    /// timeout); `None` for a lease without one (the table strategy's, a
    /// MySQL reader's or permit's, another client's).
    ///
    /// Round trips: none (the sessions' keepers do the checking).
    ///
    /// # Cancel safety
    ///
    /// Not async: nothing to cancel.
    fn session(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.sessions()?.liveness(lease)
    }

    /// Whether the name is held (exclusively, or by readers or permit
    /// holders), its last fencing token (while an exclusive holder holds
    /// it: that holder's), the exclusive holder's label and the holders'
    /// remaining time on the database clock. Under the session strategy:
    /// whether a session holds it (or a reader's, permit's or kept hold's
    /// row lives), on PostgreSQL how many sessions wait for it in the
    /// server, and for a labelled holder or a kept hold its label, token
    /// and row's remaining time.
    ///
    /// Round trips: one statement.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        if let Some(sessions) = self.sessions() {
            return sessions.inspect(name).await;
        }
        let store = self.store();
        let holder = store.holder(name, &key(name), store.timeout()).await?;
        Ok(match holder {
            None => LockStatus::new(false, None, None, None),
            Some(h) => {
                let held = h.is_held() || h.is_shared();
                // The exclusive holder's label while it holds; its token is
                // the last one issued (no grant comes while it holds).
                let label = h.is_held().then(|| h.label.clone()).flatten();
                LockStatus::new(
                    held,
                    (h.fence > 0).then_some(FencingToken(h.fence)),
                    held.then(|| h.until_free()),
                    None,
                )
                .with_holder(label)
            }
        })
    }

    /// On PostgreSQL: a notice for each notification about the name — a
    /// labelled grant (channel `<table>_granted`), a release of any hold
    /// (the waiters' channel, `<table>`), under either strategy — from the
    /// backend's one listening connection (opened by the first wait or
    /// watch). `None` on MySQL/MariaDB and SQLite, which cannot notify.
    ///
    /// Round trips: none once the listening connection runs; opening it
    /// costs a connection and `LISTEN`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future or the stream stops watching.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        self.store().watch(name, &key(name)).await
    }

    /// Keeps the lease held for `hold` (what is left of its
    /// lock-at-least-for minimum) with no client, then frees it.
    ///
    /// Table strategy: the hold's expiry becomes `hold` from now on the
    /// database clock (one statement, as a renewal); on PostgreSQL the
    /// exclusive one's statement also wakes the waiters, which would sleep
    /// until the old expiry. A reader's or permit's row is renewed to
    /// `hold`; on PostgreSQL and MySQL writers wait for the readers'
    /// `shared_until`, which a renewal never lowers, so a writer may wait
    /// until the reader's last renewal plus its ttl.
    ///
    /// Session strategy: on PostgreSQL the hold (taken on a session of its
    /// own) is kept by that session's last statement, which sleeps on the
    /// server until `hold` has passed and then gives the lock back (a few
    /// round trips to start it and see it running); on MySQL/MariaDB by a
    /// row of the holders table that the grants respect (one statement),
    /// then the session lock is given back (one); see `session::rows`.
    ///
    /// # Cancel safety
    ///
    /// Table strategy: a dropped future may or may not have shortened the
    /// hold; if not, it frees when its ttl ends. Session strategy: a
    /// dropped future finishes in the background.
    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        if let Some(sessions) = self.sessions() {
            let by_server = self.broken() != Some(BrokenOnPurpose::MinimumKeptInProcess);
            return sessions
                .release_after(self.store(), lease, hold, by_server)
                .await;
        }
        if lease.mode() != Mode::Exclusive {
            return renew(self.store(), lease, hold).await.map(|_| ());
        }
        let (store, name) = (self.store(), lease.name());
        let owner = lease.owner().to_hex();
        if store.keep(name, &key(name), &owner, hold).await? {
            Ok(())
        } else {
            Err(LockError::not_held(name.as_str()))
        }
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
