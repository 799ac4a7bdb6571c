//! Acquire, in every mode, and upgrade: the queue recipe.
//!
//! 1. [`create`]: list the directory, then create `<dir>/<owner
//!    token>-<mode tag><sequence>`, ephemeral and sequential (the tag is
//!    empty for exclusive, `s-` for shared, `p<limit>-` for a permit) — as
//!    a holder when nothing listed would keep it from holding, else marked
//!    as a waiter ([`claim`](mod@claim)). A clean-up that deletes it (found by owner
//!    token, so also when the create's reply was lost) is armed before the
//!    create is sent.
//! 2. List the directory: where does our node stand (see [`turn`])?
//! 3. It and every node before it fit together: the name is ours (a marked
//!    node claims its turn first); the fencing token is our node's creation
//!    zxid.
//! 4. Refused — a permit whose count differs from the earliest permit
//!    before it (`PermitMismatch`), an upgrade whose reader node is gone
//!    (`NotHeld`): delete our node, then report.
//! 5. Out of time: delete our node and report "not acquired".
//! 6. Otherwise (marking our node if it was created as a holder) [`watch`]
//!    the nodes that decide our turn and sleep until one of them changes;
//!    then back to 2. Meanwhile a marked node's contender keeps a
//!    [`Lookout`] on the turns ahead of it, and whoever
//!    deletes a node of the line checks the turns it let in
//!    ([`hand_over`]): a turn not claimed within its window is passed over.
//!
//! If the session ends on the way (our node goes with it), the attempt
//! starts over on a new session, losing its place in line, while the wait
//! allows. It keeps the request's owner token, so a node of the earlier
//! attempt that the server has not expired yet looks like ours: step 2
//! deletes every node with our owner token but the one this attempt
//! created before our node may count.
//!
//! **Upgrade** queues a writer node with the reader's owner token *behind*
//! the reader node, which stays. Everyone else sees a writer in line: later
//! readers and writers wait behind it. The writer node holds once the only
//! node before it is our own reader node (every other holder left), at
//! which point the reader and writer nodes together are an exclusive hold
//! no one came in between. The reader node stays until the writer hold is
//! released (the lease carries both), so no round trip is needed to finish
//! the upgrade and a dropped upgrade only has to delete its writer node.

mod claim;
mod create;
mod hand_over;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::{
    AcquireRequest, FencingToken, Grant, Lease, Liveness, LockError, LockName, Mode, Result, Wait,
};
use tokio::sync::watch as channel;
use zookeeper_client as zk;

use crate::cleanup::{delete_node, remove_queue_node, remove_queue_nodes};
use crate::error::{session_ended, to_lock_error, BACKEND};
use crate::node_data::NodeData;
use crate::queue::{child_name, LeaseNode, LockTree};
use crate::rpc::{call_until, call_while_live};
use crate::session::Session;
use crate::sessions::Sessions;
use crate::turn::{place, Place, Seat};

use claim::{born_waiting, claim, mark, waiting, waiting_data, Claim};
use create::QueueEntry;
use hand_over::{then_hand_on, Lookout};
use watch::{Watch, Woken};

pub(crate) use claim::window_of;

/// Checks in the background that the contenders a deletion in `dir` let in
/// claim their turn within their window, passing over those that do not
/// (see [`hand_over`]).
///
/// Round trips: one list and one multi-read; more only for a node that has
/// not claimed its turn (in the background).
pub(crate) fn hand_on_turns(session: Arc<Session>, dir: String) {
    hand_over::spawn(session, dir);
}

/// What an acquire queues for.
struct Want<'a> {
    name: &'a LockName,
    /// The name's directory.
    dir: String,
    /// Our owner token, in hex: the first part of our node's name.
    owner: String,
    mode: Mode,
    /// For an upgrade: our reader node (full path), left in line.
    reader: Option<String>,
    /// Our node's data: the holder label, if any (see `node_data`).
    data: Vec<u8>,
    /// Our node's data while it waits, and our window: `None` for an
    /// upgrade (its reader holds already) and without waiter claims.
    waiting: Option<(Vec<u8>, Duration)>,
}

impl Want<'_> {
    /// The reader node's child name, for an upgrade.
    fn reader_child(&self) -> Option<String> {
        self.reader.as_deref().map(|r| child_name(r).to_string())
    }
}

/// Takes `request.name` in `request.mode`, waiting in line up to its wait;
/// see the [module docs](self) for the steps.
pub(crate) async fn grant(
    sessions: &Sessions,
    tree: &LockTree,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let mut want = Want {
        name: &request.name,
        dir: tree.dir(&request.name),
        owner: request.owner.to_hex(),
        mode: request.mode,
        reader: None,
        data: NodeData::labelled(request.label.as_deref()),
        // An acquire that does not wait never waits in line.
        waiting: match request.options.wait {
            Wait::NoWait => None,
            _ => waiting(sessions),
        },
    };
    take_turns(sessions, tree, &mut want, request, None).await
}

