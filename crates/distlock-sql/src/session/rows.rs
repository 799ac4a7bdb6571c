//! What stands beside the session locks: a leader's label, and a hold
//! kept after its release until its lock-at-least-for time.
//!
//! - **Labels** (kind `l`). A session lock has no row to carry a label, so
//!   a labelled grant (an elected leader's) stores one once it holds the
//!   lock: the label, the hold's fencing token (the leader's term), living
//!   the hold's ttl on the database clock and renewed with the hold. It is
//!   deleted after the release, and a holder that vanished leaves it to
//!   expire; `status` reports it only while the session lock is held (on
//!   PostgreSQL, exclusively), so a row left behind never names a holder
//!   that is gone, and of two the higher term wins. On PostgreSQL storing
//!   it notifies observers (labelled grants' channel), deleting it too
//!   (releases' channel).
//! - **Kept holds** (lock-at-least-for). A session lock dies with its
//!   connection, so a hold released before its minimum must be kept by the
//!   database alone. Such a hold is taken on a session of its own;
//!   released early, that session's connection is handed one statement
//!   that sleeps on the server for what is left of the minimum and then
//!   gives the lock back, and the release returns once the server shows it
//!   running. The server runs it to its end whether or not the client is
//!   still there, so the lock is kept through the holder's exit, and no
//!   grant reads anything for it: waiters wait in the server's queue. The
//!   label row is kept as long (PostgreSQL's statement deletes it at the
//!   end; on MySQL it is made to end with the minimum).
//!   - A reader's or permit's row is kept as long too. On PostgreSQL its
//!     shared lock is kept by the same statement.
//!   - On MySQL a reader's or permit's presence slot, shared by the local
//!     holders of its session, is kept by this process: the minimum of a
//!     MySQL read lock or permit ends early if the process exits.

use std::sync::Arc;
use std::time::Duration;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{AcquireRequest, Lease, LockError, Mode, Result};
use tokio::sync::oneshot;

use super::connection::{Failure, Session};
use super::db::{Gate, Label, SessionDb};
use super::keys::Key;
use super::release::{parts, Parts};
use super::take::leave;
use super::{failure_error, is_labelled, SessionEngine};
use crate::store::Store;

/// Stores the label row of `request`'s exclusive hold of `key`, taken with
/// fencing token `term`. One statement, on the table's pool.
///
/// # Cancel safety
///
/// A dropped future deletes the row in the background.
pub(crate) async fn store_label(
    engine: &SessionEngine,
    key: &Key,
    request: &AcquireRequest,
    label: &str,
    term: u64,
) -> Result<()> {
    let db = Arc::clone(engine.sessions.db());
    let owner = request.owner.to_hex();
    let mut undo = CleanupOnDrop::armed(
        engine.backend,
        "label row of a dropped acquire",
        unlabel_quietly(Arc::clone(&db), key.clone(), owner.clone()),
    );
    let row = Label {
        label,
        term,
        ttl: request.options.ttl,
    };
    let stored = engine
        .on_pool("acquiring", key, db.label(key, &owner, row))
        .await;
    if stored.is_ok() {
        undo.disarm();
    }
    stored
}

/// Renews the label row of `lease` to `ttl` from now; `NotHeld` when it
/// no longer lives. One statement, on the table's pool.
pub(crate) async fn relabel(engine: &SessionEngine, lease: &Lease, ttl: Duration) -> Result<()> {
    let key = engine.key(lease.name());
    let owner = lease.owner().to_hex();
    let renewed = engine.sessions.db().relabel(&key, &owner, ttl);
    if engine.on_pool("extending", &key, renewed).await? {
        Ok(())
    } else {
        Err(LockError::not_held(lease.name().as_str()))
    }
}

