//! Release: delete the lease's node (and, for an upgraded hold, the reader
//! node it was upgraded from), waking the contenders that watch it.

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{Lease, Liveness, LockError, Result};
use zookeeper_client as zk;

use crate::cleanup::remove_queue_nodes;
use crate::error::{to_lock_error, BACKEND};
use crate::queue::{lock_dir, LeaseNode};
use crate::rpc::call;
use crate::session::Session;
use crate::sessions::Sessions;

/// Deletes the lease's node: 1 round trip (an upgraded hold deletes its
/// writer and reader nodes in one multi-request).
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
            None,
        ),
    );
    let (deleted, settled) = match &node.reader {
        None => {
            let deleted = call(&session, session.client.delete(&node.path, None)).await;
            let settled = answered(&deleted);
            (deleted, settled)
        }
        Some(reader) => delete_upgraded(&session, &node.path, reader).await,
    };
    if settled {
        cleanup.disarm();
    }
    match deleted {
        // The session that held it already ended: whatever we deleted was
        // no longer this lease's lock.
        Ok(()) if retired => Err(LockError::not_held(lease.name().to_string())),
        Ok(()) => Ok(()),
        Err(zk::Error::NoNode) => Err(LockError::not_held(lease.name().to_string())),
        Err(e) if final_refusal(&e) => {
            Err(to_lock_error(e, &format!("releasing `{}`", lease.name())))
        }
        // No answer, or a transient refusal (connection loss, timeout,
        // session moved to another server): `cleanup` drops armed.
        Err(e) => Err(to_lock_error(
            e,
            &format!("releasing `{}` (retrying in the background)", lease.name()),
        )),
    }
}

/// The server answered a delete for good: "deleted", "no such node" or
/// "refused by the ACL" (anything else may be worth another try).
fn answered(deleted: &Result<(), zk::Error>) -> bool {
    deleted.as_ref().err().is_none_or(final_refusal)
}

/// "No such node" and "refused by the ACL": another try would not change
/// the answer.
fn final_refusal(e: &zk::Error) -> bool {
    matches!(e, zk::Error::NoNode | zk::Error::NoAuth)
}

/// Deletes an upgraded hold's writer node and the reader node it was
/// upgraded from, together (1 round trip: a multi-request); if one of them
/// is already gone (the reader's own lease was released, or the writer went
/// with its session), what is left, one by one (2 more). Answers the
/// writer node's delete, and whether both deletes were answered for good.
async fn delete_upgraded(
    session: &Session,
    writer: &str,
    reader: &str,
) -> (Result<(), zk::Error>, bool) {
    let mut both = session.client.new_multi_writer();
    let added = both
        .add_delete(writer, None)
        .and_then(|()| both.add_delete(reader, None));
    if let Err(e) = added {
        return (Err(e), true);
    }
    match call(session, async {
        both.commit().await.map_err(zk::Error::from)
    })
    .await
    {
        Ok(_) => (Ok(()), true),
        Err(zk::Error::NoNode) => {
            let writer = call(session, session.client.delete(writer, None)).await;
            let reader = call(session, session.client.delete(reader, None)).await;
            let settled = answered(&writer) && answered(&reader);
            (writer, settled)
        }
        Err(e) => {
            let settled = final_refusal(&e);
            (Err(e), settled)
        }
    }
}
