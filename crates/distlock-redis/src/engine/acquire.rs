//! One acquire attempt on every instance, in named steps: run the acquire
//! script on each instance, count the quorum, settle the fencing token,
//! grant — or undo the partial hold and say why not.
//!
//! Round trips per attempt: one (all instances in parallel); for Redlock one
//! more when the fencing counters of the granting quorum disagree, and one
//! more to give back a partial hold.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::validity::valid_until;
use distlock_core::waiting::Attempt;
use distlock_core::{AcquireRequest, FencingToken, Grant, LockName, OwnerToken, Result};
use futures::future::join_all;
use redis::ScriptInvocation;

use crate::instance::CallError;
use crate::keys::LockKeys;

use super::{ttl_millis, Engine};

/// What one instance answered to an acquire attempt.
enum Vote {
    /// Taken; the instance's fencing counter after its INCR.
    Granted(u64),
    /// Someone else holds it, for about this much longer.
    Held(Option<Duration>),
    /// No usable answer.
    Failed(CallError),
}

/// The state of one acquire across its attempts.
pub(super) struct Acquisition {
    engine: Arc<Engine>,
    pub(super) name: LockName,
    pub(super) keys: LockKeys,
    /// The owner token the core drew for this acquire.
    pub(super) owner: OwnerToken,
    pub(super) ttl: Duration,
    /// The caller waits (fair mode: it joins the waiters' queue).
    pub(super) waits: bool,
    /// Gives back what an unfinished acquire may hold, or leaves the queue,
    /// when the acquire's future is dropped or its wait ran out.
    undo: Mutex<CleanupOnDrop>,
    /// Fair mode: we may have an entry in the waiters' queue.
    queued: AtomicBool,
    /// The last attempt got some instances but not a quorum (or its
    /// validity was spent): retry after a short random pause rather than
    /// waiting for a release message.
    contended: AtomicBool,
    /// Fair mode: the send time of the latest attempt that found the lock
    /// held, and the fencing counter it saw. A hand-over carrying a higher
    /// token happened after that attempt ran on the server, so after it was
    /// sent: the handed-over lease counts from there (conservatively).
    last_held: Mutex<Option<(Instant, u64)>>,
}

impl Acquisition {
    pub(super) fn new(engine: &Arc<Engine>, request: &AcquireRequest) -> Self {
        Acquisition {
            engine: engine.clone(),
            name: request.name.clone(),
            keys: engine.keys(&request.name),
            owner: request.owner,
            ttl: request.options.ttl,
            waits: request.options.wait.as_duration() != Some(Duration::ZERO),
            undo: Mutex::new(CleanupOnDrop::new(engine.backend, "acquire attempt")),
            queued: AtomicBool::new(false),
            contended: AtomicBool::new(false),
            last_held: Mutex::new(None),
        }
    }

    /// The lock is ours: nothing to give back.
    pub(super) fn finish(&self) {
        lock(&self.undo).disarm();
    }

    /// True when the last attempt lost a split vote.
    pub(super) fn contended(&self) -> bool {
        self.contended.load(Ordering::SeqCst)
    }

    /// Arms the undo before a round trip that may take the lock (or queue us).
    fn arm_undo(&self) {
        let mut undo = lock(&self.undo);
        if !undo.is_armed() {
            undo.arm(self.undo_task());
        }
    }

    /// After a failed attempt: nothing is left to undo when every partial
    /// hold was given back and we are not queued.
    fn settle_undo(&self, clean: bool) {
        if clean && !self.queued.load(Ordering::SeqCst) {
            lock(&self.undo).disarm();
        }
    }

    /// Fair mode: leave the queue (and release a lock handed to us); otherwise
    /// release the owner token on every instance. One round trip.
    fn undo_task(&self) -> impl Future<Output = ()> + Send + 'static {
        let (engine, keys, owner, ttl) =
            (self.engine.clone(), self.keys.clone(), self.owner, self.ttl);
        async move {
            if engine.fair {
                let _ = engine.abandon(&keys, owner, ttl).await;
            } else {
                let _ = engine.release_on(&engine.all(), &keys, owner, ttl).await;
            }
        }
    }

    /// Fair mode: the grant for a lock a release handed to us with fencing
    /// token `fence` (no round trip). It counts from the send time of our
    /// last attempt that found the lock held, which is before the hand-over;
    /// `None` when that leaves less than half the ttl (the next attempt then
    /// re-grants the lock to us, its holder, with a fresh expiry) or when the
    /// hand-over is older than that attempt.
    pub(super) fn handed_grant(&self, fence: u64) -> Option<Grant> {
        let (since, seen) = (*lock(&self.last_held))?;
        if fence <= seen {
            return None;
        }
        if valid_until(since, self.ttl) <= Instant::now() + self.ttl / 2 {
            return None;
        }
        tracing::trace!(
            lock = %self.name, fencing = fence, backend = self.engine.backend,
            "distlock.redis.handed_over"
        );
        Some(Grant::new(FencingToken(fence), since).with_data(self.keys.lock.clone()))
    }
}

