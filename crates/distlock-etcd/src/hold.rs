//! Lock-at-least-for: a hold released before its minimum stays on the
//! server until then, on an etcd lease of its own.
//!
//! A hold's keys live on the client's etcd lease, which ends with the client
//! (a crash, a revoke when the backend is dropped). Released early, the keys
//! move to a fresh etcd lease granted for the time still owed (whole
//! seconds, rounded up; etcd raises a ttl below its minimum, which only
//! holds longer), in one transaction guarded by the key's create revision
//! and owner token. A put keeps a key's create revision, so the entry keeps
//! its place in the queue and its fencing token, and its value (owner
//! token, label). Waiters watch for the key's delete, which comes when the
//! fresh lease expires; the put does not wake them.

use std::time::Duration;

use distlock_core::{Lease, LockError, Result};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::backend::EtcdBackend;
use crate::cluster::Cluster;
use crate::errors::BACKEND;
use crate::keys::{held_compares, key_of, upgraded_reader};

/// Attempts at the moving transaction when the cluster fails (it is
/// idempotent: the put keeps the create revision and the value).
const MOVE_ATTEMPTS: u32 = 3;

/// Keeps `lease`'s keys (an upgraded hold's two) for `hold` from now on a
/// fresh etcd lease, then lets etcd delete them.
///
/// Round trips: two (LeaseGrant, then a Txn: compare create revision and
/// owner token, put with the new lease and the current value); a
/// LeaseRevoke more when the hold was no longer held.
///
/// # Cancel safety
///
/// The work runs as its own task: once called, it completes even if the
/// future is dropped.
pub(crate) async fn release_after(
    backend: &EtcdBackend,
    lease: &Lease,
    hold: Duration,
) -> Result<()> {
    let key = key_of(backend.config().prefix(), lease)?.to_string();
    if backend.etcd_session().lost_key(&key) {
        return Err(LockError::not_held(lease.name().as_str()));
    }
    let reader = upgraded_reader(&backend.name_dir(lease.name()), &key);
    let (cluster, lease) = (backend.shared_cluster(), lease.clone());
    let moving = tokio::spawn(async move { keep(&cluster, &lease, &key, reader, hold).await });
    moving.await.unwrap_or_else(|e| {
        Err(LockError::unavailable(
            BACKEND,
            format!("keeping a released hold: the task ended early ({e})"),
        ))
    })
}

/// Grants the hold lease and moves the keys onto it.
async fn keep(
    cluster: &Cluster,
    lease: &Lease,
    key: &str,
    reader: Option<String>,
    hold: Duration,
) -> Result<()> {
    let hold_lease = grant(cluster, hold).await?;
    let txn = move_txn(lease, key, reader.as_deref(), hold_lease);
    let mut attempt = 1;
    loop {
        let sent = cluster
            .call("keeping a released hold", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
        match sent {
            Ok(resp) if resp.succeeded() => {
                tracing::debug!(
                    key,
                    hold_ms = hold.as_millis() as u64,
                    "distlock.etcd.hold_kept"
                );
                return Ok(());
            }
            Ok(_) => {
                // Not held (any more): an earlier attempt that landed would
                // have kept the key, so nothing is on the hold lease.
                revoke(cluster, hold_lease).await;
                return Err(LockError::not_held(lease.name().as_str()));
            }
            Err(e) if e.is_transient() && attempt < MOVE_ATTEMPTS => attempt += 1,
            // The keys may or may not have moved; the hold lease ends by
            // itself either way.
            Err(e) => return Err(e),
        }
    }
}

/// Grants an etcd lease of `hold`, in whole seconds rounded up.
///
/// Round trips: one (LeaseGrant).
async fn grant(cluster: &Cluster, hold: Duration) -> Result<i64> {
    let ttl = i64::try_from(hold.as_millis().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .max(1);
    let granted = cluster
        .call("granting a hold lease", |mut c| async move {
            c.lease_grant(ttl, None).await
        })
        .await?;
    if !granted.error().is_empty() {
        return Err(LockError::unavailable(
            BACKEND,
            format!("etcd refused to grant a hold lease: {}", granted.error()),
        ));
    }
    Ok(granted.id())
}

/// The transaction that moves the hold's keys onto `hold_lease` if the
/// lease still holds them.
fn move_txn(lease: &Lease, key: &str, reader: Option<&str>, hold_lease: i64) -> Txn {
    let put = |k: &str| {
        let options = PutOptions::new().with_lease(hold_lease).with_ignore_value();
        TxnOp::put(k, Vec::new(), Some(options))
    };
    let mut compares = held_compares(key, lease);
    let mut puts = vec![put(key)];
    if let Some(reader) = reader {
        compares.push(Compare::create_revision(reader, CompareOp::Greater, 0));
        puts.push(put(reader));
    }
    Txn::new().when(compares).and_then(puts)
}

/// Revokes a hold lease nothing was moved onto (best effort: it expires
/// anyway).
///
/// Round trips: one (LeaseRevoke).
async fn revoke(cluster: &Cluster, id: i64) {
    let revoked = cluster
        .call("revoking an unused hold lease", |mut c| async move {
            c.lease_revoke(id).await
        })
        .await;
    if let Err(e) = revoked {
        tracing::debug!(error = %e, "distlock.etcd.hold_lease_revoke_failed");
    }
}
