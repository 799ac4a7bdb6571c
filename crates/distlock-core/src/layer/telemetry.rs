//! The names of every span, event and metric distlock emits, in one place.
//!
//! Spans: `distlock.acquire`, `distlock.extend`, `distlock.release`, each
//! with the fields `lock`, `backend` and `primitive` (an election is an
//! acquire with `primitive` = `leader`), `distlock.upgrade` (`lock`,
//! `backend`) and `distlock.acquire_many` (`backend`, `count`). Events, at
//! the end of each operation:
//! `distlock.acquired`, `distlock.not_acquired`, `distlock.acquire_failed`,
//! `distlock.extended`, `distlock.extend_failed`, `distlock.released`,
//! `distlock.release_failed` (and `distlock.release_deferred` with
//! `hold_ms` when a lock-at-least-for minimum keeps the lock held),
//! `distlock.upgraded`, `distlock.not_upgraded`, `distlock.upgrade_failed`,
//! `distlock.acquired_many`, `distlock.not_acquired_many`,
//! `distlock.acquire_many_failed`; from the guards: `distlock.lost`, and
//! `distlock.resigned` / `distlock.resign_failed` from a leadership; from
//! leader observers: `distlock.leader_changed`, `distlock.observe_failed`.
//! Backends add only their own internals, named `distlock.<backend>.<what>`
//! (a failover, a reconnect).
//!
//! Metrics (through the `metrics` facade; install any recorder), each
//! labelled `backend` and `primitive`:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `distlock_acquired_total` | counter | acquisitions |
//! | `distlock_not_acquired_total` | counter | acquires whose wait ran out |
//! | `distlock_acquire_errors_total` | counter | acquires that failed |
//! | `distlock_acquire_seconds` | histogram | duration of every acquire call |
//! | `distlock_wait_seconds` | histogram | for acquisitions: time from the call until the granting request went out |
//! | `distlock_extensions_total` | counter | extensions, labelled `outcome` = `ok`, `not_held`, `error` |
//! | `distlock_releases_total` | counter | releases, labelled `outcome` likewise |
//! | `distlock_upgrades_total` | counter | read-to-write upgrades, labelled `outcome` = `upgraded`, `timeout`, `error` (label `backend` only otherwise) |
//! | `distlock_lost_total` | counter | guards lost, labelled `reason` = `rejected`, `expired`, `session` |
//! | `distlock_cleanups_total` | counter | clean-ups of dropped operations spawned (label `backend` only) |
//! | `distlock_multi_acquires_total` | counter | multi-name acquires, labelled `outcome` = `acquired`, `not_acquired`, `error` (label `backend` only otherwise) |
//! | `distlock_resignations_total` | counter | leaderships given up, labelled `outcome` = `ok`, `not_held`, `error` (label `backend` only otherwise) |
//! | `distlock_leader_changes_total` | counter | changes of leader reported by observers (label `backend` only) |
//! | `distlock_observe_errors_total` | counter | failed reads of leader observers (label `backend` only) |
//!
//! Elections count in the acquire metrics with `primitive` = `leader`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Key, Label, Metadata};

use crate::error::LockError;
use crate::lease::{FencingToken, Lease};
use crate::name::LockName;

/// The `primitive` label of elections.
pub(crate) const LEADER: &str = "leader";

