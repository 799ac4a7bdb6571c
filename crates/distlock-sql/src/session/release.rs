//! Renewing and releasing leases under the session strategy.
//!
//! A lease is made of up to two parts, by mode and database:
//!
//! | lease | its session lock | its row (holders table) |
//! |---|---|---|
//! | mutex, writer | yes | no |
//! | reader, permit on PostgreSQL | yes (the shared gate) | yes |
//! | reader, permit on MySQL/MariaDB | yes (a presence slot) | yes |
//!
//! A session lock lives as long as its session: renewing it costs no round
//! trip while the session is known alive (the renewal reports when the
//! server last heard from it), one ping otherwise; on a session that is
//! gone (or on another client's) it is `NotHeld`. A row is renewed with
//! its ttl as under the table strategy. A lease is held only while every
//! part of it is.
//!
//! A leader's lease (labelled) has its label row besides its session lock
//! (see [`rows`](super::rows)): renewed with it (one statement), deleted
//! after its release (one statement).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use distlock_core::{Lease, LockError, Mode, Renewal, Result};

use super::connection::Failure;
use super::rows::{relabel, unlabel};
use super::take::leave;
use super::{is_labelled, SessionEngine};
use crate::store::Store;

/// The parts of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parts {
    /// Its session lock only.
    Session,
    /// Its session lock and its row.
    Both,
    /// Its row only.
    Row,
}

/// What `lease` is made of.
pub(crate) fn parts(lease: &Lease) -> Parts {
    match (lease.mode(), lease.data().is_empty()) {
        (Mode::Exclusive, _) => Parts::Session,
        (_, false) => Parts::Both,
        (_, true) => Parts::Row,
    }
}

/// Renews `lease` (see the module docs): no round trip for a session lock
/// on a session known alive, one statement for a row (a label row too),
/// the two at once.
pub(crate) async fn renew(
    engine: &SessionEngine,
    store: &Store,
    lease: &Lease,
    ttl: Duration,
) -> Result<Renewal> {
    match parts(lease) {
        Parts::Session if is_labelled(lease) => {
            let sent = Instant::now();
            let mut pinged = Pinged::default();
            let (session, label) = tokio::join!(
                engine.alive(lease, &mut pinged),
                relabel(engine, lease, ttl)
            );
            label?;
            Ok(Renewal::sent_at(session?.min(sent)))
        }
        Parts::Session => Ok(Renewal::sent_at(
            engine.alive(lease, &mut Pinged::default()).await?,
        )),
        Parts::Row => crate::renew::renew(store, lease, ttl).await,
        Parts::Both => {
            let mut pinged = Pinged::default();
            let (session, row) = tokio::join!(
                engine.alive(lease, &mut pinged),
                crate::renew::renew(store, lease, ttl)
            );
            Ok(Renewal::sent_at(session?.min(row?.sent)))
        }
    }
}

/// Renews a batch: one statement for every row in it (the table
/// strategy's batch), and no round trip for the session locks but one
/// ping per session not known alive, at the same time. Leaders' leases
/// (labelled, a few) are renewed one by one, at once, beside it.
pub(crate) async fn renew_batch(
    engine: &SessionEngine,
    store: &Store,
    batch: &[(Lease, Duration)],
) -> Vec<Result<Renewal>> {
    if !batch.iter().any(|(lease, _)| is_labelled(lease)) {
        return renew_unlabelled(engine, store, batch).await;
    }
    let (labelled, rest): (Vec<_>, Vec<_>) =
        (0..batch.len()).partition(|&i| is_labelled(&batch[i].0));
    let rest_batch: Vec<(Lease, Duration)> = rest.iter().map(|&i| batch[i].clone()).collect();
    let singles = labelled
        .iter()
        .map(|&i| renew(engine, store, &batch[i].0, batch[i].1));
    let (singles, rest_results) = tokio::join!(
        futures::future::join_all(singles),
        renew_unlabelled(engine, store, &rest_batch)
    );
    let mut out: Vec<Option<Result<Renewal>>> = batch.iter().map(|_| None).collect();
    for (i, result) in labelled.into_iter().zip(singles) {
        out[i] = Some(result);
    }
    for (i, result) in rest.into_iter().zip(rest_results) {
        out[i] = Some(result);
    }
    out.into_iter()
        .zip(batch)
        .map(|(result, (lease, _))| {
            result.unwrap_or_else(|| Err(LockError::not_held(lease.name().as_str())))
        })
        .collect()
}

