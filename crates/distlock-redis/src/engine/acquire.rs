//! One acquire attempt on every instance, in named steps: run the acquire
//! script on each instance, count the quorum (per permit slot for Redlock
//! permits), settle the fencing token, grant — or undo the partial hold and
//! say why not.
//!
//! Round trips per attempt: one (all instances in parallel); for Redlock one
//! more when the fencing counters of the granting quorum disagree, one more
//! to give back a partial hold, and one more when instances gave a Redlock
//! permit on different slots.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use distlock_core::validity::valid_until;
use distlock_core::waiting::Attempt;
use distlock_core::{FencingToken, Grant, LockError, Mode, Result};
use futures::future::join_all;
use redis::ScriptInvocation;

use crate::instance::CallError;

use super::acquisition::Acquisition;
use super::hold::Hold;
use super::{ttl_millis, Engine};

/// What one instance answered to an acquire attempt.
enum Vote {
    /// Taken; the instance's fencing counter after its INCR, and the permit
    /// slot it gave (Redlock permits).
    Granted { counter: u64, slot: Option<u32> },
    /// Someone else holds it, for about this much longer.
    Held(Option<Duration>),
    /// A permit request met permits of this other count.
    Mismatch(u32),
    /// An upgrade whose reader hold is gone.
    Gone,
    /// No usable answer.
    Failed(CallError),
}

impl Vote {
    /// True when the instance certainly left nothing held for us.
    fn holds_nothing(&self) -> bool {
        matches!(self, Vote::Held(_) | Vote::Mismatch(_) | Vote::Gone)
    }
}

/// What one attempt draws once and sends to every instance alike.
struct Drawn {
    /// Redlock: the fencing token proposed (see [`Engine::proposed_token`]).
    proposal: String,
    /// Redlock permits: where the search for a free slot starts (modulo
    /// the permit count), the same on every instance so they agree.
    first_slot: u64,
}

/// The instances that granted, each with its counter and permit slot.
type Granted = Vec<(usize, u64, Option<u32>)>;

impl Engine {
    /// One acquire attempt on every instance in parallel.
    ///
    /// The hold is ours when a quorum granted it (the same permit slot, for
    /// Redlock permits), the fencing token is settled on a quorum, and
    /// validity remains after the round trips. Otherwise the partial hold
    /// is given back and the attempt reports the holder's remaining ttl (or
    /// a short pause after a split vote), or the refusal for good.
    pub(super) async fn attempt(&self, acq: &Acquisition) -> Result<Attempt> {
        acq.arm_undo();
        let sent = Instant::now();
        let votes = self.run_acquire_script(acq).await;
        let granted = granted(&votes);
        let split = by_slot(&granted);
        if let Some(grant) = self
            .grant_if_quorum(acq, split.slot, &split.winners, sent)
            .await
        {
            self.release_strays(acq, &split.strays).await;
            return Ok(Attempt::Acquired(grant));
        }
        let clean = if self.keeps_partial_hold(acq, &votes, &granted) {
            self.shorten(acq, &granted).await;
            false
        } else {
            self.undo_failed_quorum(acq, &votes).await
        };
        if votes
            .iter()
            .any(|v| matches!(v, Vote::Mismatch(_) | Vote::Gone))
        {
            acq.left_queue(); // the script took us out of the queue
        }
        acq.settle_undo(clean);
        self.refusal(acq, votes, !granted.is_empty())
    }

    /// Step 1: the acquire script on every instance (one round trip, in
    /// parallel), each answer read as a vote. With `replicas`, a grant is
    /// followed by a `WAIT` for them (one more round trip); one too few
    /// replicas acknowledged is a failed vote, so the hold is given back.
    async fn run_acquire_script(&self, acq: &Acquisition) -> Vec<Vote> {
        let drawn = Drawn {
            proposal: self.proposed_token(),
            first_slot: random(),
        };
        let invocations: Vec<ScriptInvocation<'_>> = (0..self.instances.len())
            .map(|i| self.acquire_invocation(acq, i, &drawn))
            .collect();
        let timeout = self.instance_timeout(acq.ttl);
        let (acks, granted) = (self.acks(), |r: &Vec<i64>| r.first() == Some(&1));
        let answers = join_all(
            self.instances
                .iter()
                .zip(&invocations)
                .map(|(i, invocation)| {
                    i.invoke_acked(invocation, &acq.keys.lock, acks, granted, timeout)
                }),
        )
        .await;
        answers.into_iter().map(Self::read_vote).collect()
    }

