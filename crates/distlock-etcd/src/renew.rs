//! Extend: prove the key is still ours, one lease or a batch at a time.
//!
//! The acquire ttl is the validity the lease reports, not a server-side
//! expiry: a key lives as long as the client's etcd lease, which the
//! session keeps alive. Extending therefore only confirms that the key
//! still exists with our create revision and owner token — which also
//! proves its etcd lease alive on the server.

use std::time::{Duration, Instant};

use distlock_core::{Lease, LockError, Renewal, Result};
use etcd_client::{Txn, TxnOp, TxnOpResponse, TxnResponse};

use crate::backend::EtcdBackend;
use crate::cluster::Cluster;
use crate::errors::BACKEND;
use crate::keys::{held_compares, key_of};

/// Most leases in one batched extension: sub-transactions in one Txn, kept
/// under etcd's default `--max-txn-ops` of 128.
pub(crate) const MAX_BATCH: usize = 100;

/// Confirms `lease` still holds its key.
///
/// Round trips: one (Txn: compare create revision and owner token).
pub(crate) async fn renew(backend: &EtcdBackend, lease: &Lease) -> Result<Renewal> {
    let key = checked_key(backend, lease)?;
    let sent = Instant::now();
    let txn = Txn::new().when(held_compares(key, lease));
    let resp = send(backend.cluster(), "extend", txn).await?;
    if !resp.succeeded() {
        return Err(LockError::not_held(lease.name().as_str()));
    }
    Ok(Renewal::sent_at(sent))
}

/// Confirms every lease of `batch` in one request; one answer per entry, in
/// order.
///
/// Round trips: one (a Txn of sub-transactions, each comparing one key).
pub(crate) async fn renew_batch(
    backend: &EtcdBackend,
    batch: &[(Lease, Duration)],
) -> Vec<Result<Renewal>> {
    let keys: Vec<Result<&str>> = batch
        .iter()
        .map(|(lease, _)| checked_key(backend, lease))
        .collect();
    let ops: Vec<TxnOp> = batch
        .iter()
        .zip(&keys)
        .filter_map(|((lease, _), key)| {
            let key = key.as_ref().ok()?;
            Some(TxnOp::txn(Txn::new().when(held_compares(key, lease))))
        })
        .collect();
    let sent = Instant::now();
    let held = match ops.is_empty() {
        true => Ok(Vec::new()),
        false => send(
            backend.cluster(),
            "batched extend",
            Txn::new().and_then(ops),
        )
        .await
        .map(|resp| held_answers(&resp)),
    };
    let mut held_in_order = held.as_ref().ok().into_iter().flatten();
    batch
        .iter()
        .zip(keys)
        .map(|((lease, _), key)| {
            key?;
            match &held {
                Err(e) => Err(LockError::unavailable(BACKEND, e.to_string())),
                Ok(_) if held_in_order.next() == Some(&true) => Ok(Renewal::sent_at(sent)),
                Ok(_) => Err(LockError::not_held(lease.name().as_str())),
            }
        })
        .collect()
}

/// Whether each sub-transaction's compares held, in order.
fn held_answers(resp: &TxnResponse) -> Vec<bool> {
    resp.op_responses()
        .iter()
        .map(|r| matches!(r, TxnOpResponse::Txn(t) if t.succeeded()))
        .collect()
}

/// The key of a lease under this client's prefix; `NotHeld` at once when
/// its etcd lease is one of this client's that was lost.
fn checked_key<'a>(backend: &EtcdBackend, lease: &'a Lease) -> Result<&'a str> {
    let key = key_of(backend.config().prefix(), lease)?;
    if backend.etcd_session().lost_key(key) {
        return Err(LockError::not_held(lease.name().as_str()));
    }
    Ok(key)
}

/// One compare-only transaction, retried on the next endpoint after a
/// transport failure (it changes nothing).
async fn send(cluster: &Cluster, what: &str, txn: Txn) -> Result<TxnResponse> {
    cluster
        .read(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
}
