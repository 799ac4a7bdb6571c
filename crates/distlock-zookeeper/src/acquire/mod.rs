//! Acquire: the queue recipe.
//!
//! 1. [`create`]: create `<dir>/<owner token>-<sequence>`, ephemeral and
//!    sequential. A clean-up that deletes it (found by owner token, so also
//!    when the create's reply was lost) is armed before the create is sent.
//! 2. List the directory: where does our node stand?
//! 3. First in line: the lock is ours; its fencing token is our node's
//!    creation zxid.
//! 4. Out of time: delete our node and report "not acquired".
//! 5. Otherwise [`watch`] the node right before ours and sleep until it
//!    changes; then back to 2.
//!
//! If the session ends on the way (our node goes with it), the attempt
//! starts over on a new session, losing its place in line, while the wait
//! allows. It keeps the request's owner token, so a node of the earlier
//! attempt that the server has not expired yet looks like ours: step 2
//! deletes every node with our owner token but the one this attempt
//! created before our node may count as first.

mod create;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{AcquireRequest, FencingToken, Grant, Liveness, LockError, LockName, Result};
use tokio::sync::watch as channel;
use zookeeper_client as zk;

use crate::cleanup::{delete_node, remove_queue_nodes};
use crate::error::{session_ended, to_lock_error, BACKEND};
use crate::queue::{place, LeaseNode, LockTree, Place};
use crate::rpc::call_until;
use crate::session::Session;
use crate::sessions::Sessions;

use create::QueueEntry;
use watch::{Watch, Woken};

/// Takes the lock for `request`, waiting in line up to its wait; see the
/// [module docs](self) for the steps.
pub(crate) async fn grant(
    sessions: &Sessions,
    tree: &LockTree,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let deadline = request.options.wait.deadline(Instant::now());
    loop {
        let session = sessions.current(deadline).await?;
        match attempt(session, tree, request, deadline).await? {
            Outcome::Acquired(grant) => return Ok(Some(grant)),
            Outcome::TimedOut => return Ok(None),
            Outcome::Restart(why) => {
                tracing::debug!(lock = %request.name, reason = %why, "distlock.zookeeper.acquire_restarts");
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(LockError::unavailable(
                        BACKEND,
                        format!(
                            "acquiring `{}`: lost its place in line ({why})",
                            request.name
                        ),
                    ));
                }
            }
        }
    }
}

/// What one attempt on one session ended with.
enum Outcome {
    Acquired(Grant),
    TimedOut,
    /// Our queue node is gone (with its session, usually): start over.
    Restart(String),
}

/// One attempt on one session: queue a node (step 1), then take turns until
/// first in line or out of time.
async fn attempt(
    session: Arc<Session>,
    tree: &LockTree,
    request: &AcquireRequest,
    deadline: Option<Instant>,
) -> Result<Outcome> {
    let dir = tree.dir(&request.name);
    let owner = request.owner.to_hex();
    // Armed before the create is sent: dropping this future at any point
    // from here on removes whatever node we may have.
    let mut cleanup = CleanupOnDrop::armed(
        BACKEND,
        "queue node",
        remove_queue_nodes(session.clone(), dir.clone(), owner.clone()),
    );
    let entry = match create::queue_node(&session, tree, &dir, &owner, deadline).await {
        Ok(entry) => entry,
        Err(e) if session_ended(&e) => {
            // Whatever we created went with the session.
            cleanup.disarm();
            return Ok(Outcome::Restart(e.to_string()));
        }
        Err(e) => {
            let doing = format!("creating a queue node for `{}`", request.name);
            return Err(to_lock_error(e, &doing));
        }
    };
    let contender = Contender {
        session,
        name: &request.name,
        dir,
        owner,
        entry,
        deadline,
    };
    let outcome = contender.until_first().await?;
    match &outcome {
        Outcome::Acquired(_) => cleanup.disarm(),
        // Step 4: leave the line now (1 round trip).
        Outcome::TimedOut if contender.leave().await => cleanup.disarm(),
        // The delete failed: `cleanup` retries in the background as it drops.
        Outcome::TimedOut => {}
        // Our node is gone (with its session, or deleted). The next attempt
        // queues with the same owner token, so a clean-up by owner token
        // must not run behind its back; that attempt deletes any node of
        // ours that still lingers (`Place::Others`).
        Outcome::Restart(_) => cleanup.disarm(),
    }
    Ok(outcome)
}

/// A queued node waiting for its turn.
struct Contender<'a> {
    session: Arc<Session>,
    name: &'a LockName,
    dir: String,
    /// Our owner token, in hex: the prefix of our node's name.
    owner: String,
    entry: QueueEntry,
    deadline: Option<Instant>,
}