    /// The acquire script's call on instance `index`: for a request that
    /// queues (fair mode) the queue-aware script (a caller that waits joins
    /// or refreshes its place, naming its client while the client's
    /// liveness channel is subscribed on that instance), for an upgrade the
    /// upgrade script; otherwise the plain script of the hold's kind. Every
    /// instance gets the same `drawn` values.
    fn acquire_invocation(
        &self,
        acq: &Acquisition,
        index: usize,
        drawn: &Drawn,
    ) -> ScriptInvocation<'_> {
        let proposal = drawn.proposal.as_str();
        let (keys, owner, ttl) = (&acq.keys, acq.owner.to_hex(), ttl_millis(acq.ttl));
        if self.queues(&acq.hold) || acq.upgrade {
            let queues = self.fair && acq.waits;
            if queues {
                acq.joins_queue();
            }
            let script = if acq.upgrade {
                &self.scripts.upgrade
            } else {
                &self.scripts.fair_acquire
            };
            let mut invocation = script.prepare_invoke();
            invocation
                .key(&keys.lock)
                .key(&keys.fence)
                .key(&keys.queue)
                .key(&keys.waiters)
                .key(&keys.holders)
                .key(&keys.channel)
                .key(&keys.holder)
                .arg(owner)
                .arg(ttl)
                .arg(if queues { "1" } else { "0" })
                .arg(ttl_millis(self.config.waiter_timeout));
            if !acq.upgrade {
                invocation.arg(acq.hold.mode()).arg(&acq.label);
            }
            invocation
                .arg(&self.alive_stem)
                .arg(self.notifier.alive_client(index).unwrap_or(""));
            if !acq.upgrade {
                invocation.arg(proposal).arg(&acq.ticket);
            }
            return invocation;
        }
        let script = match &acq.hold {
            Hold::Exclusive => &self.scripts.acquire,
            Hold::Member { .. } => &self.scripts.acquire_shared,
            Hold::Slot { .. } => &self.scripts.acquire_slot,
        };
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.fence)
            .key(&keys.holders)
            .arg(owner)
            .arg(ttl);
        match &acq.hold {
            Hold::Exclusive => {
                invocation
                    .key(&keys.holder)
                    .key(&keys.channel)
                    .arg(&acq.label);
            }
            Hold::Member { mode } => {
                invocation.arg(mode);
            }
            Hold::Slot { mode, limit, .. } => {
                invocation
                    .key(&keys.permits)
                    .arg(mode)
                    .arg(drawn.first_slot % u64::from(*limit));
            }
        }
        invocation.arg(proposal);
        invocation
    }

    /// One instance's answer as a vote.
    fn read_vote(answer: std::result::Result<Vec<i64>, CallError>) -> Vote {
        let reply = match answer {
            Err(e) => return Vote::Failed(e),
            Ok(reply) => reply,
        };
        match reply.as_slice() {
            [1, counter, rest @ ..] => Vote::Granted {
                counter: u64::try_from(*counter).unwrap_or(0),
                slot: rest.first().and_then(|s| u32::try_from(*s).ok()),
            },
            [-1, declared, ..] => Vote::Mismatch(u32::try_from(*declared).unwrap_or(0)),
            [-2, ..] => Vote::Gone,
            [_, pttl, ..] => Vote::Held(u64::try_from(*pttl).ok().map(Duration::from_millis)),
            _ => Vote::Failed(CallError::Redis(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected reply from the acquire script",
            )))),
        }
    }

    /// Steps 3–4: with a quorum of grants (of one slot), settle the fencing
    /// token and grant while validity remains after the round trips.
    async fn grant_if_quorum(
        &self,
        acq: &Acquisition,
        slot: Option<u32>,
        winners: &[(usize, u64)],
        sent: Instant,
    ) -> Option<Grant> {
        if winners.len() < self.quorum {
            return None;
        }
        let hold = acq.hold.on_slot(slot);
        let token = self.settle_fencing_token(acq, &hold, winners).await?;
        if valid_until(sent, acq.ttl) <= Instant::now() {
            return None;
        }
        Some(Grant::new(FencingToken(token), sent).with_data(hold.data(&acq.keys)))
    }

    /// Step 3: the fencing token is the highest counter among the granting
    /// instances. Instances where our own INCR gave that value record it;
    /// when fewer than a quorum did, it is written back to the others
    /// (raise-only, and only while we hold there; one more round trip), and
    /// an instance records it only if the write moved its counter up to it.
    /// Any two majorities intersect, so a grant requested after this one
    /// completed gets a higher counter; and since no two grants can move
    /// one instance's counter to the same value, readers granted together
    /// get distinct tokens. `None` when it could not be recorded on a quorum.
    async fn settle_fencing_token(
        &self,
        acq: &Acquisition,
        hold: &Hold,
        granted: &[(usize, u64)],
    ) -> Option<u64> {
        let token = granted.iter().map(|(_, c)| *c).max().unwrap_or(0);
        let at_token = granted.iter().filter(|(_, c)| *c == token).count();
        if at_token >= self.quorum {
            return Some(token);
        }
        let mut raise = self.scripts.raise_fence.prepare_invoke();
        raise
            .key(hold.owning_key(&acq.keys))
            .key(&acq.keys.fence)
            .key(&acq.keys.holders)
            .arg(acq.owner.to_hex())
            .arg(token)
            .arg(hold.fence_member(acq.owner));
        let timeout = self.instance_timeout(acq.ttl);
        let raised = join_all(
            granted
                .iter()
                .filter(|(_, c)| *c < token)
                .map(|(i, _)| self.instances[*i].invoke::<i64>(&raise, timeout)),
        )
        .await;
        let recorded = at_token + raised.iter().filter(|r| matches!(r, Ok(1))).count();
        (recorded >= self.quorum).then_some(token)
    }

    /// Step 5 (no grant, fair Redlock): whether to keep the partial hold
    /// rather than give it back. A queued waiter woken by the first
    /// instance that handed it the name may confirm there before the other
    /// instances have run the release (they still refuse, a quorum of
    /// them): giving its hold back would hand that instance to the next in
    /// line, whose confirmation would fail in turn. It keeps it instead —
    /// shortened to the waiter-liveness window, as a hand-over lives — and
    /// its next attempt, woken by the other hand-overs, confirms them all.
    /// Only every other time in a row, so that waiters that each keep one
    /// instance cannot stall each other; never with an instance unanswered.
    fn keeps_partial_hold(&self, acq: &Acquisition, votes: &[Vote], granted: &Granted) -> bool {
        let refused = votes.iter().filter(|v| matches!(v, Vote::Held(_))).count();
        let answered = votes.iter().all(|v| !matches!(v, Vote::Failed(_)));
        !self.single()
            && self.queues(&acq.hold)
            && acq.waits
            && !granted.is_empty()
            && refused >= self.quorum
            && answered
            && acq.keep_partial_hold()
    }

    /// Step 5 (a partial hold kept): shortens it to the waiter-liveness
    /// window (at most the ttl) on the instances that granted it, with the
    /// extend script (one round trip), so that it lives no longer than a
    /// hand-over unless the next attempt confirms it.
    async fn shorten(&self, acq: &Acquisition, granted: &Granted) {
        let life = ttl_millis(self.config.waiter_timeout.min(acq.ttl));
        let mut invocation = self.scripts.extend.prepare_invoke();
        invocation.key(acq.hold.owning_key(&acq.keys));
        if !matches!(acq.hold, Hold::Exclusive) {
            invocation.key(&acq.keys.holders);
        }
        invocation
            .arg(acq.hold.extend_kind())
            .arg(acq.owner.to_hex())
            .arg(acq.hold.member(acq.owner))
            .arg(life);
        let timeout = self.instance_timeout(acq.ttl);
        join_all(
            granted
                .iter()
                .map(|(i, _, _)| self.instances[*i].invoke::<Vec<i64>>(&invocation, timeout)),
        )
        .await;
    }

    /// Step 5 (Redlock permits, granted): gives back the other slots some
    /// instances gave us (one round trip, only when instances disagreed).
    async fn release_strays(&self, acq: &Acquisition, strays: &[(usize, Option<u32>)]) {
        join_all(strays.iter().map(|(i, slot)| {
            let hold = acq.hold.on_slot(*slot);
            async move {
                self.release_on(&[*i], &acq.keys, acq.owner, &hold, acq.ttl)
                    .await
            }
        }))
        .await;
    }

    /// Step 5 (no grant): gives back what we got, and what may have landed
    /// on an instance that did not answer (one round trip). True when
    /// nothing can be left held. An upgrade gives nothing back here: its
    /// undo (turning a writer back into the reader) stays armed instead.
    async fn undo_failed_quorum(&self, acq: &Acquisition, votes: &[Vote]) -> bool {
        let maybe_held: Vec<usize> = votes
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.holds_nothing())
            .map(|(i, _)| i)
            .collect();
        if maybe_held.is_empty() {
            return true;
        }
        if acq.upgrade {
            return false;
        }
        self.release_on(&maybe_held, &acq.keys, acq.owner, &acq.hold, acq.ttl)
            .await
            .iter()
            .all(std::result::Result::is_ok)
    }

    /// Step 6 (no grant): why not. An error when the request is refused for
    /// good (a permit count mismatch, an upgrade whose reader hold is gone),
    /// or when so many instances failed that a quorum is out of reach (or
    /// one refused our credentials); otherwise how long to wait before the
    /// next attempt.
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
                Vote::Mismatch(declared) => return Err(self.mismatch(acq, declared)),
                Vote::Gone => return Err(LockError::not_held(acq.name.as_str())),
                Vote::Granted { .. } => {}
            }
        }
        if let Some((_, e)) = failures
            .iter()
            .find(|(_, e)| matches!(e, CallError::Unreplicated { .. }))
        {
            let why = format!(
                "acquiring `{}`: granted, then given back: {}",
                acq.name,
                e.describe()
            );
            return Err(LockError::unavailable(self.backend, why));
        }
        let auth_failed = failures
            .iter()
            .any(|(_, e)| matches!(e, CallError::Auth(_)));
        if failures.len() > self.tolerated() || auth_failed {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("acquiring `{}`", acq.name), &failures));
        }
        // Refused by a quorum: someone holds it, and its release (or a
        // hand-over) wakes us. Otherwise a split vote between contenders (or
        // validity spent): retry after a short random pause so contenders
        // do not collide again — at once when queued, since the queues, not
        // the timing, decide who goes next (and the retry takes our place
        // back where our partial hold was given up).
        let contended = held < self.quorum && (split_vote || held == 0);
        acq.set_contended(contended);
        if contended {
            let pause = if self.queues(&acq.hold) && acq.waits {
                Duration::ZERO
            } else {
                contention_pause()
            };
            return Ok(Attempt::Held {
                remaining: Some(pause),
            });
        }
        Ok(Attempt::Held { remaining })
    }

    /// The refusal of a permit request meeting permits of `declared`.
    fn mismatch(&self, acq: &Acquisition, declared: u32) -> LockError {
        LockError::PermitMismatch {
            name: acq.name.to_string(),
            declared,
            requested: match acq.mode {
                Mode::Permit { limit } => limit,
                _ => 0,
            },
        }
    }
}

