//! Taking a session lock for one attempt, cancel-safely, and what is taken
//! until it becomes a lease ([`Taken`]) or is given back.
//!
//! From the moment a take statement may run until its outcome is known, a
//! clean-up is armed ([`CleanupOnDrop`]): a waiting statement's connection
//! is closed (it holds nothing else; the server drops a lock granted to it
//! meanwhile, and a waiter whose client left leaves the server's queue); a
//! try is followed by a give-back on the same session, after it (harmless
//! if it took nothing). The key stays claimed on the session until that
//! clean-up has run, so no other request for it goes there meanwhile and a
//! lock can never be taken twice by one session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::cleanup::{CleanupOnDrop, DeferredCleanup, Task};
use distlock_core::waiting::request_bound;
use distlock_core::{OwnerToken, Result, Wait};

use super::connection::{heard, Claim, Failure, Session};
use super::db::{Gate, Outcome, Patience};
use super::keys::Key;
use super::pool::Route;
use super::SessionEngine;

/// What one take found.
pub(crate) enum Took {
    /// Not taken.
    Refused,
    /// Taken, with this fencing token, no earlier than this instant: when
    /// the statement was sent plus the time the server spent on it (a
    /// waiting take's wait), so that a lease granted after a long wait in
    /// the server is dated from its grant, not from the start of the wait.
    Taken(Taken, u64, Instant),
    /// MySQL's writer: taken, but readers or permit holders are still in.
    Readers(Taken),
    /// A reader joined its key's shared hold on this session.
    Joined(Joined),
}

/// How long the take of an attempt may wait in the server: not at all for
/// a try or past the deadline, else until the deadline.
pub(crate) fn patience(wait: Wait, deadline: Option<Instant>) -> Patience {
    match (wait, deadline) {
        (Wait::NoWait, _) => Patience::Try,
        (_, None) => Patience::Forever,
        (_, Some(d)) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Patience::Upto(left),
            _ => Patience::Try,
        },
    }
}

/// Takes `gate` of `key` for `owner`: routes the request to a session
/// (waiting for one, or opening one, within the caller's wait) and runs the
/// take there — waiting in the server as `patience` allows when the
/// session may be occupied, trying otherwise. With `own`, on a session of
/// its own, dedicated to the hold once it is kept (see
/// [`pool`](super::pool)). A session found gone is replaced once.
///
/// # Cancel safety
///
/// Cancel safe (see the module docs).
pub(crate) async fn take(
    engine: &SessionEngine,
    key: &Key,
    gate: Gate,
    (patience, own): (Patience, bool),
    owner: OwnerToken,
    deadline: Option<Instant>,
) -> Result<Took> {
    let mut replaced = false;
    loop {
        let until = Instant::now() + request_bound(engine.timeout, deadline);
        let until = deadline.map_or(until, |d| d.max(until));
        let route = engine
            .sessions
            .route(key, gate, (patience.waits(), own), owner, until)
            .await?;
        let claim = match route {
            None => return Ok(Took::Refused),
            Some(Route::Joined(session)) => {
                return Ok(Took::Joined(Joined::new(engine, session, key, gate, owner)))
            }
            Some(Route::Claimed(claim)) => claim,
        };
        match take_on(engine, claim, key, (gate, own), patience, deadline).await {
            Err(Failure::Gone(_)) if !replaced => replaced = true,
            Err(failure) => return Err(engine.failed("acquiring", key, failure)),
            Ok(took) => return Ok(took),
        }
    }
}