/// Turns the shared hold `lease` exclusive: queues a writer node behind its
/// reader node and waits until no other node is before it (see the
/// [module docs](self)).
pub(crate) async fn upgrade(
    sessions: &Sessions,
    tree: &LockTree,
    lease: &Lease,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let reader = LeaseNode::from_lease(&tree.base, lease)?;
    let mut want = Want {
        name: &request.name,
        dir: tree.dir(&request.name),
        owner: request.owner.to_hex(),
        mode: Mode::Exclusive,
        reader: Some(reader.path.clone()),
        data: Vec::new(),
        waiting: None,
    };
    take_turns(sessions, tree, &mut want, request, Some(reader.session)).await
}

/// Attempts on successive sessions until one ends with the lock, out of
/// time, or refused. For an upgrade, `reader_session` is the session of
/// the reader node: once it is lost, so is the shared hold. A contender
/// passed over queues again with twice its window (up to the session
/// timeout), so that a client too slow to claim its turn within the window
/// is not passed over again and again.
async fn take_turns(
    sessions: &Sessions,
    tree: &LockTree,
    want: &mut Want<'_>,
    request: &AcquireRequest,
    reader_session: Option<i64>,
) -> Result<Option<Grant>> {
    let deadline = request.options.wait.deadline(Instant::now());
    loop {
        let reader_lost = reader_session
            .and_then(|id| sessions.liveness_of(id))
            .is_some_and(|rx| matches!(*rx.borrow(), Liveness::Lost(_)));
        if reader_lost {
            return Err(LockError::not_held(want.name.to_string()));
        }
        let session = sessions.current(deadline).await?;
        match attempt(session, tree, want, deadline).await? {
            Outcome::Acquired(grant) => return Ok(Some(grant)),
            Outcome::TimedOut => return Ok(None),
            Outcome::Restart(why) => {
                tracing::debug!(lock = %want.name, reason = %why, "distlock.zookeeper.acquire_restarts");
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(LockError::unavailable(
                        BACKEND,
                        format!("acquiring `{}`: lost its place in line ({why})", want.name),
                    ));
                }
            }
            Outcome::PassedOver => {
                let most = sessions.config().session_timeout();
                if let Some((data, window)) = &mut want.waiting {
                    *window = window.saturating_mul(2).min(most.max(*window));
                    *data = waiting_data(*window);
                }
                tracing::debug!(lock = %want.name, "distlock.zookeeper.passed_over");
            }
            Outcome::Refused(e) => return Err(e),
        }
    }
}

/// What one attempt on one session ended with.
enum Outcome {
    Acquired(Grant),
    TimedOut,
    /// Our queue node is gone (with its session, usually): start over.
    Restart(String),
    /// Our node was passed over (it did not claim its turn within its
    /// window, or went while the session lives): start over.
    PassedOver,
    /// Never to be granted (step 4); our node was deleted or is being
    /// deleted in the background.
    Refused(LockError),
}

