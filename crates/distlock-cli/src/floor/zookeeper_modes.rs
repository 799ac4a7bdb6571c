//! The ZooKeeper floors of the semaphore and the reader-writer lock: an
//! ephemeral sequential child node per holder under a container node per
//! name, and a count of the children that precede it.
//!
//! A taker creates its child (`p-` permit, `r-` reader, `w-` writer) and
//! lists the children until it may hold: a permit once fewer than the
//! permits' children precede it, a reader once no writer's child does, the
//! writer once none does. A later child never precedes an earlier one, so
//! a holder's predecessors only ever leave; listing again after a short
//! sleep stands in for the watches a real recipe would set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use distlock::sync::lock;
use distlock::{LockName, Mode};
use zookeeper_client as zk;

use super::SPIN;
use crate::workload::{Contender, Primitive};

/// The semaphore floor's recipe.
const SEMAPHORE: &str = "create an ephemeral sequential child of the name's node, list the children until fewer than the permits precede it (spinning) / delete it";
/// The reader-writer floor's recipe.
const READ_WRITE: &str = "create an ephemeral sequential reader or writer child of the name's node, list the children until no writer (for a reader) or no child (for the writer) precedes it (spinning) / delete it";

/// The parent of every name's node.
const DIR: &str = "/distlock-floor-modes";

/// The recipe for `primitive`.
pub fn recipe(primitive: Primitive) -> Option<&'static str> {
    match primitive {
        Primitive::Mutex => None,
        Primitive::Semaphore => Some(SEMAPHORE),
        Primitive::ReadWrite => Some(READ_WRITE),
    }
}

/// A client of the floor on its own session `client`.
pub async fn contender(client: zk::Client) -> Result<Arc<dyn Contender>, String> {
    create_parent(&client, DIR, zk::CreateMode::Persistent).await?;
    Ok(Arc::new(ZkModes {
        client,
        held: Mutex::new(HashMap::new()),
    }))
}

/// Creates `path` in `mode` unless it exists.
async fn create_parent(
    client: &zk::Client,
    path: &str,
    mode: zk::CreateMode,
) -> Result<(), String> {
    match client
        .create(path, &[], &mode.with_acls(zk::Acls::anyone_all()))
        .await
    {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(format!("zookeeper floor: {e}")),
    }
}

struct ZkModes {
    client: zk::Client,
    /// The child node of each name held.
    held: Mutex<HashMap<LockName, String>>,
}

fn parent(name: &LockName) -> String {
    format!("{DIR}/{}", name.digest_hex())
}

/// The child name prefix of a hold in `mode`.
fn prefix(mode: Mode) -> &'static str {
    match mode {
        Mode::Permit { .. } => "p",
        Mode::Shared => "r",
        _ => "w",
    }
}

/// Whether the child with sequence `mine` may hold in `mode` beside the
/// `children` of its name.
fn admitted(children: &[String], mine: i64, mode: Mode) -> bool {
    let mut earlier = children.iter().filter_map(|c| {
        let (prefix, seq) = c.split_once('-')?;
        let seq: i64 = seq.parse().ok()?;
        (seq < mine).then_some(prefix)
    });
    match mode {
        Mode::Permit { limit } => earlier.count() < limit as usize,
        Mode::Shared => !earlier.any(|p| p == "w"),
        _ => earlier.next().is_none(),
    }
}

impl ZkModes {
    /// Creates this hold's child under `parent` (and `parent`, a container
    /// node, when missing); returns its path and sequence.
    async fn enter(&self, parent: &str, mode: Mode) -> Result<(String, i64), String> {
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let path = format!("{parent}/{}-", prefix(mode));
        loop {
            match self.client.create(&path, &[], &options).await {
                Ok((_, seq)) => return Ok((format!("{path}{seq}"), seq.into_i64())),
                Err(zk::Error::NoNode) => {
                    create_parent(&self.client, parent, zk::CreateMode::Container).await?;
                }
                Err(e) => return Err(format!("zookeeper floor: {e}")),
            }
        }
    }
}

#[distlock::async_trait]
impl Contender for ZkModes {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let parent = parent(name);
        let (path, mine) = self.enter(&parent, mode).await?;
        loop {
            let children = self
                .client
                .list_children(&parent)
                .await
                .map_err(|e| format!("zookeeper floor: {e}"))?;
            if admitted(&children, mine, mode) {
                lock(&self.held).insert(name.clone(), path);
                return Ok(());
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let Some(path) = lock(&self.held).remove(name) else {
            return Err(format!("zookeeper floor: `{name}` was not held"));
        };
        self.client
            .delete(&path, None)
            .await
            .map_err(|e| format!("zookeeper floor: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn children(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn permits_count_the_children_before_them() {
        let three = Mode::Permit { limit: 3 };
        let all = children(&[
            "p-0000000001",
            "p-0000000002",
            "p-0000000003",
            "p-0000000004",
        ]);
        assert!(admitted(&all, 3, three));
        assert!(!admitted(&all, 4, three));
    }

    #[test]
    fn readers_wait_for_earlier_writers_and_writers_for_everyone() {
        let all = children(&["r-0000000001", "w-0000000002", "r-0000000003"]);
        assert!(admitted(&all, 1, Mode::Shared));
        assert!(!admitted(&all, 2, Mode::Exclusive));
        assert!(!admitted(&all, 3, Mode::Shared));
        let readers = children(&["r-0000000001", "r-0000000003"]);
        assert!(admitted(&readers, 3, Mode::Shared));
    }
}
