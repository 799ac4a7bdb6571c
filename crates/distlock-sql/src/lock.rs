//! The algorithm, on the locks table: acquire (one attempt, then waiting),
//! extend (one lease or a batch), release, status.
//!
//! The core's checked layer around it has already validated the options,
//! the ttl and the lease's backend, drawn the owner token, and turns each
//! [`Grant`] and [`Renewal`] into a lease with the one validity rule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::waiting::{notified_acquire, poll_acquire, request_bound, Attempt};
use distlock_core::{
    async_trait, AcquireRequest, Capabilities, FencingToken, Grant, Lease, LockBackend, LockError,
    LockName, LockStatus, Renewal, Result, Wait,
};

use crate::backend::SqlBackend;
use crate::config::Database;
use crate::dialect::{Extension, Take};
use crate::notify::Subscription;
use crate::store::{Store, StoreConnection};

/// The longest key stored for a lock name, in bytes; longer names are
/// shortened with a hash suffix.
pub const MAX_KEY_BYTES: usize = 255;

/// The most leases one batched extension statement carries: three bound
/// parameters each, far below SQLite's 32 766 and MySQL's 65 535.
pub const MAX_BATCH: usize = 128;

/// The row key of a lock name.
fn key(name: &LockName) -> String {
    name.key_within(MAX_KEY_BYTES, |s| s.to_string())
}

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
            .shared(false)
            .semaphore(false)
            .min_ttl(Duration::from_millis(1))
            .max_ttl(Duration::from_secs(7 * 24 * 3600))
            .build()
    }

    /// Tries once, then waits: woken by `NOTIFY` on PostgreSQL, polling with
    /// the options' backoff elsewhere, never sleeping past the holder's
    /// remaining ttl.
    ///
    /// Round trips per attempt: one statement when the lock is taken (every
    /// database) or held on PostgreSQL; two when held on MySQL and SQLite
    /// (the second reads the holder's remaining ttl). Waiting on PostgreSQL
    /// costs none.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an attempt dropped while its statement is in flight is
    /// followed, in the background, by a release conditioned on this
    /// acquire's owner token (a no-op unless the statement took the lock).
    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        let acquire = Acquire::new(self.store(), request);
        if request.options.wait != Wait::NoWait {
            if let Some(subscription) = self.store().subscribe().await? {
                return acquire.notified(subscription).await;
            }
        }
        poll_acquire(&request.options, || acquire.attempt()).await
    }

    /// Extends the lease to `ttl` from the database's now, if its owner
    /// still holds it unexpired; `NotHeld` otherwise.
    ///
    /// Round trips: one statement.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the lease.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        let name = lease.name();
        let sent = Instant::now();
        let owner = lease.owner().to_hex();
        if self.store().extend(name, &key(name), &owner, ttl).await? {
            Ok(Renewal::sent_at(sent))
        } else {
            Err(LockError::not_held(name.as_str()))
        }
    }

    /// Extends every lease of the batch, each to its own ttl, in one
    /// statement; each lease whose owner no longer holds it unexpired
    /// answers `NotHeld`.
    ///
    /// Round trips: one statement. On MySQL/MariaDB, which cannot return
    /// rows from an `UPDATE`, a second statement reads which leases are
    /// still held when the first one's count says some were not extended.
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have extended the leases.
    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let entries = distinct_extensions(batch);
        let sent = Instant::now();
        match self.store().extend_batch(&entries).await {
            Ok(extended) => batch
                .iter()
                .map(|(lease, _)| {
                    if was_extended(&entries, &extended, lease) {
                        Ok(Renewal::sent_at(sent))
                    } else {
                        Err(LockError::not_held(lease.name().as_str()))
                    }
                })
                .collect(),
            Err(failure) => batch
                .iter()
                .map(|(lease, _)| Err(self.store().batch_error(&failure, lease.name())))
                .collect(),
        }
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Releases the lock if the lease's owner still holds it unexpired;
    /// `NotHeld` otherwise. The row stays, so fencing tokens keep rising.
    ///
    /// Round trips: one statement (on PostgreSQL the waiters' notification
    /// rides on its commit).
    ///
    /// # Cancel safety
    ///
    /// A dropped future may or may not have released the lock; if not, it
    /// frees when its ttl ends.
    async fn revoke(&self, lease: &Lease) -> Result<()> {
        let name = lease.name();
        let owner = lease.owner().to_hex();
        if self.store().release(name, &key(name), &owner).await? {
            Ok(())
        } else {
            Err(LockError::not_held(name.as_str()))
        }
    }

    /// Whether the lock is held, its last fencing token and the holder's
    /// remaining ttl on the database clock.
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
                let held = h.is_held();
                LockStatus::new(
                    held,
                    (h.fence > 0).then_some(FencingToken(h.fence)),
                    if held { h.remaining } else { None },
                    None,
                )
            }
        })
    }
}

/// One acquire: what every attempt of it shares.
struct Acquire<'a> {
    store: &'a Store,
    request: &'a AcquireRequest,
    key: String,
    /// The owner token the core drew for this acquire, as stored.
    owner: String,
    deadline: Option<Instant>,
}

