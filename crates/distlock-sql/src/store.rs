//! The locks table as the backend uses it: one [`Dialect`] behind the
//! trait, every call bounded by a timeout and its failure turned into a
//! [`LockError`] that names the operation, the lock and the table.
//!
//! Waiting for a connection of the pool is not waiting for the database:
//! each call first takes one of the pool's *slots* (a semaphore with one
//! permit per call that may use the pool at once, served in order: one per
//! connection, one in all on SQLite), and only then does the statement
//! timeout start. An acquire attempt waits for its
//! slot as long as the caller's wait allows (never less than the statement
//! timeout), so a busy pool makes it wait, not fail with `Unavailable`;
//! every other call waits at most the statement timeout for its slot.
//!
//! This module knows no database; the dialects know nothing of it.

use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::waiting::request_bound;
use distlock_core::{BoxError, ChangeNotices, LockError, LockName, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::dialect::{AttemptConnection, Dialect, Extension, Group, Holder, Take, Waiting};
use crate::holds::Decide;
use crate::notify::Subscription;

/// A cheaply cloned handle on the locks table.
#[derive(Clone)]
pub(crate) struct Store {
    dialect: Arc<dyn Dialect>,
    backend: &'static str,
    table: Arc<str>,
    timeout: Duration,
    /// How long a waiter's queue place lives unless its waiter keeps it.
    waiter_timeout: Duration,
    /// One permit per call that may use the pool at once
    /// ([`Dialect::slots`]).
    slots: Arc<Semaphore>,
}

impl Store {
    /// Wraps `dialect`; `backend` and `table` go into error messages,
    /// `timeout` bounds each call that is given no other bound.
    pub fn new(
        dialect: Arc<dyn Dialect>,
        backend: &'static str,
        table: &str,
        timeout: Duration,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(dialect.slots().max(1)));
        Store {
            dialect,
            backend,
            table: Arc::from(table),
            timeout,
            waiter_timeout: distlock_core::line::DEFAULT_WAITER_TIMEOUT,
            slots,
        }
    }

    /// Sets the waiter-liveness window: how long a polling waiter's queue
    /// place lives unless its waiter keeps it.
    pub fn with_waiter_timeout(mut self, window: Duration) -> Self {
        self.waiter_timeout = window;
        self
    }

    /// The waiter-liveness window.
    pub fn waiter_timeout(&self) -> Duration {
        self.waiter_timeout
    }

    /// The dialect, for what needs no timeout (capabilities, pools).
    pub fn dialect(&self) -> &dyn Dialect {
        &*self.dialect
    }

    /// The backend name errors carry (`sqlite`, `postgres`, `mysql`).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The statement timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Creates the table unless it exists.
    pub async fn create_table(&self) -> Result<()> {
        let op = self.dialect.create_table();
        self.within(self.timeout, op, || {
            format!("creating table {}", self.table)
        })
        .await
    }

    /// A connection of the pool for one acquire attempt on `name` of a
    /// caller whose wait ends at `deadline` (`None`: never): waiting for a
    /// slot counts against that wait, but is never cut shorter than the
    /// statement timeout; taking the connection (opening it, if the pool
    /// has no idle one) is then bounded by the statement timeout cut to the
    /// deadline ([`request_bound`]).
    pub async fn connection(
        &self,
        name: &LockName,
        deadline: Option<Instant>,
    ) -> Result<StoreConnection> {
        let patience = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(self.timeout)
        });
        let slot = self.slot("acquiring", name, patience).await?;
        let limit = request_bound(self.timeout, deadline);
        let conn = self
            .within(limit, self.dialect.connection(), || {
                self.about(
                    "getting a connection (opened if none is idle) for acquiring",
                    name,
                )
            })
            .await?;
        Ok(StoreConnection {
            conn,
            store: self.clone(),
            _slot: slot,
        })
    }

    /// Reads the row of `name`, bounded by `limit`.
    pub async fn holder(
        &self,
        name: &LockName,
        key: &str,
        limit: Duration,
    ) -> Result<Option<Holder>> {
        let op = self.dialect.holder(key);
        self.on("reading", name, limit, op).await
    }

    /// Extends `name` when `owner` holds it.
    pub async fn extend(
        &self,
        name: &LockName,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let op = self.dialect.extend(key, owner, ttl);
        self.on("extending", name, self.timeout, op).await
    }

    /// Extends a batch of `group` in one statement; on failure, the error
    /// is shared by every lease of the batch (see
    /// [`batch_error`](Store::batch_error)).
    pub async fn extend_batch(
        &self,
        group: Group,
        batch: &[Extension],
    ) -> std::result::Result<Vec<bool>, BatchFailure> {
        let waiting = Arc::clone(&self.slots).acquire_owned();
        let Ok(Ok(_slot)) = tokio::time::timeout(self.timeout, waiting).await else {
            return Err(BatchFailure::Busy);
        };
        let op = self.dialect.extend_batch(group, batch);
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(extended)) => Ok(extended),
            Ok(Err(e)) => Err(BatchFailure::Db(Arc::new(e))),
            Err(_) => Err(BatchFailure::NoAnswer),
        }
    }

    /// Releases `name` when `owner` holds it.
    pub async fn release(&self, name: &LockName, key: &str, owner: &str) -> Result<bool> {
        let op = self.dialect.release(key, owner);
        self.on("releasing", name, self.timeout, op).await
    }

    /// Releases the reader or permit holder `owner` of `name`.
    pub async fn release_holder(&self, name: &LockName, key: &str, owner: &str) -> Result<bool> {
        let op = self.dialect.release_holder(key, owner);
        self.on("releasing", name, self.timeout, op).await
    }

    /// Removes `owner`'s waiting-writer intent on `name`.
    pub async fn forget_intent(&self, name: &LockName, key: &str, owner: &str) -> Result<()> {
        let op = self.dialect.forget_intent(key, owner);
        let doing = "removing the waiting writer's intent on";
        self.on(doing, name, self.timeout, op).await
    }

    /// Change notices of `name`, `None` where there are none.
    pub async fn watch(&self, name: &LockName, key: &str) -> Result<Option<ChangeNotices>> {
        let op = self.dialect.watch(key);
        self.within(self.timeout, op, || self.about("watching", name))
            .await
    }

    /// Keeps `name` held by `owner` until `ttl` from now, waking its
    /// waiters (see [`Dialect::keep`]).
    pub async fn keep(
        &self,
        name: &LockName,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let op = self.dialect.keep(key, owner, ttl);
        self.on("releasing", name, self.timeout, op).await
    }

    /// A subscription to release notifications, `None` where there are none.
    pub async fn subscribe(&self) -> Result<Option<Subscription>> {
        let op = self.dialect.subscribe();
        self.within(self.timeout, op, || {
            format!("listening for releases on table {}", self.table)
        })
        .await
    }

    /// The error for a batch that failed as a whole, for one of its locks.
    pub fn batch_error(&self, failure: &BatchFailure, name: &LockName) -> LockError {
        let context = self.about("extending", name);
        match failure {
            BatchFailure::Busy => self.pool_busy(context, self.timeout),
            BatchFailure::NoAnswer => self.no_answer(context, self.timeout),
            BatchFailure::Db(e) => driver_error(self.backend, context, self.timeout, Arc::clone(e)),
        }
    }

    fn about(&self, doing: &str, name: &LockName) -> String {
        format!("{doing} `{name}` in table {}", self.table)
    }

    /// Runs `op` on `name` within `limit`, once it has a slot of the pool
    /// (waiting at most the statement timeout for one); a failure says it
    /// happened `doing` that.
    async fn on<T>(
        &self,
        doing: &str,
        name: &LockName,
        limit: Duration,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        let _slot = self.slot(doing, name, Some(self.timeout)).await?;
        self.within(limit, op, || self.about(doing, name)).await
    }

    /// Runs `op` on `name` within `limit` on a connection the caller holds
    /// (with its slot); a failure says it happened `doing` that.
    async fn on_held<T>(
        &self,
        doing: &str,
        name: &LockName,
        limit: Duration,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        self.within(limit, op, || self.about(doing, name)).await
    }

    /// One slot of the pool, for a call on `name` `doing` something,
    /// waiting at most `patience` (`None`: as long as it takes; the slots
    /// come free as calls end, each bounded by a timeout).
    async fn slot(
        &self,
        doing: &str,
        name: &LockName,
        patience: Option<Duration>,
    ) -> Result<OwnedSemaphorePermit> {
        let waiting = Arc::clone(&self.slots).acquire_owned();
        let taken = match patience {
            None => waiting.await,
            Some(limit) => match tokio::time::timeout(limit, waiting).await {
                Ok(taken) => taken,
                Err(_) => return Err(self.pool_busy(self.about(doing, name), limit)),
            },
        };
        // The semaphore is never closed.
        taken.map_err(|_| self.pool_busy(self.about(doing, name), Duration::ZERO))
    }

    /// Runs `op` within `limit`, mapping its failure with the context
    /// `what` gives (built only on failure).
    async fn within<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
        what: impl FnOnce() -> String,
    ) -> Result<T> {
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(driver_error(self.backend, what(), self.timeout, e)),
            Err(_) => Err(self.no_answer(what(), limit)),
        }
    }

    fn pool_busy(&self, context: String, limit: Duration) -> LockError {
        LockError::unavailable(
            self.backend,
            format!(
                "{context}: no free connection of the pool within {limit:?} ({} in use at once at most)",
                self.dialect.slots()
            ),
        )
    }

    fn no_answer(&self, context: String, limit: Duration) -> LockError {
        LockError::unavailable(
            self.backend,
            format!("{context}: no answer within {limit:?}"),
        )
    }
}