/// The take on `claim`'s session (see [`take`]).
async fn take_on(
    engine: &SessionEngine,
    claim: Arc<Claim>,
    key: &Key,
    (gate, own): (Gate, bool),
    patience: Patience,
    deadline: Option<Instant>,
) -> std::result::Result<Took, Failure> {
    let session = Arc::clone(claim.session());
    let (patience, limit, mut undo) = prepare(engine, &claim, key, gate, patience, deadline);
    let sent = Instant::now();
    // `sent` is before the statement's wait for its turn: the grant is
    // dated no later than it was.
    let answered = session.take(key, gate, patience, limit).await;
    // Not answered, the clean-up stays armed: it gives back, or closes the
    // session, which stays occupied until then.
    if let Err(failure @ Failure::NoAnswer(_)) = answered {
        return Err(failure);
    }
    // Answered: a waiting statement no longer occupies the session — unless
    // the session is the request's own, occupied until the hold is kept
    // (dedicated) or given back.
    if !own {
        claim.unblock();
    }
    let (outcome, granted) = match answered {
        Ok(answer) => (answer.outcome, heard(sent, answer.busy)),
        // The session ended: its locks are free.
        Err(failure @ Failure::Gone(_)) => {
            undo.disarm();
            return Err(failure);
        }
        // The statement failed, perhaps after taking the lock (a session
        // lock outlives the statement's transaction): the clean-up stays
        // armed.
        Err(failure) => return Err(failure),
    };
    if outcome == Outcome::Refused {
        undo.disarm();
        return Ok(Took::Refused);
    }
    // Taken: from now on the clean-up gives it back.
    undo.arm(Undone::GiveBack(Arc::clone(&claim), key.clone(), gate));
    let taken = Taken {
        claim,
        key: key.clone(),
        gate,
        own,
        undo,
    };
    Ok(match outcome {
        Outcome::Taken(token) => Took::Taken(taken, token, granted),
        _ => Took::Readers(taken),
    })
}

/// How a take on `claim` runs: on a session it occupies, a wait in the
/// server as `patience` says (bounded by the wait plus the statement
/// timeout; a try, on a session of its own, by the statement timeout cut
/// to the deadline), its clean-up closing the session; otherwise a try
/// bounded by the statement timeout (cut to the deadline), its clean-up
/// giving back.
fn prepare(
    engine: &SessionEngine,
    claim: &Arc<Claim>,
    key: &Key,
    gate: Gate,
    patience: Patience,
    deadline: Option<Instant>,
) -> (Patience, Option<Duration>, Undo) {
    let mut undo = DeferredCleanup::new(
        engine.backend,
        "session lock taken by a dropped acquire",
        undo,
    );
    if claim.is_blocking() {
        undo.arm(Undone::Close(Arc::clone(claim)));
        let limit = match patience {
            Patience::Upto(wait) => Some(wait + engine.timeout),
            Patience::Try => Some(request_bound(engine.timeout, deadline)),
            Patience::Forever => None,
        };
        (patience, limit, undo)
    } else {
        undo.arm(Undone::GiveBack(Arc::clone(claim), key.clone(), gate));
        let limit = request_bound(engine.timeout, deadline);
        (Patience::Try, Some(limit), undo)
    }
}

/// What a take or a release dropped half-way leaves to do.
pub(crate) enum Undone {
    /// Close the claim's session (its waiting statement was dropped).
    Close(Arc<Claim>),
    /// Give the key back through the gate on the claim's session.
    GiveBack(Arc<Claim>, Key, Gate),
}

/// A clean-up armed with what is left to do, if anything.
type Undo = DeferredCleanup<Undone>;

/// The work of a clean-up for `undone`.
fn undo(undone: Undone) -> Task {
    match undone {
        Undone::Close(claim) => Box::pin(close_quietly(claim)),
        Undone::GiveBack(claim, key, gate) => Box::pin(give_back_quietly(claim, key, gate)),
    }
}

/// A session lock taken for a request, not yet a lease: given back (in the
/// background, if dropped) unless kept.
pub(crate) struct Taken {
    claim: Arc<Claim>,
    key: Key,
    gate: Gate,
    /// Taken on a session of its own, dedicated to it once kept.
    own: bool,
    undo: Undo,
}

impl Taken {
    /// The session that holds it.
    pub fn session(&self) -> &Arc<Session> {
        self.claim.session()
    }

