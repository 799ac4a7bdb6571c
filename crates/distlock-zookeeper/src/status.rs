//! Status: whether a name is held, the newest holder's token and how many
//! wait, read without queueing.

use distlock_core::{FencingToken, LockError, LockName, LockStatus, Result};
use zookeeper_client as zk;

use crate::error::{to_lock_error, BACKEND};
use crate::queue::{queue, LockTree};
use crate::rpc::call;
use crate::session::Session;
use crate::sessions::Sessions;
use crate::turn::holders;

/// Reads of a queue that keeps changing before giving up.
const ATTEMPTS: usize = 3;

/// Lists the queue and reads the creation zxid of the last node that
/// holds (the greatest among the holders' tokens): 2 round trips (again if
/// that holder left between the two reads).
pub(crate) async fn inspect(
    sessions: &Sessions,
    tree: &LockTree,
    name: &LockName,
) -> Result<LockStatus> {
    let dir = tree.dir(name);
    let session = sessions.current(None).await?;
    for _ in 0..ATTEMPTS {
        if let Some(status) = read_once(&session, &dir, name).await? {
            return Ok(status);
        }
    }
    Err(LockError::unavailable(
        BACKEND,
        format!("the queue of `{name}` kept changing while being read"),
    ))
}

/// One look: the queue, then its last holder. `None` when that holder left
/// between the two reads.
async fn read_once(session: &Session, dir: &str, name: &LockName) -> Result<Option<LockStatus>> {
    let free = LockStatus::new(false, None, None, Some(0));
    let children = match call(session, session.client.list_children(dir)).await {
        Ok(c) => c,
        Err(zk::Error::NoNode) => return Ok(Some(free)),
        Err(e) => return Err(to_lock_error(e, &format!("listing the queue of `{name}`"))),
    };
    let line = queue(&children);
    let held = holders(&line);
    let Some(newest) = held.newest else {
        return Ok(Some(free));
    };
    let path = format!("{dir}/{}", newest.name);
    match call(session, session.client.check_stat(&path)).await {
        Ok(Some(stat)) => Ok(Some(LockStatus::new(
            true,
            Some(FencingToken(stat.czxid as u64)),
            None,
            Some(held.waiting),
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(to_lock_error(e, &format!("reading the holder of `{name}`"))),
    }
}