/// The metric key for a name and its label pairs, from a one-entry cache per
/// call site and thread: the values (backend, primitive, outcome) are the
/// same from one operation to the next, so the common case compares a few
/// addresses and builds nothing.
macro_rules! key {
    ($name:literal, [$(($k:literal, $v:expr)),+ $(,)?] $(,)?) => {{
        type Last = std::cell::Cell<Option<([(usize, usize); 3], &'static Key)>>;
        thread_local! {
            static LAST: Last = const { std::cell::Cell::new(None) };
        }
        let pairs = [$(($k, $v)),+];
        let mut id = [(0usize, 0usize); 3];
        for (slot, (_, v)) in id.iter_mut().zip(pairs.iter()) {
            *slot = (v.as_ptr() as usize, v.len());
        }
        match LAST.get() {
            Some((seen, key)) if seen == id => key,
            _ => {
                let key = shared_key($name, &pairs);
                LAST.set(Some((id, key)));
                key
            }
        }
    }};
}

/// Records the end of an acquire.
pub(crate) fn acquire_done(
    backend: &'static str,
    primitive: &'static str,
    name: &LockName,
    took: Duration,
    outcome: Result<Option<(&Lease, Duration)>, &LockError>,
) {
    histogram(
        key!(
            "distlock_acquire_seconds",
            [("backend", backend), ("primitive", primitive)]
        ),
        took,
    );
    match outcome {
        Ok(Some((lease, waited))) => {
            count(key!(
                "distlock_acquired_total",
                [("backend", backend), ("primitive", primitive)]
            ));
            histogram(
                key!(
                    "distlock_wait_seconds",
                    [("backend", backend), ("primitive", primitive)]
                ),
                waited,
            );
            tracing::debug!(
                lock = %name, backend, primitive, fencing = lease.fencing_token().0,
                waited_us = micros(waited), took_us = micros(took),
                "distlock.acquired"
            );
        }
        Ok(None) => {
            count(key!(
                "distlock_not_acquired_total",
                [("backend", backend), ("primitive", primitive)]
            ));
            tracing::debug!(lock = %name, backend, primitive, took_us = micros(took), "distlock.not_acquired");
        }
        Err(e) => {
            count(key!(
                "distlock_acquire_errors_total",
                [("backend", backend), ("primitive", primitive)]
            ));
            tracing::warn!(lock = %name, backend, primitive, error = %e, "distlock.acquire_failed");
        }
    }
}

/// Records the end of an upgrade.
pub(crate) fn upgrade_done(
    backend: &'static str,
    name: &LockName,
    took: Duration,
    result: &Result<Option<Lease>, LockError>,
) {
    let outcome = match result {
        Ok(Some(_)) => "upgraded",
        Ok(None) => "timeout",
        Err(_) => "error",
    };
    count(key!(
        "distlock_upgrades_total",
        [("backend", backend), ("outcome", outcome)]
    ));
    match result {
        Ok(Some(lease)) => tracing::debug!(
            lock = %name, backend, fencing = lease.fencing_token().0,
            took_us = micros(took), "distlock.upgraded"
        ),
        Ok(None) => {
            tracing::debug!(lock = %name, backend, took_us = micros(took), "distlock.not_upgraded")
        }
        Err(e) => tracing::warn!(lock = %name, backend, error = %e, "distlock.upgrade_failed"),
    }
}

/// Records the end of one lease's extension.
pub(crate) fn extend_done(lease: &Lease, backend: &'static str, result: &Result<Lease, LockError>) {
    let primitive = lease.mode().primitive();
    let outcome = outcome(result.as_ref().err());
    count(key!(
        "distlock_extensions_total",
        [
            ("backend", backend),
            ("primitive", primitive),
            ("outcome", outcome),
        ],
    ));
    match result {
        Ok(renewed) => tracing::trace!(
            lock = %lease.name(), backend, primitive, fencing = lease.fencing_token().0,
            remaining_ms = renewed.remaining().as_millis() as u64,
            "distlock.extended"
        ),
        Err(e) => tracing::warn!(
            lock = %lease.name(), backend, primitive, fencing = lease.fencing_token().0,
            error = %e, "distlock.extend_failed"
        ),
    }
}

/// Records the end of a release.
pub(crate) fn release_done(lease: &Lease, backend: &'static str, result: &Result<(), LockError>) {
    let primitive = lease.mode().primitive();
    let outcome = outcome(result.as_ref().err());
    count(key!(
        "distlock_releases_total",
        [
            ("backend", backend),
            ("primitive", primitive),
            ("outcome", outcome),
        ],
    ));
    match result {
        Ok(()) => tracing::debug!(
            lock = %lease.name(), backend, primitive, fencing = lease.fencing_token().0,
            "distlock.released"
        ),
        Err(e) => tracing::warn!(
            lock = %lease.name(), backend, primitive, fencing = lease.fencing_token().0,
            error = %e, "distlock.release_failed"
        ),
    }
}

/// Records a guard's loss.
pub(crate) fn lost(
    backend: &'static str,
    lease: &Lease,
    reason_label: &'static str,
    reason: &dyn std::fmt::Display,
) {
    let primitive = lease.mode().primitive();
    count(key!(
        "distlock_lost_total",
        [
            ("backend", backend),
            ("primitive", primitive),
            ("reason", reason_label),
        ],
    ));
    tracing::warn!(
        lock = %lease.name(), backend = lease.backend(), primitive,
        fencing = lease.fencing_token().0, reason = %reason,
        "distlock.lost"
    );
}

/// Records the end of a multi-name acquire of `names` names.
pub(crate) fn acquire_many_done(
    backend: &'static str,
    names: usize,
    took: Duration,
    result: &Result<Option<Vec<Lease>>, LockError>,
) {
    let outcome = match result {
        Ok(Some(_)) => "acquired",
        Ok(None) => "not_acquired",
        Err(_) => "error",
    };
    count(key!(
        "distlock_multi_acquires_total",
        [("backend", backend), ("outcome", outcome)]
    ));
    match result {
        Ok(Some(leases)) => tracing::debug!(
            backend,
            count = names,
            taken = leases.len(),
            took_us = micros(took),
            "distlock.acquired_many"
        ),
        Ok(None) => tracing::debug!(
            backend,
            count = names,
            took_us = micros(took),
            "distlock.not_acquired_many"
        ),
        Err(e) => {
            tracing::warn!(backend, count = names, error = %e, "distlock.acquire_many_failed")
        }
    }
}

/// Records a leader giving up its leadership.
pub(crate) fn resigned(
    backend: &'static str,
    name: &LockName,
    term: FencingToken,
    result: &Result<(), LockError>,
) {
    let outcome = outcome(result.as_ref().err());
    count(key!(
        "distlock_resignations_total",
        [("backend", backend), ("outcome", outcome)]
    ));
    match result {
        Ok(()) => tracing::info!(lock = %name, backend, term = term.0, "distlock.resigned"),
        Err(e) => {
            tracing::warn!(lock = %name, backend, term = term.0, error = %e, "distlock.resign_failed")
        }
    }
}

/// Records a change of leader an observer reports: `leader` is its
/// identity and term, `None` when the name is vacant.
pub(crate) fn leader_changed(
    backend: &'static str,
    name: &LockName,
    leader: Option<(Option<&str>, FencingToken)>,
) {
    count(key!(
        "distlock_leader_changes_total",
        [("backend", backend)]
    ));
    match leader {
        Some((identity, term)) => tracing::info!(
            lock = %name, backend, identity = identity.unwrap_or(""), term = term.0,
            "distlock.leader_changed"
        ),
        None => tracing::info!(lock = %name, backend, "distlock.leader_changed"),
    }
}

/// Records a leader observer's failed read.
pub(crate) fn observe_failed(backend: &'static str, name: &LockName, error: &LockError) {
    count(key!(
        "distlock_observe_errors_total",
        [("backend", backend)]
    ));
    tracing::warn!(lock = %name, backend, error = %error, "distlock.observe_failed");
}

/// Records a clean-up of a dropped operation being spawned.
pub(crate) fn cleanup(backend: &'static str) {
    count(key!("distlock_cleanups_total", [("backend", backend)]));
}

/// Where every metric is recorded from (for recorders that filter on it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The metric key for `name` with these label pairs, built once per
/// distinct key and kept for the life of the process: keys are few
/// (metrics × backends × primitives × outcomes), and a built key spares every
/// operation an allocation and a hash.
fn shared_key(name: &'static str, pairs: &[(&'static str, &'static str)]) -> &'static Key {
    type Shared = Mutex<HashMap<(&'static str, Vec<(&'static str, &'static str)>), &'static Key>>;
    static SHARED: OnceLock<Shared> = OnceLock::new();
    crate::sync::lock(SHARED.get_or_init(Default::default))
        .entry((name, pairs.to_vec()))
        .or_insert_with(|| {
            let labels: Vec<Label> = pairs
                .iter()
                .map(|(k, v)| Label::from_static_parts(k, v))
                .collect();
            Box::leak(Box::new(Key::from_parts(name, labels)))
        })
}

fn count(key: &Key) {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
}

fn histogram(key: &Key, value: Duration) {
    metrics::with_recorder(|r| {
        r.register_histogram(key, &METADATA)
            .record(value.as_secs_f64())
    });
}

fn outcome(err: Option<&LockError>) -> &'static str {
    match err {
        None => "ok",
        Some(e) if e.is_not_held() => "not_held",
        Some(_) => "error",
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