/// One connection of the pool, held for an acquire attempt: its
/// statements run in order (see [`AttemptConnection`]), each bounded and
/// its failure mapped like the store's.
pub(crate) struct StoreConnection {
    conn: Box<dyn AttemptConnection>,
    store: Store,
    /// Its slot of the pool, given back after the connection (fields drop
    /// in order).
    _slot: OwnedSemaphorePermit,
}

impl StoreConnection {
    /// The backend name errors carry.
    pub fn backend(&self) -> &'static str {
        self.store.backend
    }

    /// One acquire statement (storing `label` with the hold), bounded by
    /// `limit`.
    pub async fn take(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        (ttl, label): (Duration, Option<&str>),
        limit: Duration,
    ) -> Result<Take> {
        let op = self.conn.take(key, owner, ttl, label);
        self.store.on_held("acquiring", name, limit, op).await
    }

    /// Reads the row of `name` and where `owner` stands in its queue,
    /// bounded by `limit`.
    pub async fn waiting(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        limit: Duration,
    ) -> Result<Option<Waiting>> {
        let op = self.conn.waiting(key, owner);
        self.store.on_held("acquiring", name, limit, op).await
    }

    /// Takes (or keeps) `owner`'s place in the queue of `name`, living
    /// `life`, a new one with the ticket `arrived` where the database takes
    /// it (see [`AttemptConnection::enqueue`]), bounded by `limit`.
    pub async fn enqueue(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        (life, arrived): (Duration, i64),
        limit: Duration,
    ) -> Result<()> {
        let op = self.conn.enqueue(key, owner, life, arrived);
        self.store.on_held("acquiring", name, limit, op).await
    }

    /// Releases `name` when `owner` holds it, after whatever this
    /// connection ran before.
    pub async fn release(&mut self, name: &LockName, key: &str, owner: &str) -> Result<bool> {
        let op = self.conn.release(key, owner);
        self.store
            .on_held("releasing", name, self.store.timeout, op)
            .await
    }

    /// One grant transaction on `name` (see
    /// [`AttemptConnection::transact`]), bounded by `limit`.
    pub async fn transact(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        ttl: Duration,
        decide: &mut Decide<'_>,
        limit: Duration,
    ) -> Result<Option<u64>> {
        let op = self.conn.transact(key, owner, ttl, decide);
        self.store.on_held("acquiring", name, limit, op).await
    }

    /// Records or refreshes `owner`'s waiting-writer intent on `name`,
    /// living `life`, bounded by `limit`.
    pub async fn record_intent(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        life: Duration,
        limit: Duration,
    ) -> Result<()> {
        let op = self.conn.record_intent(key, owner, life);
        self.store.on_held("acquiring", name, limit, op).await
    }

    /// Releases the reader or permit holder `owner` of `name`, after
    /// whatever this connection ran before.
    pub async fn release_holder(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
    ) -> Result<bool> {
        let op = self.conn.release_holder(key, owner);
        self.store
            .on_held("releasing", name, self.store.timeout, op)
            .await
    }

    /// Rolls back what a dropped attempt left open on this connection, and
    /// keeps the connection out of the pool (see
    /// [`AttemptConnection::abandon_transaction`]).
    pub async fn abandon_transaction(&mut self, name: &LockName) -> Result<()> {
        let op = self.conn.abandon_transaction();
        let doing = "rolling back an attempt on";
        self.store
            .on_held(doing, name, self.store.timeout, op)
            .await
    }

    /// Undoes an upgrade of `owner` on `name` that took `fence` (and
    /// forgets its intent), after whatever this connection ran before.
    pub async fn downgrade(
        &mut self,
        name: &LockName,
        key: &str,
        owner: &str,
        fence: Option<u64>,
    ) -> Result<bool> {
        let op = self.conn.downgrade(key, owner, fence);
        let doing = "undoing the upgrade of";
        self.store
            .on_held(doing, name, self.store.timeout, op)
            .await
    }
}

