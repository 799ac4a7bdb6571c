//! The blanket `DistributedLock` implementation: every check, the validity
//! rule and the telemetry around a backend's algorithm.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::Instrument;

use crate::backend::{DistributedLock, Liveness, LockStatus};
use crate::capabilities::Capabilities;
use crate::error::{LockError, Result};
use crate::lease::Lease;
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::{validate_ttl, AcquireOptions};
use crate::validity::valid_until;

use super::{batch, telemetry, AcquireRequest, Grant, LockBackend, Renewal};

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
fn lease_of(kind: &'static str, request: &AcquireRequest, grant: Grant) -> Lease {
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

#[async_trait]
impl<B: LockBackend> DistributedLock for B {
    fn backend_name(&self) -> &'static str {
        self.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.claims()
    }

    async fn acquire_as(
        &self,
        name: &LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        let kind = self.kind();
        let primitive = mode.primitive();
        let started = Instant::now();
        let span =
            tracing::debug_span!("distlock.acquire", lock = %name, backend = kind, primitive);
        let result = async {
            check_acquire(kind, &self.claims(), mode, options)?;
            let request = AcquireRequest::new(name.clone(), *options).with_mode(mode);
            let grant = self.grant(&request).await?;
            Ok(grant.map(|g| {
                let waited = g.sent.saturating_duration_since(started);
                (lease_of(kind, &request, g), waited)
            }))
        }
        .instrument(span)
        .await;
        let outcome = match &result {
            Ok(Some((lease, waited))) => Ok(Some((lease, *waited))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        telemetry::acquire_done(kind, primitive, name, started.elapsed(), outcome);
        result.map(|got| got.map(|(lease, _)| lease))
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let kind = self.kind();
        let span = tracing::trace_span!(
            "distlock.extend", lock = %lease.name(), backend = kind,
            primitive = lease.mode().primitive()
        );
        let result = async {
            check_extend(kind, &self.claims(), lease, ttl)?;
            let renewal = self.renew(lease, ttl).await?;
            Ok(renewed(lease, ttl, renewal))
        }
        .instrument(span)
        .await;
        telemetry::extend_done(lease, kind, &result);
        result
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let kind = self.kind();
        let span = tracing::debug_span!(
            "distlock.release", lock = %lease.name(), backend = kind,
            primitive = lease.mode().primitive()
        );
        let result = async {
            lease.check_backend(kind)?;
            self.revoke(lease).await
        }
        .instrument(span)
        .await;
        telemetry::release_done(lease, kind, &result);
        result
    }

    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        let span = tracing::trace_span!(
            "distlock.extend",
            backend = self.kind(),
            count = leases.len()
        );
        batch::extend_many(self, leases).instrument(span).await
    }

    fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.session(lease)
    }

    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        self.inspect(name).await
    }
}
