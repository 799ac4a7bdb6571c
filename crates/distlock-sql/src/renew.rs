//! Extending leases of every mode: one at a time, or a batch with one
//! statement per kind of lease in it, whatever its size (up to
//! [`MAX_BATCH`]).
//!
//! An exclusive lease lives in the name's row of the locks table; a reader
//! or permit in its row of the holders table. A batch is split by that:
//! its exclusive leases go in one statement, its readers and permits in
//! another, the two running at once on two connections. Each statement
//! carries its leases as one parameter (arrays on PostgreSQL, one JSON
//! text on MySQL/MariaDB and SQLite), so its size is bounded by how large
//! a statement may be, not by how many parameters it may bind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use distlock_core::{Lease, LockError, Mode, Renewal, Result};

use crate::dialect::{Extension, Group};
use crate::key::key;
use crate::store::{BatchFailure, Store};

/// The most leases one batched extension statement carries (the core
/// splits larger batches). On MySQL/MariaDB the batch travels as one JSON
/// text of at most about 600 bytes per lease (a 255-byte key in hex, the
/// owner token, the ttls), some 10 MB at this count: within MariaDB's
/// default `max_allowed_packet` of 16 MB (MySQL 8's is 64 MB). PostgreSQL's
/// arrays and SQLite's JSON text are bounded far above it.
pub const MAX_BATCH: usize = 16_384;

/// Extends one lease to `ttl` from the database's now, if its owner still
/// holds it unexpired (one statement); `NotHeld` otherwise.
pub(crate) async fn renew(store: &Store, lease: &Lease, ttl: Duration) -> Result<Renewal> {
    let name = lease.name();
    let sent = Instant::now();
    let owner = lease.owner().to_hex();
    let extended = if lease.mode() == Mode::Exclusive {
        store.extend(name, &key(name), &owner, ttl).await?
    } else {
        let entry = Extension {
            key: key(name),
            owner,
            ttl,
        };
        match store
            .extend_batch(Group::Holders, std::slice::from_ref(&entry))
            .await
        {
            Ok(extended) => extended.first().copied().unwrap_or(false),
            Err(failure) => return Err(store.batch_error(&failure, name)),
        }
    };
    if extended {
        Ok(Renewal::sent_at(sent))
    } else {
        Err(LockError::not_held(name.as_str()))
    }
}

/// Extends every lease of `batch`, each to its own ttl: one statement for
/// its exclusive leases and one for its readers and permits (each only if
/// there are any), at once. Each lease whose owner no longer holds it
/// unexpired answers `NotHeld`; a statement's failure is every one of its
/// leases' error.
pub(crate) async fn renew_batch(
    store: &Store,
    batch: &[(Lease, Duration)],
) -> Vec<Result<Renewal>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let exclusive = distinct_extensions(batch, Group::Exclusive);
    let held = distinct_extensions(batch, Group::Holders);
    let sent = Instant::now();
    let (exclusive_done, held_done) = tokio::join!(
        extend_group(store, &exclusive, Group::Exclusive),
        extend_group(store, &held, Group::Holders),
    );
    batch
        .iter()
        .map(|(lease, _)| {
            let (entries, done) = match Group::of(lease.mode()) {
                Group::Exclusive => (&exclusive, &exclusive_done),
                Group::Holders => (&held, &held_done),
            };
            match done {
                Ok(extended) if was_extended(entries, extended, lease) => {
                    Ok(Renewal::sent_at(sent))
                }
                Ok(_) => Err(LockError::not_held(lease.name().as_str())),
                Err(failure) => Err(store.batch_error(failure, lease.name())),
            }
        })
        .collect()
}

/// One group's statement; nothing to do for an empty group.
async fn extend_group(
    store: &Store,
    entries: &[Extension],
    group: Group,
) -> std::result::Result<Vec<bool>, BatchFailure> {
    if entries.is_empty() {
        Ok(Vec::new())
    } else {
        store.extend_batch(group, entries).await
    }
}

/// The leases of the batch in `group` as a statement takes them: one entry per distinct `(key, owner)`, sorted by key (so
/// concurrent batches lock rows in one order), each with the longest ttl
/// asked for it — the database then keeps the row at least as long as
/// every answer's lease says.
fn distinct_extensions(batch: &[(Lease, Duration)], group: Group) -> Vec<Extension> {
    let mut entries: BTreeMap<(String, String), Duration> = BTreeMap::new();
    for (lease, ttl) in batch {
        if Group::of(lease.mode()) != group {
            continue;
        }
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