/// Deletes the label row of `lease`, released: one statement, on the
/// table's pool. A failure only leaves the row to expire with its ttl
/// (`status` no longer reports it once the lock is free), so it is
/// logged, not returned.
pub(crate) async fn unlabel(engine: &SessionEngine, lease: &Lease) {
    let key = engine.key(lease.name());
    let owner = lease.owner().to_hex();
    let deleted = engine
        .on_pool(
            "releasing",
            &key,
            engine.sessions.db().unlabel(&key, &owner),
        )
        .await;
    if let Err(e) = deleted {
        tracing::debug!(error = %e, "distlock.sql.label_row_left");
    }
}

/// Deletes `owner`'s label row of `key`, for a dropped acquire.
async fn unlabel_quietly(db: Arc<dyn SessionDb>, key: Key, owner: String) {
    if let Err(e) = db.unlabel(&key, &owner).await {
        tracing::debug!(error = %e, "distlock.sql.cleanup_failed");
    }
}

/// Releases `lease` but keeps it held for `hold` from now (see the module
/// docs): by a statement on its own session that sleeps on the server and
/// then gives it back; a MySQL reader's or permit's presence slot by this
/// process. A lease that is a row only is renewed to `hold`.
///
/// Round trips: the label row's or the reader's row's renewal (one, for
/// those), the session readied (one; two on MySQL), the statement sent and
/// seen running (one or a few looks at the server's sessions).
///
/// Broken on purpose when not `by_server` (tests only): this process keeps
/// the hold, giving the session lock back once `hold` has passed.
///
/// # Cancel safety
///
/// A dropped future finishes in the background: the hold is kept, then
/// given back.
pub(crate) async fn release_after(
    engine: &SessionEngine,
    store: &Store,
    lease: &Lease,
    hold: Duration,
    by_server: bool,
) -> Result<()> {
    if parts(lease) == Parts::Row {
        return crate::renew::renew(store, lease, hold).await.map(|_| ());
    }
    let (key, gate) = engine.held(lease);
    let session = engine
        .session_of(lease)
        .filter(|s| s.holds(key.id, gate, lease.owner()))
        .ok_or_else(|| LockError::not_held(lease.name().as_str()))?;
    let (done, answer) = oneshot::channel();
    let keeping = Keeping {
        backend: engine.backend,
        timeout: engine.timeout,
        db: Arc::clone(engine.sessions.db()),
        store: store.clone(),
        lease: lease.clone(),
        labelled: is_labelled(lease),
        session,
        key,
        gate,
        hold,
    };
    if !by_server {
        keeping.give_back_later();
        return Ok(());
    }
    let work = async move {
        let _ = done.send(keeping.run().await);
    };
    CleanupOnDrop::armed(engine.backend, "hold kept by a dropped release", work)
        .run_now()
        .await;
    answer
        .await
        .unwrap_or_else(|_| Err(LockError::not_held(lease.name().as_str())))
}

/// One hold to keep after its release, with what it takes to do it away
/// from the caller's future.
struct Keeping {
    backend: &'static str,
    timeout: Duration,
    db: Arc<dyn SessionDb>,
    store: Store,
    lease: Lease,
    labelled: bool,
    session: Arc<Session>,
    /// The session lock the lease holds, and its gate.
    key: Key,
    gate: Gate,
    hold: Duration,
}