impl<'a> Acquire<'a> {
    fn new(store: &'a Store, request: &'a AcquireRequest) -> Self {
        Acquire {
            store,
            request,
            key: key(&request.name),
            owner: request.owner.to_hex(),
            deadline: request.options.wait.deadline(Instant::now()),
        }
    }

    /// One attempt, on one connection of the pool: the acquire statement,
    /// and on MySQL and SQLite a read of the holder's remaining ttl when the
    /// lock is held.
    ///
    /// # Cancel safety
    ///
    /// From the moment the statement may run until its outcome is known, a
    /// clean-up is armed that releases this owner's hold in the background
    /// if the attempt is dropped or fails — on the same connection, after
    /// the acquire statement, which the database may still be running.
    async fn attempt(&self) -> Result<Attempt> {
        let (name, ttl) = (&self.request.name, self.request.options.ttl);
        let until = Instant::now() + self.limit();
        let left = || until.saturating_duration_since(Instant::now());
        let conn = self.store.connection(name, left()).await?;
        // The clean-up releases on this same connection, so it runs after
        // the acquire statement even when that one is still in flight.
        let conn = Arc::new(tokio::sync::Mutex::new(conn));
        let mut session = Arc::clone(&conn).lock_owned().await;
        let mut cleanup =
            CleanupOnDrop::new(self.store.backend(), "lock taken by a dropped acquire");
        cleanup.arm(release_quietly(
            conn,
            name.clone(),
            self.key.clone(),
            self.owner.clone(),
        ));
        let sent = Instant::now();
        let taken = session
            .take(name, &self.key, &self.owner, ttl, left())
            .await?;
        cleanup.disarm();
        let remaining = match taken {
            Take::Acquired(fence) => {
                return Ok(Attempt::Acquired(Grant::new(FencingToken(fence), sent)))
            }
            Take::Held(remaining) => remaining,
            Take::HeldAskRemaining => {
                let holder = session.holder(name, &self.key, left()).await?;
                // A row released or expired since the acquire statement:
                // retry at once.
                Some(holder.and_then(|h| h.remaining).unwrap_or(Duration::ZERO))
            }
        };
        Ok(Attempt::Held { remaining })
    }

    /// Waits by notification: retries when this key's release is heard (or
    /// notifications may have been missed), or when the holder's remaining
    /// ttl runs out. `subscription` was taken before the first attempt, so a
    /// release between an attempt and its wait is not missed.
    async fn notified(&self, subscription: Subscription) -> Result<Option<Grant>> {
        let subscription = tokio::sync::Mutex::new(subscription);
        let (subscription, key) = (&subscription, self.key.as_str());
        notified_acquire(
            &self.request.options,
            || self.attempt(),
            move |bound| async move { subscription.lock().await.wait(key, bound).await },
        )
        .await
    }

    /// The bound on one attempt: the statement timeout cut to the caller's
    /// deadline ([`request_bound`]).
    fn limit(&self) -> Duration {
        request_bound(self.store.timeout(), self.deadline)
    }
}

/// Releases `owner`'s hold on `key` on the attempt's connection, once the
/// attempt let go of it, for a dropped attempt; a no-op unless the
/// attempt's statement had taken the lock.
async fn release_quietly(
    conn: Arc<tokio::sync::Mutex<StoreConnection>>,
    name: LockName,
    key: String,
    owner: String,
) {
    let mut conn = conn.lock().await;
    let backend = conn.backend();
    match conn.release(&name, &key, &owner).await {
        Ok(true) => {
            tracing::debug!(lock = %name, backend, "distlock.sql.cleanup_released")
        }
        Ok(false) => {}
        Err(e) => tracing::debug!(
            lock = %name, backend, error = %e,
            "distlock.sql.cleanup_failed"
        ),
    }
}

/// The batch as the statement takes it: one entry per distinct
/// `(key, owner)`, sorted by key (so concurrent batches lock rows in one
/// order), each with the longest ttl asked for it — the database then keeps
/// the row at least as long as every answer's lease says.
fn distinct_extensions(batch: &[(Lease, Duration)]) -> Vec<Extension> {
    let mut entries: BTreeMap<(String, String), Duration> = BTreeMap::new();
    for (lease, ttl) in batch {
        let ttl_slot = entries
            .entry((key(lease.name()), lease.owner().to_hex()))
            .or_insert(*ttl);
        *ttl_slot = (*ttl_slot).max(*ttl);
    }
    entries
        .into_iter()
        .map(|((key, owner), ttl)| Extension { key, owner, ttl })
        .collect()
}

/// Whether `lease`'s entry is among those the statement extended.
fn was_extended(entries: &[Extension], extended: &[bool], lease: &Lease) -> bool {
    let (k, o) = (key(lease.name()), lease.owner().to_hex());
    entries
        .binary_search_by(|e| (e.key.as_str(), e.owner.as_str()).cmp(&(k.as_str(), o.as_str())))
        .ok()
        .and_then(|i| extended.get(i).copied())
        .unwrap_or(false)
}
