//! Status: whether a name is held, the newest holder's token (and label)
//! and how many wait, read without queueing.

use distlock_core::{FencingToken, LockError, LockName, LockStatus, Mode, Result};
use zookeeper_client as zk;

use crate::acquire::window_of;
use crate::error::{to_lock_error, BACKEND};
use crate::node_data::NodeData;
use crate::queue::{queue, LockTree, QueueNode};
use crate::rpc::call;
use crate::session::Session;
use crate::sessions::Sessions;
use crate::turn::holders;

/// Reads of a queue that keeps changing before giving up.
const ATTEMPTS: usize = 3;

/// Lists the queue and reads the nodes whose turn it is: the newest
/// holder's token (the greatest among the holders'; a creation zxid, or the
/// token a kept node's data carries) and, for an exclusive holder, its
/// label; a node that has not claimed its turn yet counts as waiting: 2
/// round trips (again if one of them left between the two reads).
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

/// One look: the queue, then the data of the nodes whose turn it is (a
/// node still marked as a waiter has not claimed its turn: it waits).
/// `None` when one of them left between the two reads.
async fn read_once(session: &Session, dir: &str, name: &LockName) -> Result<Option<LockStatus>> {
    let free = LockStatus::new(false, None, None, Some(0));
    let children = match call(session, session.client.list_children(dir)).await {
        Ok(c) => c,
        Err(zk::Error::NoNode) => return Ok(Some(free)),
        Err(e) => return Err(to_lock_error(e, &format!("listing the queue of `{name}`"))),
    };
    let line = queue(&children);
    let held = holders(&line);
    if held.holding.is_empty() {
        return Ok(Some(LockStatus::new(false, None, None, Some(held.waiting))));
    }
    let Some(answers) = read_turns(session, dir, held.holding, name).await? else {
        return Ok(None);
    };
    let claimed: Vec<(&QueueNode, NodeData, u64)> = held
        .holding
        .iter()
        .zip(answers)
        .filter(|(_, (data, _))| window_of(data).is_none())
        .map(|(node, (data, czxid))| {
            let data = NodeData::parse(&data);
            let token = data.token(czxid);
            (node, data, token)
        })
        .collect();
    let waiting = held.waiting + held.holding.len() - claimed.len();
    let Some((newest, data, token)) = claimed.iter().max_by_key(|(_, _, token)| *token) else {
        return Ok(Some(LockStatus::new(false, None, None, Some(waiting))));
    };
    // An exclusive holder holds alone (an upgraded pair counts as its
    // writer node, which has no label).
    let label = data
        .label
        .clone()
        .filter(|_| newest.mode == Mode::Exclusive);
    let status = LockStatus::new(true, Some(FencingToken(*token)), None, Some(waiting));
    Ok(Some(status.with_holder(label)))
}

/// The data and creation zxid of each of `nodes`, in one multi-read;
/// `None` when one of them is gone.
async fn read_turns(
    session: &Session,
    dir: &str,
    nodes: &[QueueNode],
    name: &LockName,
) -> Result<Option<Vec<(Vec<u8>, i64)>>> {
    let failed = |e: zk::Error| to_lock_error(e, &format!("reading the holders of `{name}`"));
    let mut reads = session.client.new_multi_reader();
    for node in nodes {
        reads
            .add_get_data(&format!("{dir}/{}", node.name))
            .map_err(failed)?;
    }
    let answers = call(session, reads.commit()).await.map_err(failed)?;
    Ok(answers
        .into_iter()
        .map(|answer| match answer {
            zk::MultiReadResult::Data { data, stat } => Some((data, stat.czxid)),
            _ => None,
        })
        .collect())
}