impl Keeping {
    /// Keeps the hold on the server: the rows beside the session lock kept
    /// as long, then the session's connection detached, readied, and given
    /// the statement that sleeps on the server and then gives the lock
    /// back — seen running before this returns, so the server has it
    /// whatever this process does next. A hold not taken on a session of
    /// its own (a MySQL reader's or permit's presence slot, or a hold taken
    /// without a minimum) is kept by this process instead, its rows kept as
    /// long.
    async fn run(self) -> Result<()> {
        self.keep_rows_beside().await?;
        if !self.session.is_dedicated() {
            self.give_back_later();
            return Ok(());
        }
        let why = "its lock was released before its minimum and is kept on the server until then";
        let Some(mut conn) = self.session.detach(why).await else {
            return Err(LockError::not_held(self.lease.name().as_str()));
        };
        if let Err(e) = self.bounded(conn.ready_to_hold()).await {
            let (key, gate, hold) = (self.key.clone(), self.gate, self.hold);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let _ = conn.give_back(&key, gate).await;
            });
            return Err(e);
        }
        let server_id = self.session.server_id();
        let (key, gate, hold) = (self.key.clone(), self.gate, self.hold);
        let owner = self.lease.owner().to_hex();
        // The session holds the lock until now: the hold is owed from here.
        let owed_until = tokio::time::Instant::now() + hold;
        tokio::spawn(async move {
            let held = conn.hold_then_give_back(&key, gate, hold, &owner).await;
            if let Err(e) = held {
                tracing::debug!(error = %e, "distlock.sql.kept_hold_failed");
            }
        });
        self.seen_running(server_id, owed_until).await
    }

    /// The rows beside a session lock kept after its release: a leader's
    /// label row, so observers still see it (until the statement deletes
    /// it, or a little after); a reader's or permit's own row, which the
    /// others count.
    async fn keep_rows_beside(&self) -> Result<()> {
        let lease = &self.lease;
        if lease.mode() != Mode::Exclusive {
            crate::renew::renew(&self.store, lease, self.hold).await?;
        }
        if self.labelled {
            let owner = lease.owner().to_hex();
            let until = match self.db.deletes_kept_label() {
                true => self.hold + self.timeout,
                false => self.hold,
            };
            let renewed = self
                .bounded(self.db.relabel(&self.key, &owner, until))
                .await?;
            if !renewed {
                return Err(LockError::not_held(lease.name().as_str()));
            }
        }
        Ok(())
    }

    /// Waits until the server shows the session asleep in its kept hold's
    /// statement (one look, then more at growing intervals), within the
    /// statement timeout — or until `owed_until`, when the hold is no
    /// longer owed: a short hold's statement may have slept and ended
    /// between two looks, and the session, whose connection this process
    /// kept open meanwhile, held the lock until then either way.
    async fn seen_running(&self, server_id: i64, owed_until: tokio::time::Instant) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(1);
        loop {
            if self.bounded(self.db.holding(server_id)).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= owed_until {
                return Ok(());
            }
            if tokio::time::Instant::now() + nap > deadline {
                return Err(LockError::unavailable(
                    self.backend,
                    format!(
                        "{}: the server did not show it within {:?}",
                        self.about(),
                        self.timeout
                    ),
                ));
            }
            tokio::time::sleep(nap).await;
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    /// Gives the session lock back (or leaves the presence slot others
    /// still share). A session found gone has given it back already.
    async fn give_back(&self) -> Result<()> {
        let owner = self.lease.owner();
        // Bounded by the statement timeout once sent.
        match leave(self.backend, &self.session, &self.key, self.gate, owner).await {
            Ok(_) | Err(Failure::Gone(_)) => Ok(()),
            Err(failure) => Err(failure_error(
                self.backend,
                self.timeout,
                self.about(),
                failure,
            )),
        }
    }

    /// Gives the session lock back once `hold` has passed, from this
    /// process (the database could not be made to keep it).
    fn give_back_later(self) {
        tokio::spawn(async move {
            tokio::time::sleep(self.hold).await;
            if let Err(e) = self.give_back().await {
                tracing::debug!(error = %e, "distlock.sql.cleanup_failed");
            }
        });
    }

    /// `op` on the table's pool, within the statement timeout.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(crate::store::driver_error(
                self.backend,
                self.about(),
                self.timeout,
                e,
            )),
            Err(_) => Err(self.no_answer()),
        }
    }

    fn no_answer(&self) -> LockError {
        LockError::unavailable(
            self.backend,
            format!("{}: no answer within {:?}", self.about(), self.timeout),
        )
    }

    fn about(&self) -> String {
        format!(
            "keeping `{}` held until its minimum time (lock-at-least-for)",
            self.lease.name()
        )
    }
}