/// Why a turn did not end with the lock.
enum Interrupt {
    /// Look at the line again (the predecessor went, the connection blinked).
    Relist,
    /// The session ended: start over on a new one.
    Restart(String),
    /// The caller's deadline passed.
    TimedOut,
    /// A request failed for good.
    Failed(LockError),
}

impl Contender<'_> {
    /// Takes turns (steps 2–5) until first in line, out of time, or the
    /// session is gone.
    async fn until_first(&self) -> Result<Outcome> {
        let mut live = self.session.liveness();
        loop {
            match self.turn(&mut live).await {
                Ok(grant) => return Ok(Outcome::Acquired(grant)),
                Err(Interrupt::Relist) => {}
                Err(Interrupt::TimedOut) => return Ok(Outcome::TimedOut),
                Err(Interrupt::Restart(why)) => return Ok(Outcome::Restart(why)),
                Err(Interrupt::Failed(e)) => return Err(e),
            }
        }
    }

    /// One turn: list the line (1 round trip); if we are not first, watch the
    /// predecessor (1 round trip) and sleep until woken.
    async fn turn(&self, live: &mut channel::Receiver<Liveness>) -> Result<Grant, Interrupt> {
        let sent = Instant::now();
        let children = self.list().await?;
        let predecessor = match place(&children, &self.owner, &self.entry.name) {
            Place::First => return Ok(self.granted(sent)),
            Place::Behind { predecessor } => predecessor,
            Place::Gone => {
                // The session ended (the next request says so) or someone
                // deleted our node. Either way, start over.
                let why = format!("queue node {} vanished", self.entry.path);
                return Err(Interrupt::Restart(why));
            }
            Place::Others { extra } => {
                self.delete_others(&extra).await?;
                return Err(Interrupt::Relist);
            }
        };
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Interrupt::TimedOut);
        }
        let path = format!("{}/{predecessor}", self.dir);
        let watcher = match watch::predecessor(&self.session, &path, self.deadline).await {
            Ok(Watch::Set(watcher)) => watcher,
            Ok(Watch::Gone) => return Err(Interrupt::Relist),
            Err(e) => return Err(self.interrupt(e, "watching the predecessor")),
        };
        tracing::debug!(lock = %self.name, predecessor = %predecessor, "distlock.zookeeper.waiting");
        Err(
            match watch::until_woken(&self.session, watcher, live, self.deadline).await {
                Woken::Changed => Interrupt::Relist,
                Woken::SessionLost(why) => Interrupt::Restart(why),
                Woken::TimedOut => Interrupt::TimedOut,
            },
        )
    }

    /// Step 2: the directory's children (1 round trip). A missing directory
    /// is an empty line.
    async fn list(&self) -> Result<Vec<String>, Interrupt> {
        let listed = call_until(
            &self.session,
            self.deadline,
            self.session.client.list_children(&self.dir),
        )
        .await;
        match listed {
            Ok(children) => Ok(children),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(self.interrupt(e, "listing the queue")),
        }
    }

    /// Step 3: the grant, with the instant the list that found us first was
    /// sent.
    fn granted(&self, sent: Instant) -> Grant {
        let node = LeaseNode {
            path: self.entry.path.clone(),
            session: self.entry.session,
        };
        Grant::new(FencingToken(self.entry.czxid as u64), sent).with_data(node.to_data())
    }

    /// Step 4: deletes our node now (1 round trip); true once it is gone.
    async fn leave(&self) -> bool {
        delete_node(&self.session, &self.entry.path).await
    }

    /// Deletes the other nodes with our owner token (1 round trip each):
    /// a duplicate of a create retried after a lost reply, or an earlier
    /// attempt's node on a session this client gave up on.
    async fn delete_others(&self, extra: &[String]) -> Result<(), Interrupt> {
        for name in extra {
            let path = format!("{}/{name}", self.dir);
            let deleted = self.session.client.delete(&path, None);
            match call_until(&self.session, self.deadline, deleted).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(self.interrupt(e, "deleting a stale queue node")),
            }
        }
        Ok(())
    }

    /// What a failed request means for this attempt: a connection blip is
    /// worth another look, an ended session a restart, anything else an
    /// error.
    fn interrupt(&self, e: zk::Error, doing: &str) -> Interrupt {
        let lost = self.session.is_lost();
        match e {
            zk::Error::ConnectionLoss if !lost => Interrupt::Relist,
            e if lost || session_ended(&e) => Interrupt::Restart(e.to_string()),
            e => Interrupt::Failed(to_lock_error(e, &format!("{doing} of `{}`", self.name))),
        }
    }
}
