//! The checks and the lease arithmetic of the layer, used by the single
//! operations (`checked`) and the batches (`batch`) alike.

use std::time::{Duration, Instant};

use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};
use crate::lease::Lease;
use crate::mode::Mode;
use crate::options::{validate_ttl, AcquireOptions};
use crate::validity::{server_hold, valid_until};

use super::{AcquireRequest, Grant, Renewal, MAX_LABEL_LEN};

/// Checks a holder label (a leader's identity): non-empty, at most
/// [`MAX_LABEL_LEN`] bytes of UTF-8, no NUL; `InvalidConfig` otherwise.
///
/// ```
/// use distlock_core::layer::check_label;
/// assert!(check_label("node-7").is_ok());
/// assert!(check_label("").is_err());
/// assert!(check_label(&"x".repeat(257)).is_err());
/// ```
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty() {
        return Err(LockError::invalid_config(
            "a leader identity (holder label) must not be empty",
        ));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(LockError::invalid_config(format!(
            "a leader identity (holder label) must be at most {MAX_LABEL_LEN} bytes, got {}",
            label.len()
        )));
    }
    if label.contains('\0') {
        return Err(LockError::invalid_config(
            "a leader identity (holder label) must not contain NUL",
        ));
    }
    Ok(())
}

/// Refuses a label the backend cannot store, and a bad one.
pub(crate) fn check_elect(backend: &'static str, caps: &Capabilities, label: &str) -> Result<()> {
    if !caps.labels {
        return Err(LockError::Unsupported {
            backend,
            operation: "holder labels (leader identities)",
        });
    }
    check_label(label)
}

/// Refuses options outside the backend's limits and modes it does not serve.
pub(crate) fn check_acquire(
    backend: &'static str,
    caps: &Capabilities,
    mode: Mode,
    options: &AcquireOptions,
) -> Result<()> {
    if options.at_least.is_some() && !caps.at_least {
        return Err(LockError::Unsupported {
            backend,
            operation: "holding a released lock for a minimum time (at_least)",
        });
    }
    let served = match mode {
        Mode::Exclusive => true,
        Mode::Shared => caps.shared,
        Mode::Permit { limit } => {
            if limit == 0 {
                return Err(LockError::invalid_options(
                    "a semaphore needs at least one permit",
                ));
            }
            caps.semaphore
        }
    };
    if !served {
        return Err(LockError::Unsupported {
            backend,
            operation: match mode {
                Mode::Shared => "shared (reader) holds",
                _ => "semaphore permits",
            },
        });
    }
    options.validate(caps)
}

/// Refuses a lease from another backend and a ttl outside the limits.
pub(crate) fn check_extend(
    backend: &'static str,
    caps: &Capabilities,
    lease: &Lease,
    ttl: Duration,
) -> Result<()> {
    lease.check_backend(backend)?;
    validate_ttl(ttl, caps)
}

/// The lease a grant stands for. A lock-at-least-for minimum counts from
/// now (the acquire returns after this), so no one can take the lock
/// before the minimum passed after the caller learned it holds it.
pub(crate) fn lease_of(kind: &'static str, request: &AcquireRequest, grant: Grant) -> Lease {
    let ttl = request.options.ttl;
    let hold_until = request
        .options
        .at_least
        .and_then(|minimum| Instant::now().checked_add(minimum));
    Lease::new(
        kind,
        request.name.clone(),
        request.owner,
        grant.fencing,
        ttl,
        valid_until(grant.sent, ttl),
    )
    .with_mode(request.mode)
    .with_data(grant.data)
    .with_hold_until(hold_until)
}

/// How long the server must still keep `lease` when it is released now:
/// `None` once its lock-at-least-for minimum has passed (release at once),
/// else what is left of it with the drift allowance, rounded up to the
/// backend's minimum ttl (and never above its maximum).
pub(crate) fn hold_owed(lease: &Lease, caps: &Capabilities) -> Option<Duration> {
    let left = lease
        .hold_until()?
        .saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    Some(server_hold(left).clamp(caps.min_ttl, caps.max_ttl.max(caps.min_ttl)))
}

/// The lease a renewal stands for.
pub(crate) fn renewed(lease: &Lease, ttl: Duration, renewal: Renewal) -> Lease {
    lease.renewed(ttl, valid_until(renewal.sent, ttl))
}

/// Refuses an upgrade the backend does not serve, of a lease that is not
/// shared or not from this backend, or with options out of range.
pub(crate) fn check_upgrade(
    backend: &'static str,
    caps: &Capabilities,
    lease: &Lease,
    options: &AcquireOptions,
) -> Result<()> {
    lease.check_backend(backend)?;
    if !caps.upgrade {
        return Err(LockError::Unsupported {
            backend,
            operation: "upgrading a shared hold",
        });
    }
    if lease.mode() != Mode::Shared {
        return Err(LockError::invalid_options(format!(
            "only a shared (read) hold can be upgraded; this lease is {}",
            lease.mode()
        )));
    }
    options.validate(caps)
}
