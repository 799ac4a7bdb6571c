//! The checks and the lease arithmetic of the layer, used by the single
//! operations (`checked`) and the batches (`batch`) alike.

use std::time::Duration;

use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};
use crate::lease::Lease;
use crate::mode::Mode;
use crate::options::{validate_ttl, AcquireOptions};
use crate::validity::valid_until;

use super::{AcquireRequest, Grant, Renewal};

/// Refuses options outside the backend's limits and modes it does not serve.
pub(crate) fn check_acquire(
    backend: &'static str,
    caps: &Capabilities,
    mode: Mode,
    options: &AcquireOptions,
) -> Result<()> {
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

/// The lease a grant stands for.
pub(crate) fn lease_of(kind: &'static str, request: &AcquireRequest, grant: Grant) -> Lease {
    let ttl = request.options.ttl;
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
