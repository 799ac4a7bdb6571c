//! The names of every span, event and metric distlock emits, in one place.
//!
//! Spans: `distlock.acquire`, `distlock.extend`, `distlock.release`, each
//! with the fields `lock`, `backend` and `primitive`. Events, at the end of
//! each operation: `distlock.acquired`, `distlock.not_acquired`,
//! `distlock.acquire_failed`, `distlock.extended`, `distlock.extend_failed`,
//! `distlock.released`, `distlock.release_failed`; from the guards:
//! `distlock.lost`. Backends add only their own internals, named
//! `distlock.<backend>.<what>` (a failover, a reconnect).
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
//! | `distlock_lost_total` | counter | guards lost, labelled `reason` = `rejected`, `expired`, `session` |
//! | `distlock_cleanups_total` | counter | clean-ups of dropped operations spawned (label `backend` only) |

use std::time::Duration;

use crate::error::LockError;
use crate::lease::Lease;
use crate::name::LockName;

/// Records the end of an acquire.
pub(crate) fn acquire_done(
    backend: &'static str,
    primitive: &'static str,
    name: &LockName,
    took: Duration,
    outcome: Result<Option<(&Lease, Duration)>, &LockError>,
) {
    metrics::histogram!("distlock_acquire_seconds", "backend" => backend, "primitive" => primitive)
        .record(took.as_secs_f64());
    match outcome {
        Ok(Some((lease, waited))) => {
            metrics::counter!("distlock_acquired_total", "backend" => backend, "primitive" => primitive)
                .increment(1);
            metrics::histogram!("distlock_wait_seconds", "backend" => backend, "primitive" => primitive)
                .record(waited.as_secs_f64());
            tracing::debug!(
                lock = %name, backend, primitive, fencing = lease.fencing_token().0,
                waited_us = micros(waited), took_us = micros(took),
                "distlock.acquired"
            );
        }
        Ok(None) => {
            metrics::counter!("distlock_not_acquired_total", "backend" => backend, "primitive" => primitive)
                .increment(1);
            tracing::debug!(lock = %name, backend, primitive, took_us = micros(took), "distlock.not_acquired");
        }
        Err(e) => {
            metrics::counter!("distlock_acquire_errors_total", "backend" => backend, "primitive" => primitive)
                .increment(1);
            tracing::warn!(lock = %name, backend, primitive, error = %e, "distlock.acquire_failed");
        }
    }
}

/// Records the end of one lease's extension.
pub(crate) fn extend_done(lease: &Lease, backend: &'static str, result: &Result<Lease, LockError>) {
    let primitive = lease.mode().primitive();
    let outcome = outcome(result.as_ref().err());
    metrics::counter!("distlock_extensions_total", "backend" => backend, "primitive" => primitive, "outcome" => outcome)
        .increment(1);
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
    metrics::counter!("distlock_releases_total", "backend" => backend, "primitive" => primitive, "outcome" => outcome)
        .increment(1);
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
pub(crate) fn lost(lease: &Lease, reason_label: &'static str, reason: &dyn std::fmt::Display) {
    let backend = lease.backend().to_string();
    let primitive = lease.mode().primitive();
    metrics::counter!("distlock_lost_total", "backend" => backend, "primitive" => primitive, "reason" => reason_label)
        .increment(1);
    tracing::warn!(
        lock = %lease.name(), backend = lease.backend(), primitive,
        fencing = lease.fencing_token().0, reason = %reason,
        "distlock.lost"
    );
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