impl Engine {
    /// One acquire attempt on every instance in parallel.
    ///
    /// The lock is ours when a quorum granted it, the fencing token is
    /// settled on a quorum, and validity remains after the round trips.
    /// Otherwise the partial hold is given back and the attempt reports the
    /// holder's remaining ttl (or a short pause after a split vote).
    pub(super) async fn attempt(&self, acq: &Acquisition) -> Result<Attempt> {
        acq.arm_undo();
        let sent = Instant::now();
        let votes = self.run_acquire_script(acq, sent).await;
        let granted = granted(&votes);
        if let Some(grant) = self.grant_if_quorum(acq, &granted, sent).await {
            return Ok(Attempt::Acquired(grant));
        }
        let clean = self.undo_failed_quorum(acq, &votes).await;
        acq.settle_undo(clean);
        self.refusal(acq, votes, !granted.is_empty())
    }

    /// Step 1: the acquire script on every instance (one round trip, in
    /// parallel), each answer read as a vote.
    async fn run_acquire_script(&self, acq: &Acquisition, sent: Instant) -> Vec<Vote> {
        let invocation = self.acquire_invocation(acq);
        let timeout = self.instance_timeout(acq.ttl);
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<Vec<i64>>(&invocation, timeout)),
        )
        .await;
        answers
            .into_iter()
            .map(|answer| self.read_vote(acq, sent, answer))
            .collect()
    }

    /// The acquire script's call: plain SET NX PX + INCR, or in fair mode the
    /// queue-aware script (a caller that waits joins or refreshes its place).
    fn acquire_invocation(&self, acq: &Acquisition) -> ScriptInvocation<'_> {
        let owner = acq.owner.to_hex();
        if self.fair {
            if acq.waits {
                acq.queued.store(true, Ordering::SeqCst);
            }
            let mut invocation = self.scripts.fair_acquire.prepare_invoke();
            invocation
                .key(&acq.keys.lock)
                .key(&acq.keys.fence)
                .key(&acq.keys.queue)
                .key(&acq.keys.waiters)
                .arg(owner)
                .arg(ttl_millis(acq.ttl))
                .arg(if acq.waits { "1" } else { "0" })
                .arg(ttl_millis(self.config.queue_ttl));
            invocation
        } else {
            let mut invocation = self.scripts.acquire.prepare_invoke();
            invocation
                .key(&acq.keys.lock)
                .key(&acq.keys.fence)
                .arg(owner)
                .arg(ttl_millis(acq.ttl));
            invocation
        }
    }

    /// One instance's answer as a vote; in fair mode a "held" answer also
    /// records the counter it saw (see [`Acquisition::handed_grant`]).
    fn read_vote(
        &self,
        acq: &Acquisition,
        sent: Instant,
        answer: std::result::Result<Vec<i64>, CallError>,
    ) -> Vote {
        let reply = match answer {
            Err(e) => return Vote::Failed(e),
            Ok(reply) => reply,
        };
        match reply.as_slice() {
            [1, counter, ..] => Vote::Granted(u64::try_from(*counter).unwrap_or(0)),
            [_, pttl, rest @ ..] => {
                if let (true, Some(counter)) = (self.fair, rest.first()) {
                    let seen = u64::try_from(*counter).unwrap_or(0);
                    *lock(&acq.last_held) = Some((sent, seen));
                }
                Vote::Held(u64::try_from(*pttl).ok().map(Duration::from_millis))
            }
            _ => Vote::Failed(CallError::Redis(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected reply from the acquire script",
            )))),
        }
    }

    /// Steps 2–4: with a quorum of grants, settle the fencing token and
    /// grant while validity remains after the round trips.
    async fn grant_if_quorum(
        &self,
        acq: &Acquisition,
        granted: &[(usize, u64)],
        sent: Instant,
    ) -> Option<Grant> {
        if granted.len() < self.quorum {
            return None;
        }
        let token = self.settle_fencing_token(acq, granted).await?;
        if valid_until(sent, acq.ttl) <= Instant::now() {
            return None;
        }
        Some(Grant::new(FencingToken(token), sent).with_data(acq.keys.lock.clone()))
    }

    /// Step 3: the fencing token is the highest counter among the granting
    /// instances. When fewer than a quorum of them already hold that value,
    /// it is written back to them (raise-only, and only while we hold the
    /// lock there; one more round trip) and must land on a quorum. Any two
    /// majorities intersect, so the next holder's counters start above it.
    /// `None` when it could not be recorded on a quorum.
    async fn settle_fencing_token(
        &self,
        acq: &Acquisition,
        granted: &[(usize, u64)],
    ) -> Option<u64> {
        let token = granted.iter().map(|(_, c)| *c).max().unwrap_or(0);
        let at_token = granted.iter().filter(|(_, c)| *c == token).count();
        if at_token >= self.quorum {
            return Some(token);
        }
        let mut raise = self.scripts.raise_fence.prepare_invoke();
        raise
            .key(&acq.keys.lock)
            .key(&acq.keys.fence)
            .arg(acq.owner.to_hex())
            .arg(token);
        let timeout = self.instance_timeout(acq.ttl);
        let raised = join_all(
            granted
                .iter()
                .map(|(i, _)| self.instances[*i].invoke::<i64>(&raise, timeout)),
        )
        .await;
        let recorded = raised.iter().filter(|r| matches!(r, Ok(1))).count();
        (recorded >= self.quorum).then_some(token)
    }

    /// Step 5 (no grant): gives back what we got, and what may have landed
    /// on an instance that did not answer (one round trip). True when
    /// nothing can be left held.
    async fn undo_failed_quorum(&self, acq: &Acquisition, votes: &[Vote]) -> bool {
        let maybe_held: Vec<usize> = votes
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Vote::Held(_)))
            .map(|(i, _)| i)
            .collect();
        if maybe_held.is_empty() {
            return true;
        }
        self.release_on(&maybe_held, &acq.keys, acq.owner, acq.ttl)
            .await
            .iter()
            .all(std::result::Result::is_ok)
    }

    /// Step 6 (no grant): why not. An error when so many instances failed
    /// that a quorum is out of reach (or one refused our credentials);
    /// otherwise how long to wait before the next attempt.
    fn refusal(&self, acq: &Acquisition, votes: Vec<Vote>, split_vote: bool) -> Result<Attempt> {
        let mut failures = Vec::new();
        let mut remaining: Option<Duration> = None;
        let mut held = 0;
        for (i, vote) in votes.into_iter().enumerate() {
            match vote {
                Vote::Failed(e) => failures.push((i, e)),
                Vote::Held(pttl) => {
                    held += 1;
                    if let Some(p) = pttl {
                        remaining = Some(remaining.map_or(p, |r| r.max(p)));
                    }
                }
                Vote::Granted(_) => {}
            }
        }
        let auth_failed = failures
            .iter()
            .any(|(_, e)| matches!(e, CallError::Auth(_)));
        if failures.len() > self.tolerated() || auth_failed {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("acquiring `{}`", acq.name), &failures));
        }
        let contended = split_vote || held == 0;
        acq.contended.store(contended, Ordering::SeqCst);
        if contended {
            // A split vote between contenders (or validity spent): retry
            // after a short random pause so contenders do not collide again.
            return Ok(Attempt::Held {
                remaining: Some(contention_pause()),
            });
        }
        Ok(Attempt::Held { remaining })
    }
}

/// Step 2: the instances that granted the lock, with their counters.
fn granted(votes: &[Vote]) -> Vec<(usize, u64)> {
    votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Vote::Granted(c) => Some((i, *c)),
            _ => None,
        })
        .collect()
}

/// A random 1–10 ms pause after a split vote (the standard library's
/// randomly keyed hasher is the random source).
fn contention_pause() -> Duration {
    let random = RandomState::new().build_hasher().finish();
    Duration::from_millis(1 + random % 10)
}
