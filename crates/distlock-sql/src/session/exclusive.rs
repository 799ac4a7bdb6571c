//! The mutex and the writer under the session strategy: one statement to
//! take (waiting in the server's queue when it may wait), one to release.
//!
//! PostgreSQL: `pg_advisory_lock` (or `pg_try_advisory_lock`) with the
//! token from the sequence in the same statement. Readers and permit
//! holders keep the key's shared lock, so the writer's exclusive request
//! waits for them, and new shared requests wait behind it: the writer
//! reads no table.
//!
//! MySQL/MariaDB: `GET_LOCK`, and in the same statement a look for live
//! readers' and permits' rows; while some live, the writer keeps the lock
//! (new readers need it for their grant) and asks again, polling with the
//! acquire's backoff, until they are gone or its wait ends.
//!
//! On both, the take looks in the same statement for a hold kept after its
//! release (lock-at-least-for, a row of the holders table) and waits for it
//! the same way; a leader's take stores its label row once it holds the
//! lock.

use std::time::{Duration, Instant};

use distlock_core::waiting::{poll_acquire, Attempt};
use distlock_core::{AcquireRequest, Grant, Result};

use super::db::{Gate, Outcome};
use super::keys::Key;
use super::take::{patience, take, Taken, Took};
use super::SessionEngine;

/// Takes `request.name` exclusively, waiting in the server for up to the
/// request's wait where a session may be occupied by the wait, polling
/// with tries otherwise.
///
/// # Cancel safety
///
/// Cancel safe (see [`take`](super::take)): a dropped wait closes its
/// connection; a dropped try, or a lock taken and not yet returned, is
/// given back in the background.
pub(crate) async fn grant(
    engine: &SessionEngine,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let key = engine.key(&request.name);
    let deadline = request.options.wait.deadline(Instant::now());
    poll_acquire(&request.options, || {
        attempt(engine, request, &key, deadline)
    })
    .await
}

/// One attempt: one take (a try, or a wait in the server).
async fn attempt(
    engine: &SessionEngine,
    request: &AcquireRequest,
    key: &Key,
    deadline: Option<Instant>,
) -> Result<Attempt> {
    let patience = patience(request.options.wait, deadline);
    let how = (patience, engine.needs_own_session(request));
    let took = take(engine, key, Gate::Exclusive, how, request.owner, deadline).await?;
    match took {
        Took::Taken(taken, token, granted) => {
            acquired(engine, request, key, taken, (token, granted)).await
        }
        // Boxed: rare (MySQL's writer meeting readers), and the largest
        // future of the take.
        Took::Readers(taken) => {
            Box::pin(readers_leave(engine, request, key, taken, deadline)).await
        }
        Took::Refused | Took::Joined(_) => Ok(Attempt::Held { remaining: None }),
    }
}

/// The lock taken for `request` with `token`, no earlier than `sent`, kept
/// as its lease (dated from `sent`); a labelled request's label row stored first
/// (one statement, see [`rows`](super::rows)), the lock given back if that
/// fails.
///
/// # Cancel safety
///
/// A dropped future gives the lock back, and deletes the label row, in
/// the background.
async fn acquired(
    engine: &SessionEngine,
    request: &AcquireRequest,
    key: &Key,
    taken: Taken,
    (token, sent): (u64, Instant),
) -> Result<Attempt> {
    let labelled = request.label.is_some();
    let taken = match &request.label {
        // Boxed: a leader's take only.
        Some(label) => Box::pin(labelled_by(engine, key, request, label, (taken, token))).await?,
        None => taken,
    };
    let session = taken.keep(request.owner);
    Ok(Attempt::Acquired(engine.granted(
        token,
        sent,
        Some(session),
        labelled,
    )))
}

/// `taken` with its label row stored (one statement); given back if that
/// fails.
///
/// # Cancel safety
///
/// A dropped future gives the lock back, and deletes the label row, in
/// the background.
async fn labelled_by(
    engine: &SessionEngine,
    key: &Key,
    request: &AcquireRequest,
    label: &str,
    (taken, token): (Taken, u64),
) -> Result<Taken> {
    match super::rows::store_label(engine, key, request, label, token).await {
        Ok(()) => Ok(taken),
        Err(e) => {
            taken.give_back().await;
            Err(e)
        }
    }
}

/// The writer, holding the name's session lock while rows are in its way
/// (MySQL: readers or permit holders; either database: a hold kept after
/// its release, lock-at-least-for): asks again (one statement each time, polling
/// with the acquire's backoff, never sleeping past the soonest of them)
/// until they are gone — then the lock is the writer's, with a token drawn
/// by that statement — or the wait ends and it gives the lock back.
///
/// # Cancel safety
///
/// A dropped future gives the lock back in the background.
async fn readers_leave(
    engine: &SessionEngine,
    request: &AcquireRequest,
    key: &Key,
    taken: Taken,
    deadline: Option<Instant>,
) -> Result<Attempt> {
    let mut backoff = request.options.backoff.delays();
    let session = taken.session().clone();
    loop {
        let (outcome, sent) = match session.readers_left(key).await {
            Ok(answer) => answer,
            Err(failure) => return Err(engine.failed("acquiring", key, failure)),
        };
        let left = match outcome {
            Outcome::Taken(token) => {
                return acquired(engine, request, key, taken, (token, sent)).await;
            }
            Outcome::Readers(left) => left,
            Outcome::Refused => None,
        };
        let now = Instant::now();
        let mut nap = backoff.next_delay().min(left.unwrap_or(Duration::MAX));
        if let Some(deadline) = deadline {
            if now >= deadline {
                taken.give_back().await;
                return Ok(Attempt::Held { remaining: None });
            }
            nap = nap.min(deadline - now);
        }
        tokio::time::sleep(nap).await;
    }
}
