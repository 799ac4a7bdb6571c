//! Upgrade: a reader becomes the writer without letting go.
//!
//! The reader's entry `<dir>s/<id>` stays where it is; the upgrade queues a
//! writer entry `<dir>^<id>-<random>` (on the reader's etcd lease, in one
//! transaction that first checks the reader still holds), so readers and
//! writers arriving from then on queue behind it. The writer entry passes
//! over its own reader entry and goes once nothing else is ahead of it; from
//! then on the pair holds the name exclusively: every later entry waits for
//! the writer entry, and nothing else is left before it. The fencing token
//! is the writer entry's create revision, greater than every earlier
//! grant's. Releasing the upgraded lease deletes both entries in one
//! transaction. Giving up (deadline, cancellation) deletes only the writer
//! entry: the read lock is held as before.
//!
//! Entries are ordered by create revision and the fencing tokens are those
//! revisions, so an upgrade cannot jump ahead of a writer that queued
//! behind the read lock before the upgrade began: that writer waits for the
//! read lock, and the upgrade waits until that writer gives up (or its own
//! wait runs out, leaving the read lock held).

use std::time::{Duration, Instant};

use distlock_core::{AcquireRequest, Grant, Lease, LockError, Mode, Result};
use tokio::sync::watch as channel;

use super::line::Place;
use super::queue_entry::QueueEntry;
use super::watch::Leases;
use super::{enter, wait_turn, Turn, Waits, LEASE_LAPSED};
use crate::backend::EtcdBackend;
use crate::errors::BACKEND;
use crate::keys::{entry_value, fencing, held_compares, key_of, lease_id_of, mode_of, upgrade_key};

/// Turns the reader `lease` into the writer, waiting up to
/// `request.options.wait` for the other holders to leave.
///
/// Round trips: one Txn (compare the reader's entry, put the writer entry,
/// read the newest three entries); per wait, one Watch (+ one local Range
/// if the revision moved) and one local read when it fires; giving up
/// costs one DeleteRange.
///
/// # Cancel safety
///
/// Dropping the future deletes the writer entry in the background; the
/// reader's entry is never touched, so the read lock stays held.
pub(crate) async fn upgrade(
    backend: &EtcdBackend,
    lease: &Lease,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let dir = backend.name_dir(lease.name());
    let reader = key_of(backend.config().prefix(), lease)?;
    let (key, lease_id) = match (upgrade_key(&dir, reader), lease_id_of(reader)) {
        (Some(key), Some(id)) if mode_of(&dir, reader.as_bytes()) == Mode::Shared => (key, id),
        _ => {
            return Err(LockError::InvalidLease {
                reason: "the lease's etcd key is not a reader's".into(),
            })
        }
    };
    let session = backend.etcd_session();
    if session.lost_key(reader) {
        return Err(LockError::not_held(lease.name().as_str()));
    }
    let deadline = request.options.wait.deadline(Instant::now());
    // The writer entry lives on the reader's etcd lease: when that is one of
    // ours, its loss ends the wait; another client's is not ours to judge.
    let (_open, lease_state) = match session.liveness_of(reader) {
        Some(state) => (None, state),
        None => {
            let (open, state) = channel::channel(distlock_core::Liveness::Live);
            (Some(open), state)
        }
    };
    let place = Place::upgrading(&dir, &key, reader);
    let value = entry_value(lease.owner(), None);
    let mut entry = QueueEntry::new(backend.shared_cluster(), key, lease_id, value);
    let compares = held_compares(reader, lease);
    let Some(start) = enter(&mut entry, &place, compares).await? else {
        return Err(LockError::not_held(lease.name().as_str()));
    };
    let mine = start.mine;
    let mut leases = Leases {
        client: lease_state,
        waiter: None,
    };
    let waits = Waits {
        deadline,
        leases: &mut leases,
        lookout: None,
    };
    let turn = wait_turn(backend.cluster(), &place, start, waits).await?;
    match turn {
        Turn::Granted { sent, .. } => {
            let lapsed = session
                .lease_of_key(reader)
                .is_some_and(|gen| !gen.usable(Duration::ZERO));
            if lapsed {
                entry.remove().await;
                return Err(LockError::unavailable(BACKEND, LEASE_LAPSED));
            }
            Ok(Some(
                Grant::new(fencing(mine), sent).with_data(entry.keep()),
            ))
        }
        Turn::TimedOut => {
            entry.remove().await;
            Ok(None)
        }
        Turn::LeaseLost | Turn::Gone | Turn::Mismatch(_) => {
            entry.remove().await;
            Err(LockError::not_held(lease.name().as_str()))
        }
    }
}