/// A batched extension that failed as a whole.
pub(crate) enum BatchFailure {
    /// No slot of the pool came free within the timeout.
    Busy,
    /// The database did not answer within the timeout.
    NoAnswer,
    /// The driver's error, shared by the batch's leases.
    Db(Arc<sqlx::Error>),
}

/// Whether `e` is SQLite's answer that the file's write lock stayed taken
/// past the busy handler's timeout: the database was not available within
/// the timeout, like a server that did not answer.
fn file_locked(e: &sqlx::Error) -> bool {
    #[cfg(feature = "sqlite")]
    if crate::sqlite::busy(e) {
        return true;
    }
    let _ = e;
    false
}

/// Connection trouble (and a SQLite file kept locked past the timeout) is
/// `Unavailable`; what the database itself reports is
/// `Backend` with the driver error as its source. Neither carries the URL
/// (driver errors never include it).
pub(crate) fn driver_error<E>(
    backend: &'static str,
    context: String,
    limit: Duration,
    e: E,
) -> LockError
where
    E: Borrow<sqlx::Error> + Into<BoxError>,
{
    let unavailable = match e.borrow() {
        sqlx::Error::PoolTimedOut => Some(format!(
            "{context}: no database connection within {limit:?}"
        )),
        err @ (sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed) => {
            Some(format!("{context}: {err}"))
        }
        err if file_locked(err) => Some(format!(
            "{context}: the database file stayed locked by another connection for {limit:?}"
        )),
        _ => None,
    };
    match unavailable {
        Some(reason) => LockError::unavailable(backend, reason),
        // The driver's message goes into the context too: many callers
        // print only the top-level error.
        None => {
            let context = format!("{context}: {}", e.borrow());
            LockError::backend(backend, context, e)
        }
    }
}

#[cfg(test)]
mod tests;
