//! Release: delete the lease's node, waking the contender that watches it.

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{Lease, Liveness, LockError, Result};
use zookeeper_client as zk;

use crate::cleanup::remove_queue_nodes;
use crate::error::{to_lock_error, BACKEND};
use crate::queue::{lock_dir, LeaseNode};
use crate::rpc::call;
use crate::sessions::Sessions;

/// Deletes the lease's node: 1 round trip.
///
/// A clean-up that deletes the node (found by owner token) is armed before
/// the delete is sent; it is disarmed once the server answered "deleted",
/// "no such node" or "refused by the ACL"; otherwise (no answer, a
/// transient refusal, or this future dropped) it retries in the background
/// for as long as the session lives: with a live session the node would
/// otherwise stay forever.
pub(crate) async fn revoke(sessions: &Sessions, base: &str, lease: &Lease) -> Result<()> {
    let node = LeaseNode::from_lease(base, lease)?;
    let retired = sessions
        .liveness_of(node.session)
        .is_some_and(|rx| matches!(*rx.borrow(), Liveness::Lost(_)));
    let session = sessions.current(None).await?;
    let mut cleanup = CleanupOnDrop::armed(
        BACKEND,
        "lock node",
        remove_queue_nodes(
            session.clone(),
            lock_dir(base, lease.name()),
            lease.owner().to_hex(),
        ),
    );
    let deleted = call(&session, session.client.delete(&node.path, None)).await;
    let answered = matches!(deleted, Ok(()) | Err(zk::Error::NoNode | zk::Error::NoAuth));
    if answered {
        cleanup.disarm();
    }
    match deleted {
        // The session that held it already ended: whatever we deleted was
        // no longer this lease's lock.
        Ok(()) if retired => Err(LockError::not_held(lease.name().to_string())),
        Ok(()) => Ok(()),
        Err(zk::Error::NoNode) => Err(LockError::not_held(lease.name().to_string())),
        Err(e) if answered => Err(to_lock_error(e, &format!("releasing `{}`", lease.name()))),
        // No answer, or a transient refusal (connection loss, timeout,
        // session moved to another server): `cleanup` drops armed.
        Err(e) => Err(to_lock_error(
            e,
            &format!("releasing `{}` (retrying in the background)", lease.name()),
        )),
    }
}