/// One attempt on one session: queue a node (step 1), then take turns until
/// it holds, is refused, or is out of time.
async fn attempt(
    session: Arc<Session>,
    tree: &LockTree,
    want: &Want<'_>,
    deadline: Option<Instant>,
) -> Result<Outcome> {
    // Armed before the create is sent: dropping this future at any point
    // from here on removes whatever node we may have (but an upgrade's
    // reader node).
    let mut cleanup = CleanupOnDrop::armed(
        BACKEND,
        "queue node",
        then_hand_on(
            &session,
            want,
            remove_queue_nodes(
                session.clone(),
                want.dir.clone(),
                want.owner.clone(),
                want.reader_child(),
            ),
        ),
    );
    let marked = match born_waiting(&session, want, deadline).await {
        Ok(marked) => marked,
        Err(e) if session_ended(&e) => {
            cleanup.disarm();
            return Ok(Outcome::Restart(e.to_string()));
        }
        Err(e) => {
            let doing = format!("listing the queue of `{}`", want.name);
            return Err(to_lock_error(e, &doing));
        }
    };
    let data = match (&want.waiting, marked) {
        (Some((mark, _)), true) => mark.as_slice(),
        _ => want.data.as_slice(),
    };
    let entry = match create::queue_node(&session, tree, want, data, deadline).await {
        Ok(entry) => entry,
        Err(e) if session_ended(&e) => {
            // Whatever we created went with the session.
            cleanup.disarm();
            return Ok(Outcome::Restart(e.to_string()));
        }
        Err(e) => {
            let doing = format!("creating a queue node for `{}`", want.name);
            return Err(to_lock_error(e, &doing));
        }
    };
    // Now that the node is known, a clean-up deletes it first of all.
    cleanup.arm(then_hand_on(
        &session,
        want,
        remove_queue_node(
            session.clone(),
            entry.path.clone(),
            want.dir.clone(),
            want.owner.clone(),
            want.reader_child(),
        ),
    ));
    let lookout = want
        .waiting
        .as_ref()
        .map(|(_, window)| Lookout::new(&want.dir, &entry.name, *window));
    let mut contender = Contender {
        session,
        want,
        reader: want.reader_child(),
        mark: Mark {
            marked,
            version: entry.version,
        },
        entry,
        deadline,
        lookout,
    };
    let outcome = contender.until_it_holds().await?;
    match &outcome {
        Outcome::Acquired(_) => cleanup.disarm(),
        // Steps 4 and 5: leave the line now (1 round trip).
        Outcome::TimedOut | Outcome::Refused(_) if contender.leave().await => cleanup.disarm(),
        // The delete failed: `cleanup` retries in the background as it drops.
        Outcome::TimedOut | Outcome::Refused(_) => {}
        // Our node is gone (with its session, or deleted). The next attempt
        // queues with the same owner token, so a clean-up by owner token
        // must not run behind its back; that attempt deletes any node of
        // ours that still lingers (`Place::Others`).
        Outcome::Restart(_) | Outcome::PassedOver => cleanup.disarm(),
    }
    Ok(outcome)
}

/// Whether our node is marked as a waiter, and at which version.
#[derive(Clone, Copy, Debug)]
struct Mark {
    marked: bool,
    version: i32,
}

/// A queued node waiting for its turn.
struct Contender<'a> {
    session: Arc<Session>,
    want: &'a Want<'a>,
    /// For an upgrade, the reader node's child name.
    reader: Option<String>,
    entry: QueueEntry,
    mark: Mark,
    deadline: Option<Instant>,
    /// A waiter's look at the turns ahead of it.
    lookout: Option<Lookout>,
}

/// Why a turn did not end with the lock.
enum Interrupt {
    /// Look at the line again (a watched node went, the connection blinked).
    Relist,
    /// The session ended: start over on a new one.
    Restart(String),
    /// Our node went while the session lives: start over.
    PassedOver,
    /// The caller's deadline passed.
    TimedOut,
    /// Never to be granted: leave the line and report this.
    Refused(LockError),
    /// A request failed for good.
    Failed(LockError),
}

