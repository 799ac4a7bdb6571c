//! The blanket `DistributedLock` implementation: every check, the validity
//! rule and the telemetry around a backend's algorithm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::Instrument;

use crate::backend::{ChangeNotices, DistributedLock, Liveness, LockStatus};
use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::lease::Lease;
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::AcquireOptions;

use super::rules::{
    check_acquire, check_elect, check_extend, check_upgrade, hold_owed, lease_of, renewed,
};
use super::{batch, telemetry, AcquireRequest, LockBackend};

#[async_trait]
impl<B: LockBackend> DistributedLock for B {
    fn backend_name(&self) -> &'static str {
        self.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.claims()
    }

    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        let request = AcquireRequest::new(name.clone(), *options);
        acquire_checked(self, request, Mode::Exclusive.primitive()).await
    }

    async fn acquire_as(
        &self,
        name: &LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        let request = AcquireRequest::new(name.clone(), *options).with_mode(mode);
        acquire_checked(self, request, mode.primitive()).await
    }

    async fn elect(
        &self,
        name: &LockName,
        identity: &str,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        let request = AcquireRequest::new(name.clone(), *options).with_label(identity);
        acquire_checked(self, request, telemetry::LEADER).await
    }

    async fn acquire_many(
        self: Arc<Self>,
        names: &[LockName],
        options: &AcquireOptions,
    ) -> Result<Option<Vec<Lease>>>
    where
        Self: 'static,
    {
        let (kind, started) = (self.kind(), Instant::now());
        let span =
            tracing::debug_span!("distlock.acquire_many", backend = kind, count = names.len());
        let result = crate::multi::acquire_in_order(self, names, options)
            .instrument(span)
            .await;
        telemetry::acquire_many_done(kind, names.len(), started.elapsed(), &result);
        result
    }

    async fn changes(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        self.watch(name).await
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
            // Released before its lock-at-least-for minimum: the server
            // keeps it until then.
            match hold_owed(lease, &self.claims()) {
                Some(hold) => {
                    tracing::debug!(
                        hold_ms = hold.as_millis() as u64,
                        "distlock.release_deferred"
                    );
                    self.release_after(lease, hold).await
                }
                None => self.revoke(lease).await,
            }
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

    async fn upgrade(&self, lease: &Lease, options: &AcquireOptions) -> Result<Option<Lease>> {
        let kind = self.kind();
        let started = Instant::now();
        let span = tracing::debug_span!("distlock.upgrade", lock = %lease.name(), backend = kind);
        let result = async {
            check_upgrade(kind, &self.claims(), lease, options)?;
            let request = AcquireRequest::new(lease.name().clone(), *options)
                .with_mode(Mode::Exclusive)
                .with_owner(lease.owner());
            let grant = self.upgrade(lease, &request).await?;
            Ok(grant.map(|g| lease_of(kind, &request, g)))
        }
        .instrument(span)
        .await;
        telemetry::upgrade_done(kind, lease.name(), started.elapsed(), &result);
        result
    }

    fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.session(lease)
    }

    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        self.inspect(name).await
    }
}

/// One checked acquire (or election, with a label): validate, grant, build
/// the lease, record it under `primitive`.
async fn acquire_checked<B: LockBackend>(
    backend: &B,
    request: AcquireRequest,
    primitive: &'static str,
) -> Result<Option<Lease>> {
    let kind = backend.kind();
    let name = &request.name;
    let started = Instant::now();
    let span = tracing::debug_span!("distlock.acquire", lock = %name, backend = kind, primitive);
    let result = async {
        let caps = backend.claims();
        check_acquire(kind, &caps, request.mode, &request.options)?;
        if let Some(label) = &request.label {
            check_elect(kind, &caps, label)?;
        }
        let grant = backend.grant(&request).await?;
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
