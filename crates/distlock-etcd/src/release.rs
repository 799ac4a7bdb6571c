//! Release: delete our key if it is still ours, waking the next waiter.

use distlock_core::{Lease, LockError, Result};
use etcd_client::{Txn, TxnOp};

use crate::backend::EtcdBackend;
use crate::keys::{held_compares, key_of, upgraded_reader};

/// Attempts at a release when the cluster fails: a key left behind would
/// hold the lock for as long as this client lives.
const RELEASE_ATTEMPTS: u32 = 3;

/// Deletes the lease's key if it still holds it; the deletion wakes the
/// next waiter's watch. An upgraded lease's writer entry goes together with
/// the reader entry it upgraded.
///
/// Round trips: one (Txn: compare create revision and owner token, then
/// delete); up to three on transient failures.
pub(crate) async fn revoke(backend: &EtcdBackend, lease: &Lease) -> Result<()> {
    let key = key_of(backend.config().prefix(), lease)?;
    let mut deletes = vec![TxnOp::delete(key, None)];
    if let Some(reader) = upgraded_reader(&backend.name_dir(lease.name()), key) {
        deletes.push(TxnOp::delete(reader, None));
    }
    let txn = Txn::new().when(held_compares(key, lease)).and_then(deletes);
    let mut attempt = 1;
    loop {
        let sent = backend
            .cluster()
            .call("release", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
        match sent {
            // A failed attempt may still have deleted the key, so after a
            // failure a refused compare means "released", not "not held".
            Ok(resp) if resp.succeeded() || attempt > 1 => return Ok(()),
            Ok(_) => return Err(LockError::not_held(lease.name().as_str())),
            Err(e) if e.is_transient() && attempt < RELEASE_ATTEMPTS => {
                tracing::debug!(lock = %lease.name(), error = %e, "distlock.etcd.release_retry");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
