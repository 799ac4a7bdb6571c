//! Readers and semaphore permits under the session strategy: the table
//! strategy's holders rows decide among them (the core's
//! [`Mode::fits`](distlock_core::Mode::fits): readers together, at most
//! `limit` permits, a permit of another count refused), behind a gate on
//! the name's session lock that keeps them apart from writers.
//!
//! - PostgreSQL: the gate is the key's shared advisory lock, taken first
//!   (waiting in the server's queue, behind any writer that waits: writers
//!   are not starved) and held for the hold's life; the writer's exclusive
//!   lock conflicts with it. A reader that finds every usable session
//!   holding its key shared joins one of those holds, locally.
//! - MySQL/MariaDB: the gate is the name's `GET_LOCK`, held only around the
//!   grant of the row (a writer holding it keeps new readers out). Under
//!   it, before the row, the reader takes one of the name's presence slots
//!   — or joins the one a session of this backend holds — and keeps it
//!   with the hold; its lease lives by that session. The writer, after
//!   taking the `GET_LOCK`, looks for live rows only while some slot is
//!   held. When every slot is held by other sessions the reader waits as
//!   when the name is held (polling).
//!
//! Then one grant transaction of the table strategy adds the row. If the
//! table says wait (permits all taken, or readers and permits mixed), the
//! gate is given back and the request waits as the table strategy's do
//! (woken by `NOTIFY` on PostgreSQL, polling on MySQL). The fencing token
//! is drawn with the gate, after it is taken: above every writer's before,
//! below every writer's after.

use std::time::Instant;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::waiting::Attempt;
use distlock_core::{AcquireRequest, Grant, LockError, LockName, Mode, Result, Wait};

use super::db::Gate;
use super::keys::Key;
use super::take::{patience, take, Joined, Taken, Took};
use super::SessionEngine;
use crate::attempts::{log_cleanup, retry, Attempts, Dropped};
use crate::holds::Hold;
use crate::store::Store;
use crate::verdict::{self, Verdict};

/// A reader's or permit's gate, taken and not yet part of a lease.
enum Gated {
    /// Its own shared lock (PostgreSQL) or `GET_LOCK` (MySQL).
    Taken(Taken),
    /// A shared hold it joined (PostgreSQL).
    Joined(Joined),
}

impl Gated {
    /// Keeps the gate for `a`'s owner where it is held with the hold (its
    /// session's id), or gives it back where it is only held around the
    /// grant (`None`: the hold has no session) — one statement, during
    /// which the granted row is released in the background if this future
    /// is dropped.
    async fn keep(self, engine: &SessionEngine, a: &Attempts<'_>) -> Option<u64> {
        let owner = a.request.owner;
        match self {
            Gated::Joined(joined) => Some(joined.keep()),
            Gated::Taken(taken) if engine.keeps_shared_gate() => Some(taken.keep(owner)),
            Gated::Taken(taken) => {
                let (store, name) = (a.store.clone(), a.request.name.clone());
                let row = release_row(store, name, a.key.clone(), a.owner.clone());
                let mut undo =
                    CleanupOnDrop::armed(a.store.backend(), "hold taken by a dropped acquire", row);
                taken.give_back().await;
                undo.disarm();
                None
            }
        }
    }

    /// Keeps a presence slot taken or joined for `owner`: the session's id.
    fn hold(self, owner: distlock_core::OwnerToken) -> u64 {
        match self {
            Gated::Taken(taken) => taken.keep(owner),
            Gated::Joined(joined) => joined.keep(),
        }
    }

    /// Gives the gate back now.
    async fn give_back(self) {
        match self {
            Gated::Taken(taken) => taken.give_back().await,
            Gated::Joined(joined) => joined.leave().await,
        }
    }
}

/// Takes `request.name` as a reader or permit holder: the gate, then the
/// row, retried until granted or the wait ends.
///
/// # Cancel safety
///
/// Cancel safe: a dropped attempt's gate is given back in the background
/// (see [`take`](super::take)), and its row is released in the background
/// on the grant transaction's connection, after the transaction.
pub(crate) async fn grant(
    engine: &SessionEngine,
    store: &Store,
    request: &AcquireRequest,
) -> Result<Option<Grant>> {
    let Some(hold) = Hold::of(request.mode) else {
        return Err(LockError::invalid_options(format!(
            "a {} hold is not a reader's or a permit's",
            request.mode
        )));
    };
    let key = engine.key(&request.name);
    let owner = request.owner.to_hex();
    let a = Attempts::new(
        store,
        request,
        key.row.to_string(),
        owner,
        "reader's intent",
    );
    let deadline = request.options.wait.deadline(Instant::now());
    let subscription = match request.options.wait {
        Wait::NoWait => None,
        _ => store.subscribe().await?,
    };
    let attempt = || attempt(engine, &a, &key, hold, deadline);
    retry(&request.options, subscription, (&key.row, true), attempt).await
}

