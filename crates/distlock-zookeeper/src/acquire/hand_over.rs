//! Handing a turn on in ZooKeeper (the rule itself is the core's:
//! [`distlock_core::line`]): the nodes whose turn came must claim it within
//! their window; one that does not is passed over (see
//! [`super::claim`](mod@super::claim)).
//!
//! - The head of the line is one list of the directory and one multi-read
//!   of the data of the nodes whose turn it is, both answered by the server
//!   the session is connected to.
//! - A node is the same as read while its version is; passing it over is a
//!   delete at that version, so a claim that lands first always wins.
//!
//! Without any live client in line, a dead waiter's node goes with its
//! session.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::line::{self, Due, Head, Line};
use distlock_core::{async_trait, Mode};
use zookeeper_client as zk;

use super::claim::window_of;
use super::Want;
use crate::queue::queue;
use crate::rpc::call;
use crate::session::Session;

/// The most nodes one look reads the data of.
const MOST_DUE: usize = 64;

/// Hands the turn on under `dir` in the background (see the module docs).
///
/// Round trips: one list and one multi-read; per node still unclaimed at
/// the end of its window, one `getData` and one `delete`; again per round.
pub(crate) fn spawn(session: Arc<Session>, dir: String) {
    tokio::spawn(async move {
        line::hand_on(&ZkLine {
            session: &session,
            dir: &dir,
        })
        .await;
    });
}

/// `removal`, then (for an acquire that may wait) a check of the turns it
/// may have let in.
pub(super) fn then_hand_on(
    session: &Arc<Session>,
    want: &Want<'_>,
    removal: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let after = want
        .waiting
        .as_ref()
        .map(|_| (session.clone(), want.dir.clone()));
    async move {
        removal.await;
        if let Some((session, dir)) = after {
            spawn(session, dir);
        }
    }
}

/// A node of a line at the version read.
#[derive(Debug, PartialEq)]
pub(crate) struct Node {
    path: String,
    version: i32,
}

/// The line of contenders under one name's directory.
struct ZkLine<'a> {
    session: &'a Session,
    dir: &'a str,
}

/// A waiting contender's look at the head of its line
/// ([`distlock_core::line::Lookout`] on its directory).
pub(crate) struct Lookout {
    dir: String,
    inner: line::Lookout<Node>,
}

impl Lookout {
    /// The lookout of the node `node` (child name) under `dir`, looking
    /// every `every`.
    pub(crate) fn new(dir: &str, node: &str, every: Duration) -> Self {
        Lookout {
            dir: dir.to_string(),
            inner: line::Lookout::new(node, every),
        }
    }

    /// When to look next; `None` while nothing ahead of us could be passed
    /// over.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.inner.next()
    }

    /// Looks again after our place changed.
    pub(crate) fn rearm(&mut self) {
        self.inner.rearm();
    }

    /// One look (see [`line::Lookout::look`]): looks again while a node
    /// ahead of ours may still have to claim a turn.
    ///
    /// Round trips: one list and one multi-read; one `delete` per turn
    /// passed over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pass-over is one versioned delete, whole or not at
    /// all; a dropped look only forgets since when it saw a turn unclaimed.
    pub(crate) async fn look(&mut self, session: &Session) {
        let line = ZkLine {
            session,
            dir: &self.dir,
        };
        self.inner.look(&line).await;
    }
}

#[async_trait]
impl Line for ZkLine<'_> {
    type Entry = Node;
    type Error = zk::Error;

    fn describe(&self) -> &str {
        self.dir
    }

    /// Round trips: two (list; multi-read of the data of those whose turn
    /// it is).
    async fn read_head(&self, me: Option<&str>) -> Result<Head<Node>, zk::Error> {
        let (session, dir) = (self.session, self.dir);
        let children = match call(session, session.client.list_children(dir)).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        let line = queue(&children);
        let modes: Vec<Mode> = line.iter().map(|n| n.mode).collect();
        let turns = Mode::admitted(&[], &modes).min(MOST_DUE);
        let paths: Vec<String> = line[..turns]
            .iter()
            .map(|n| format!("{dir}/{}", n.name))
            .collect();
        let data = read_data(session, &paths).await?;
        let read_at = Instant::now();
        let due: Vec<Due<Node>> = paths
            .into_iter()
            .zip(data)
            .filter_map(|(path, answer)| match answer {
                zk::MultiReadResult::Data { data, stat } => Some(Due {
                    window: window_of(&data)?,
                    entry: Node {
                        path,
                        version: stat.version,
                    },
                }),
                _ => None,
            })
            .collect();
        // Worth another look while a node ahead of ours may still have to
        // claim a turn: one whose turn has not come yet (it may be a
        // waiter), or one whose turn came and is still marked.
        let look_again = me.is_some_and(|me| {
            let at = line.iter().position(|n| n.name == me);
            at.is_some_and(|at| at > turns || !due.is_empty())
        });
        Ok(Head {
            read_at,
            due,
            look_again,
        })
    }

    /// Round trips: one (`getData`).
    async fn still_unclaimed(&self, waiter: &Node) -> bool {
        let read = self.session.client.get_data(&waiter.path);
        match call(self.session, read).await {
            Ok((data, stat)) => stat.version == waiter.version && window_of(&data).is_some(),
            Err(_) => false,
        }
    }

    /// Round trips: one (`delete` at that version).
    async fn pass_over(&self, waiter: &Node) -> bool {
        let deleted = self
            .session
            .client
            .delete(&waiter.path, Some(waiter.version));
        match call(self.session, deleted).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(node = %waiter.path, error = %e, "distlock.zookeeper.pass_over_failed");
                false
            }
        }
    }
}

/// The data of `paths`, in one multi-read (none for no path).
async fn read_data(
    session: &Session,
    paths: &[String],
) -> Result<Vec<zk::MultiReadResult>, zk::Error> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut reads = session.client.new_multi_reader();
    for path in paths {
        reads.add_get_data(path)?;
    }
    call(session, reads.commit()).await
}
