//! What ZooKeeper's errors mean for a lock.

use distlock_core::LockError;
use zookeeper_client as zk;

/// The backend name in leases and errors.
pub(crate) const BACKEND: &str = "zookeeper";

/// True for the errors after which the session can never answer again.
pub(crate) fn session_ended(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

/// Maps a ZooKeeper error to ours, with what we were doing.
pub(crate) fn to_lock_error(e: zk::Error, context: &str) -> LockError {
    match e {
        zk::Error::ConnectionLoss | zk::Error::Timeout => LockError::unavailable(
            BACKEND,
            format!("{context}: no answer from the ensemble ({e})"),
        ),
        zk::Error::SessionExpired | zk::Error::ClientClosed => {
            LockError::unavailable(BACKEND, format!("{context}: the session ended ({e})"))
        }
        zk::Error::NoAuth => LockError::backend(
            BACKEND,
            format!("{context}: refused by the node's ACL (another identity owns this tree)"),
            e,
        ),
        e => LockError::backend(BACKEND, context.to_string(), e),
    }
}