/// Step 2: the instances that granted, with their counters and slots.
fn granted(votes: &[Vote]) -> Granted {
    votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Vote::Granted { counter, slot } => Some((i, *counter, *slot)),
            _ => None,
        })
        .collect()
}

/// The grants of one attempt, split by permit slot.
#[derive(Debug, PartialEq, Eq)]
struct BySlot {
    /// The slot most instances gave (`None` for holds without slots).
    slot: Option<u32>,
    /// The instances that gave it, with their counters.
    winners: Vec<(usize, u64)>,
    /// The instances that gave another slot, and which.
    strays: Vec<(usize, Option<u32>)>,
}

/// Step 2 (Redlock permits): the slot most instances gave, its grants, and
/// the grants of other slots. Each instance gives one slot, so at most one
/// slot can have a majority. Holds without slots are one group.
fn by_slot(granted: &Granted) -> BySlot {
    let count = |slot: Option<u32>| granted.iter().filter(|(_, _, s)| *s == slot).count();
    let slot = granted
        .iter()
        .map(|(_, _, s)| *s)
        .max_by_key(|s| count(*s))
        .flatten();
    let mut split = BySlot {
        slot,
        winners: Vec::new(),
        strays: Vec::new(),
    };
    for (i, counter, s) in granted {
        if *s == slot {
            split.winners.push((*i, *counter));
        } else {
            split.strays.push((*i, *s));
        }
    }
    split
}

/// A random number (the standard library's randomly keyed hasher is the
/// random source).
fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// A random 1–10 ms pause after a split vote.
fn contention_pause() -> Duration {
    Duration::from_millis(1 + random() % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_most_instances_gave_wins() {
        let granted = vec![(0, 7, Some(2)), (1, 7, Some(1)), (3, 8, Some(2))];
        assert_eq!(
            by_slot(&granted),
            BySlot {
                slot: Some(2),
                winners: vec![(0, 7), (3, 8)],
                strays: vec![(1, Some(1))],
            }
        );
        let split = by_slot(&vec![(0, 1, None), (2, 1, None)]);
        assert_eq!(
            (split.slot, split.winners.len(), split.strays.len()),
            (None, 2, 0)
        );
    }
}