    /// Keeps it for `owner`: its session holds it until released (the
    /// session dedicated to it, if it is its own). The session's id.
    pub fn keep(mut self, owner: OwnerToken) -> u64 {
        self.claim.hold(self.gate, owner, self.own);
        self.undo.disarm();
        self.claim.session().id()
    }

    /// Gives it back now (in the background if this future is dropped).
    pub async fn give_back(mut self) {
        let outcome = self.claim.session().give_back(&self.key, self.gate).await;
        self.undo.disarm();
        log_give_back(&outcome);
    }
}

/// A reader joined to its key's shared hold (PostgreSQL) or presence slot
/// (MySQL) on a session, not yet a lease: leaves it (in the background, if
/// dropped) unless kept.
pub(crate) struct Joined {
    session: Arc<Session>,
    undo: CleanupOnDrop,
}

impl Joined {
    fn new(
        engine: &SessionEngine,
        session: Arc<Session>,
        key: &Key,
        gate: Gate,
        owner: OwnerToken,
    ) -> Self {
        let left = leave_quietly(
            engine.backend,
            Arc::clone(&session),
            key.clone(),
            gate,
            owner,
        );
        let undo = CleanupOnDrop::armed(
            engine.backend,
            "shared hold joined by a dropped acquire",
            left,
        );
        Joined { session, undo }
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Keeps it: the session's id.
    pub fn keep(mut self) -> u64 {
        self.undo.disarm();
        self.session.id()
    }

    /// Leaves the hold now (in the background if this future is dropped
    /// before it started).
    pub async fn leave(self) {
        let Joined { undo, .. } = self;
        undo.run_now().await;
    }
}

/// Takes `owner` off `key`'s hold through `gate` on `session`, giving the
/// lock back to the server when it was the last local owner (within the
/// statement timeout): whether `owner` held it.
///
/// # Cancel safety
///
/// A give-back dropped half-way is finished in the background.
pub(crate) async fn leave(
    backend: &'static str,
    session: &Arc<Session>,
    key: &Key,
    gate: Gate,
    owner: OwnerToken,
) -> std::result::Result<bool, Failure> {
    let claim = match session.leave(key.id, gate, owner) {
        None => return Ok(false),
        Some(None) => return Ok(true),
        Some(Some(claim)) => Arc::new(claim),
    };
    let mut undo = DeferredCleanup::new(
        backend,
        "session lock given back by a dropped release",
        undo,
    );
    undo.arm(Undone::GiveBack(Arc::clone(&claim), key.clone(), gate));
    let given = session.give_back(key, gate).await;
    undo.disarm();
    given
}

/// Closes a session whose waiting statement was dropped (it holds nothing
/// else); the claim ends after.
async fn close_quietly(claim: Arc<Claim>) {
    let session = claim.session();
    session.lose("a waiting acquire was dropped: its connection is closed");
    session.close_now();
}

/// Gives `gate` of `key` back on the claim's session, after whatever ran
/// there before; the claim ends after.
async fn give_back_quietly(claim: Arc<Claim>, key: Key, gate: Gate) {
    let outcome = claim.session().give_back(&key, gate).await;
    log_give_back(&outcome);
}

/// Takes `owner` off the shared hold or presence slot it joined.
async fn leave_quietly(
    backend: &'static str,
    session: Arc<Session>,
    key: Key,
    gate: Gate,
    owner: OwnerToken,
) {
    let outcome = leave(backend, &session, &key, gate, owner).await;
    log_give_back(&outcome);
}

/// Logs a give-back made for a clean-up.
fn log_give_back(outcome: &std::result::Result<bool, Failure>) {
    match outcome {
        Ok(true) => tracing::debug!("distlock.sql.cleanup_released"),
        Ok(false) => {}
        Err(e) => tracing::debug!(error = ?e, "distlock.sql.cleanup_failed"),
    }
}