impl Contender<'_> {
    /// Takes turns (steps 2–6) until it holds, is refused, is out of time,
    /// or the session is gone.
    async fn until_it_holds(&mut self) -> Result<Outcome> {
        let mut live = self.session.liveness();
        loop {
            match self.turn(&mut live).await {
                Ok(grant) => return Ok(Outcome::Acquired(grant)),
                Err(Interrupt::Relist) => {}
                Err(Interrupt::TimedOut) => return Ok(Outcome::TimedOut),
                Err(Interrupt::Restart(why)) => return Ok(Outcome::Restart(why)),
                Err(Interrupt::PassedOver) => return Ok(Outcome::PassedOver),
                Err(Interrupt::Refused(e)) => return Ok(Outcome::Refused(e)),
                Err(Interrupt::Failed(e)) => return Err(e),
            }
        }
    }

    /// One turn: list the line (1 round trip); if our node may not hold yet,
    /// watch the nodes that decide its turn (1 round-trip time) and sleep
    /// until woken. A marked node claims its turn before it holds (1 round
    /// trip); a node created as a holder that must wait is marked first (1).
    async fn turn(&mut self, live: &mut channel::Receiver<Liveness>) -> Result<Grant, Interrupt> {
        let sent = Instant::now();
        let children = self.list().await?;
        let deciders = match place(&children, &self.seat()) {
            Place::Holds => {
                self.claim_turn().await?;
                return Ok(self.granted(sent));
            }
            Place::Waits { watch } => watch,
            Place::Gone if !self.session.is_lost() && self.want.waiting.is_some() => {
                // Passed over (or deleted by someone else): start over.
                return Err(Interrupt::PassedOver);
            }
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
            Place::Mismatch { declared } => {
                return Err(Interrupt::Refused(self.mismatch(declared)))
            }
            Place::ReaderGone => {
                let lost = LockError::not_held(self.want.name.to_string());
                return Err(Interrupt::Refused(lost));
            }
        };
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Interrupt::TimedOut);
        }
        self.mark_waiting().await?;
        let paths: Vec<String> = deciders
            .iter()
            .map(|n| format!("{}/{n}", self.want.dir))
            .collect();
        let watchers = match watch::deciders(&self.session, &paths, self.deadline).await {
            Ok(Watch::Set(watchers)) => watchers,
            Ok(Watch::Gone) => return Err(Interrupt::Relist),
            Err(e) => return Err(self.interrupt(e, "watching the queue")),
        };
        tracing::debug!(lock = %self.want.name, watching = ?deciders, "distlock.zookeeper.waiting");
        let lookout = self.lookout.as_mut();
        let woken = watch::until_woken(&self.session, watchers, live, self.deadline, lookout);
        Err(match woken.await {
            Woken::Changed => {
                if let Some(lookout) = self.lookout.as_mut() {
                    lookout.rearm();
                }
                Interrupt::Relist
            }
            Woken::SessionLost(why) => Interrupt::Restart(why),
            Woken::TimedOut => Interrupt::TimedOut,
        })
    }

    /// Our turn came: a marked node claims it (1 round trip); one passed
    /// over meanwhile starts over.
    async fn claim_turn(&mut self) -> Result<(), Interrupt> {
        if !self.mark.marked {
            return Ok(());
        }
        let (path, held) = (&self.entry.path, &self.want.data);
        match claim(&self.session, path, self.mark.version, held, self.deadline).await {
            Ok(Claim::Claimed) => {
                self.mark.marked = false;
                Ok(())
            }
            Ok(Claim::Gone) => Err(Interrupt::PassedOver),
            Err(e) => Err(self.interrupt(e, "claiming a turn")),
        }
    }

    /// A node created as a holder that must wait after all is marked as a
    /// waiter (1 round trip), so that it claims its turn.
    async fn mark_waiting(&mut self) -> Result<(), Interrupt> {
        let Some((data, _)) = &self.want.waiting else {
            return Ok(());
        };
        if self.mark.marked {
            return Ok(());
        }
        match mark(&self.session, &self.entry.path, data, self.deadline).await {
            Ok(version) => {
                self.mark = Mark {
                    marked: true,
                    version,
                };
                Ok(())
            }
            Err(zk::Error::NoNode) => Err(Interrupt::Relist),
            Err(e) => Err(self.interrupt(e, "marking a waiter")),
        }
    }

    /// Who we are in the line.
    fn seat(&self) -> Seat<'_> {
        Seat {
            owner: &self.want.owner,
            node: &self.entry.name,
            mode: self.want.mode,
            reader: self.reader.as_deref(),
        }
    }

    /// Step 2: the directory's children (1 round trip). A missing directory
    /// is an empty line.
    async fn list(&self) -> Result<Vec<String>, Interrupt> {
        let listed = call_while_live(
            &self.session,
            self.deadline,
            self.session.client.list_children(&self.want.dir),
        )
        .await;
        match listed {
            Ok(children) => Ok(children),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(self.interrupt(e, "listing the queue")),
        }
    }

    /// Step 3: the grant, with the instant the list that found us holding
    /// was sent.
    fn granted(&self, sent: Instant) -> Grant {
        let node = LeaseNode {
            path: self.entry.path.clone(),
            session: self.entry.session,
            reader: self.want.reader.clone(),
        };
        Grant::new(FencingToken(self.entry.czxid as u64), sent).with_data(node.to_data())
    }

    /// Step 4's refusal of a permit whose count differs from the name's.
    fn mismatch(&self, declared: u32) -> LockError {
        LockError::PermitMismatch {
            name: self.want.name.to_string(),
            declared,
            requested: match self.want.mode {
                Mode::Permit { limit } => limit,
                _ => 0,
            },
        }
    }

    /// Steps 4 and 5: deletes our node now (1 round trip); true once it is
    /// gone. The turns it may have held up are checked in the background.
    async fn leave(&self) -> bool {
        let gone = delete_node(&self.session, &self.entry.path).await;
        if gone && self.want.waiting.is_some() {
            hand_on_turns(self.session.clone(), self.want.dir.clone());
        }
        gone
    }

    /// Deletes the other nodes with our owner token (1 round trip each):
    /// a duplicate of a create retried after a lost reply, or an earlier
    /// attempt's node on a session this client gave up on.
    async fn delete_others(&self, extra: &[String]) -> Result<(), Interrupt> {
        for name in extra {
            let path = format!("{}/{name}", self.want.dir);
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
            e => Interrupt::Failed(to_lock_error(
                e,
                &format!("{doing} of `{}`", self.want.name),
            )),
        }
    }
}