/// [`renew_batch`] of leases without label rows.
async fn renew_unlabelled(
    engine: &SessionEngine,
    store: &Store,
    batch: &[(Lease, Duration)],
) -> Vec<Result<Renewal>> {
    let rows: Vec<(Lease, Duration)> = batch
        .iter()
        .filter(|(lease, _)| parts(lease) != Parts::Session)
        .cloned()
        .collect();
    let sessions = async {
        let mut pinged = Pinged::default();
        let mut out = Vec::with_capacity(batch.len());
        for (lease, _) in batch {
            out.push(match parts(lease) {
                Parts::Row => None,
                _ => Some(engine.alive(lease, &mut pinged).await),
            });
        }
        out
    };
    let (mut row_results, session_results) = tokio::join!(
        async {
            if rows.is_empty() {
                Vec::new()
            } else {
                crate::renew::renew_batch(store, &rows).await
            }
        },
        sessions
    );
    let mut row_results = row_results.drain(..);
    batch
        .iter()
        .zip(session_results)
        .map(|((lease, _), session)| {
            let row = (parts(lease) != Parts::Session).then(|| row_results.next());
            match (session, row) {
                (Some(s), None) => s.map(Renewal::sent_at),
                (None, Some(Some(r))) => r,
                (Some(s), Some(Some(r))) => Ok(Renewal::sent_at(s?.min(r?.sent))),
                _ => Err(LockError::not_held(lease.name().as_str())),
            }
        })
        .collect()
}

/// Releases `lease`: its session lock (one statement, none when other
/// local readers share it) and its row (one statement), at once.
pub(crate) async fn revoke(engine: &SessionEngine, store: &Store, lease: &Lease) -> Result<()> {
    let name = lease.name();
    let row_release = || async {
        let key = engine.key(name);
        store
            .release_holder(name, &key.row, &lease.owner().to_hex())
            .await
    };
    // Every case but a mutex's or writer's is boxed, so that theirs (the
    // most frequent) does not set up a future the size of the largest.
    let released = match parts(lease) {
        Parts::Session if is_labelled(lease) => {
            Box::pin(async {
                // The lock first: observers reading after the notice of the
                // label row's deletion find the name free (or the next
                // leader).
                let released = release_session_lock(engine, lease).await?;
                unlabel(engine, lease).await;
                Ok::<_, LockError>(released)
            })
            .await?
        }
        Parts::Session => release_session_lock(engine, lease).await?,
        Parts::Row => Box::pin(row_release()).await?,
        Parts::Both => {
            Box::pin(async {
                let (session, row) =
                    tokio::join!(release_session_lock(engine, lease), row_release());
                Ok::<_, LockError>(session? & row?)
            })
            .await?
        }
    };
    if released {
        Ok(())
    } else {
        Err(LockError::not_held(name.as_str()))
    }
}

/// Gives the lease's session lock back (or leaves a shared hold others
/// still share): whether the lease held it.
async fn release_session_lock(engine: &SessionEngine, lease: &Lease) -> Result<bool> {
    let Some(session) = engine.session_of(lease) else {
        return Ok(false);
    };
    let (key, gate) = engine.held(lease);
    // Bounded by the statement timeout (the give-back's).
    match leave(engine.backend, &session, &key, gate, lease.owner()).await {
        Ok(held) => Ok(held),
        // The session ended: its locks are free, the lease was lost.
        Err(Failure::Gone(_)) => Ok(false),
        Err(failure) => Err(engine.failed("releasing", &key, failure)),
    }
}

/// The sessions a batch pinged, and what each ping gave.
#[derive(Default)]
pub(crate) struct Pinged {
    seen: HashMap<u64, PingResult>,
}

/// What a ping of a session gave.
#[derive(Clone, Debug)]
pub(crate) enum PingResult {
    /// The server answered a ping sent then.
    Alive(Instant),
    /// The session is gone.
    Gone,
    /// No answer within the statement timeout.
    NoAnswer,
    /// The database refused the ping.
    Refused(String),
}

impl Pinged {
    /// The result of pinging session `id` by `ping`, pinging only once.
    pub async fn once<F>(&mut self, id: u64, ping: F) -> PingResult
    where
        F: std::future::Future<Output = PingResult>,
    {
        if let Some(seen) = self.seen.get(&id) {
            return seen.clone();
        }
        let result = ping.await;
        self.seen.insert(id, result.clone());
        result
    }
}
