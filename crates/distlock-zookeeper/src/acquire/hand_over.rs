//! Handing a turn on: the nodes whose turn came must claim it within their
//! window; one that does not is passed over (see [`super::claim`](mod@super::claim)).
//!
//! 1. List the directory and read the data of the nodes whose turn it is
//!    (the longest prefix of the line that fits together by the core's rule,
//!    [`Mode::admitted`]): one list and one multi-read, both answered by
//!    the server the session is connected to.
//! 2. A marked node among them has not claimed its turn. Once it stayed so
//!    — same version — for the window its mark carries, delete it at that
//!    version: a claim that lands first always wins.
//! 3. A deletion lets the next nodes in: back to 1.
//!
//! Two kinds of client look. The one that deleted a node of the line (a
//! release, a waiter giving up, a waiter passed over) looks once, waits out
//! the windows and looks again ([`spawn`]). And a waiting contender with a
//! node ahead of it that may still have to claim a turn keeps a
//! [`Lookout`]: it looks once per its own window, for when the client that
//! let a turn in is gone (killed, or exited right after its release): a
//! silent turn costs the line at most two windows then. Without any live
//! client in line, a dead waiter's node goes with its session.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::Mode;
use zookeeper_client as zk;

use super::claim::window_of;
use super::Want;
use crate::queue::{queue, QueueNode};
use crate::rpc::call;
use crate::session::Session;

/// The most rounds (each passing over at least one waiter) one hand-on
/// makes.
const MAX_ROUNDS: usize = 16;

/// The most nodes one look reads the data of.
const MOST_DUE: usize = 64;

/// Hands the turn on under `dir` in the background (see the module docs).
///
/// Round trips: one list and one multi-read; per node still unclaimed at
/// the end of its window, one `getData` and one `delete`; again per round.
pub(crate) fn spawn(session: Arc<Session>, dir: String) {
    tokio::spawn(async move { hand_on(&session, &dir).await });
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

/// A node whose turn came, still marked.
#[derive(Debug)]
struct Due {
    path: String,
    version: i32,
    /// The window its mark carries.
    window: Duration,
}

/// Rounds of steps 1–3 until no waiter was passed over.
async fn hand_on(session: &Session, dir: &str) {
    for _ in 0..MAX_ROUNDS {
        let head = match read_head(session, dir).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(dir, error = %e, "distlock.zookeeper.hand_on_failed");
                return;
            }
        };
        if head.due.is_empty() || !pass_over_silent(session, head.due, head.read_at).await {
            return;
        }
    }
}

/// Passes over each node of `due` (read at `read_at`) that has not claimed
/// its turn by the end of its window; true if one was.
async fn pass_over_silent(session: &Session, mut due: Vec<Due>, read_at: Instant) -> bool {
    due.sort_by_key(|d| d.window);
    let mut passed = false;
    for waiter in &due {
        tokio::time::sleep_until((read_at + waiter.window).into()).await;
        let still = match call(session, session.client.get_data(&waiter.path)).await {
            Ok((data, stat)) => stat.version == waiter.version && window_of(&data).is_some(),
            Err(_) => false,
        };
        if still && pass_over(session, waiter).await {
            passed = true;
        }
    }
    passed
}

/// Deletes `waiter` if it is still at the version read; true if it was.
///
/// Round trips: one (`delete` at that version).
async fn pass_over(session: &Session, waiter: &Due) -> bool {
    let deleted = session.client.delete(&waiter.path, Some(waiter.version));
    match call(session, deleted).await {
        Ok(()) => {
            tracing::info!(node = %waiter.path, "distlock.zookeeper.waiter_passed_over");
            true
        }
        Err(e) => {
            tracing::debug!(node = %waiter.path, error = %e, "distlock.zookeeper.pass_over_failed");
            false
        }
    }
}

/// A waiting contender's look at the head of its line (see the module
/// docs).
pub(crate) struct Lookout {
    dir: String,
    /// Our node's child name.
    node: String,
    /// How often to look: our own window.
    every: Duration,
    /// The next look, while one is worth it.
    next: Option<Instant>,
    /// Turns seen unclaimed, and since when.
    seen: Vec<(Due, Instant)>,
}

impl Lookout {
    /// The lookout of the node `node` (child name) under `dir`, looking
    /// every `every`.
    pub(crate) fn new(dir: &str, node: &str, every: Duration) -> Self {
        Lookout {
            dir: dir.to_string(),
            node: node.to_string(),
            every,
            next: Some(Instant::now() + every),
            seen: Vec::new(),
        }
    }

    /// When to look next; `None` while nothing ahead of us could be passed
    /// over.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Looks again after our place changed.
    pub(crate) fn rearm(&mut self) {
        self.next.get_or_insert_with(|| Instant::now() + self.every);
    }

    /// One look: passes over the turns that stayed unclaimed for their
    /// window since we first saw them; looks again in one window while a
    /// node ahead of ours may still have to claim a turn.
    ///
    /// Round trips: one list and one multi-read; one `delete` per turn
    /// passed over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pass-over is one versioned delete, whole or not at
    /// all; a dropped look only forgets since when it saw a turn unclaimed.
    pub(crate) async fn look(&mut self, session: &Session) {
        let head = match read_head(session, &self.dir).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(dir = self.dir, error = %e, "distlock.zookeeper.lookout_failed");
                self.next = Some(Instant::now() + self.every);
                return;
            }
        };
        let worth_it = head.may_wait_for_a_claim(&self.node);
        let mut seen = Vec::new();
        for due in head.due {
            let since = self
                .seen
                .iter()
                .find(|(s, _)| s.path == due.path && s.version == due.version)
                .map_or(head.read_at, |(_, since)| *since);
            match since + due.window <= head.read_at {
                true => {
                    pass_over(session, &due).await;
                }
                false => seen.push((due, since)),
            }
        }
        self.seen = seen;
        self.next = worth_it.then(|| Instant::now() + self.every);
    }
}

/// What one look at the head of a line found.
struct Head {
    /// When the reads were answered.
    read_at: Instant,
    /// The line, in order.
    line: Vec<QueueNode>,
    /// How many of its first nodes have their turn.
    turns: usize,
    /// The nodes among those still marked.
    due: Vec<Due>,
}

impl Head {
    /// Whether a node ahead of `node` may still have to claim a turn: one
    /// whose turn has not come yet (it may be a waiter), or one whose turn
    /// came and is still marked.
    fn may_wait_for_a_claim(&self, node: &str) -> bool {
        let Some(at) = self.line.iter().position(|n| n.name == node) else {
            return false;
        };
        at > self.turns || !self.due.is_empty()
    }
}

/// Step 1: the line, and the nodes whose turn came that are still marked.
///
/// Round trips: two (list; multi-read of the data of those whose turn it
/// is).
async fn read_head(session: &Session, dir: &str) -> Result<Head, zk::Error> {
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
    let due = paths
        .into_iter()
        .zip(data)
        .filter_map(|(path, answer)| match answer {
            zk::MultiReadResult::Data { data, stat } => Some(Due {
                path,
                version: stat.version,
                window: window_of(&data)?,
            }),
            _ => None,
        })
        .collect();
    Ok(Head {
        read_at,
        line,
        turns,
        due,
    })
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