/// One attempt: the gate (one statement, waiting in the server when it
/// may), then one grant transaction.
async fn attempt(
    engine: &SessionEngine,
    a: &Attempts<'_>,
    key: &Key,
    hold: Hold,
    deadline: Option<Instant>,
) -> Result<Attempt> {
    let request = a.request;
    let how = (
        patience(request.options.wait, deadline),
        engine.needs_own_session(request),
    );
    let (gate, token) = match take(engine, key, Gate::Shared, how, request.owner, deadline).await? {
        Took::Taken(taken, token, _) => (Gated::Taken(taken), token),
        Took::Joined(joined) => match joined.session().token().await {
            Ok(token) => (Gated::Joined(joined), token),
            Err(failure) => return Err(engine.failed("acquiring", key, failure)),
        },
        Took::Refused | Took::Readers(_) => return Ok(Attempt::Held { remaining: None }),
    };
    let presence = match engine.marks_presence() {
        true => match mark(engine, key, request.owner, deadline).await? {
            Some(presence) => Some(presence),
            None => {
                gate.give_back().await;
                return Ok(Attempt::Held { remaining: None });
            }
        },
        false => None,
    };
    let (granted, verdict) = grant_row(a, hold).await?;
    if let Some(row) = granted {
        let session = gate.keep(engine, a).await;
        let session = match presence {
            Some(presence) => Some(presence.hold(request.owner)),
            None => session,
        };
        return Ok(Attempt::Acquired(
            engine.granted(token, row.sent, session, false),
        ));
    }
    if let Some(presence) = presence {
        presence.give_back().await;
    }
    gate.give_back().await;
    match verdict {
        Some(Verdict::Mismatch { declared }) => Err(LockError::PermitMismatch {
            name: request.name.to_string(),
            declared,
            requested: match request.mode {
                Mode::Permit { limit } => limit,
                _ => 0,
            },
        }),
        Some(Verdict::Wait { next, .. }) => Ok(Attempt::Held {
            remaining: Some(next),
        }),
        _ => Ok(Attempt::Held { remaining: None }),
    }
}

/// A presence slot of `key` for `owner` (MySQL): the one a session of this
/// backend holds for the name, joined, or a free one taken (one statement,
/// never waiting); `None` when every slot is held by other sessions (the
/// attempt then waits as when the name is held).
///
/// # Cancel safety
///
/// A slot taken or joined by a dropped future is given back or left in the
/// background.
async fn mark(
    engine: &SessionEngine,
    key: &Key,
    owner: distlock_core::OwnerToken,
    deadline: Option<Instant>,
) -> Result<Option<Gated>> {
    let how = (super::db::Patience::Try, false);
    let slot = key.presence();
    Ok(
        match take(engine, &slot, Gate::Presence, how, owner, deadline).await? {
            Took::Taken(taken, _, _) => Some(Gated::Taken(taken)),
            Took::Joined(joined) => Some(Gated::Joined(joined)),
            Took::Refused | Took::Readers(_) => None,
        },
    )
}

/// One grant transaction of the table strategy for the reader or permit
/// `hold`, on one connection of the pool, deciding by
/// [`verdict::for_hold`]: the grant (its token is the table's; the gate's
/// replaces it) and the verdict.
///
/// # Cancel safety
///
/// From the moment the transaction may commit until its outcome is known,
/// a clean-up is armed that releases the row in the background, on the
/// same connection, after the transaction (rolled back if still open).
async fn grant_row(a: &Attempts<'_>, hold: Hold) -> Result<(Option<Grant>, Option<Verdict>)> {
    let (mode, owner) = (a.request.mode, a.owner.as_str());
    let mut opened = a
        .open("hold taken by a dropped acquire", release_row_quietly)
        .await?;
    let judge = |state: &_| verdict::for_hold(mode, hold, owner, state);
    let decided = a.transact(&mut opened, judge).await?;
    Ok(decided)
}

/// Releases the owner's row, for an acquire dropped after its grant.
async fn release_row(store: Store, name: LockName, key: String, owner: String) {
    let released = store.release_holder(&name, &key, &owner).await;
    log_cleanup(store.backend(), &name, released);
}

/// Releases the owner's row on the attempt's connection, for a dropped
/// attempt: first rolls back the transaction if it was left open (the
/// connection then leaves the pool), then releases — a no-op unless the
/// transaction had committed a grant.
async fn release_row_quietly(d: Dropped) {
    let mut conn = d.conn.lock().await;
    let backend = conn.backend();
    let released = match conn.abandon_transaction(&d.name).await {
        Ok(()) => conn.release_holder(&d.name, &d.key, &d.owner).await,
        Err(e) => Err(e),
    };
    log_cleanup(backend, &d.name, released);
}
