//! Extend: one extend-script call per instance for a whole batch of leases,
//! of any modes; and the lock-at-least-for release, which shortens one
//! hold's expiry with the same script.

use std::time::{Duration, Instant};

use distlock_core::validity::valid_until;
use distlock_core::{Lease, LockError, Renewal, Result};
use futures::future::join_all;

use crate::instance::CallError;

use super::hold::Hold;
use super::{ttl_millis, Engine};

/// What the instances answered for one lease of a batch.
#[derive(Default)]
struct Tally<'a> {
    extended: usize,
    refused: usize,
    failures: Vec<(usize, &'a CallError)>,
}

impl Engine {
    /// Extends one lease to `ttl` (one round trip, all instances in parallel).
    pub(crate) async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        self.renew_batch(&[(lease.clone(), ttl)])
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(LockError::unavailable(
                    self.backend,
                    "the extension gave no answer",
                ))
            })
    }

    /// Extends every lease of `batch` to its own ttl: one extend-script call
    /// per instance carrying every lease, of any modes (one round trip, all
    /// instances in parallel). A lease is renewed when a quorum extended it
    /// and validity remains after the round trip; `NotHeld` when so many
    /// instances refused it (expired, released, or taken by another owner)
    /// that a quorum is impossible.
    pub(crate) async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        let holds: Vec<Result<Hold>> = batch
            .iter()
            .map(|(lease, _)| {
                let keys = self.keys(lease.name());
                Hold::of_lease(lease, &keys, !self.single(), self.backend)
            })
            .collect();
        let sendable: Vec<(&Lease, Duration, &Hold)> = batch
            .iter()
            .zip(&holds)
            .filter_map(|((lease, ttl), hold)| hold.as_ref().ok().map(|h| (lease, *ttl, h)))
            .collect();
        let sent = Instant::now();
        let answers = self.run_extend_script(&sendable, None).await;
        let mut k = 0;
        batch
            .iter()
            .zip(holds)
            .map(|((lease, ttl), hold)| {
                hold?;
                k += 1;
                self.renewal(lease, *ttl, sent, tally(&answers, k - 1))
            })
            .collect()
    }

    /// Keeps `lease` held for `hold` from now and no longer (it was released
    /// before its lock-at-least-for minimum), then wakes the waiters so
    /// they wait for that expiry, not the old one: one extend-script call
    /// per instance, in parallel, with a PUBLISH `*` after the hold.
    /// Done when a quorum set the expiry (the lease's own validity does not
    /// matter any more); `NotHeld` when too many instances no longer held
    /// it.
    pub(crate) async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        let keys = self.keys(lease.name());
        let kept = Hold::of_lease(lease, &keys, !self.single(), self.backend)?;
        let answers = self
            .run_extend_script(&[(lease, hold, &kept)], Some(&keys.channel))
            .await;
        let doing = format!("releasing `{}` after its minimum", lease.name());
        self.verdict(lease, &tally(&answers, 0), true, &doing)
    }

    /// The extend script with every lease of the batch, on every instance,
    /// then (with `publish`) a PUBLISH `*` on that channel; with `replicas`
    /// and anything extended, a `WAIT` for them (an extension too few
    /// replicas acknowledged is a failure, `Unavailable`).
    async fn run_extend_script(
        &self,
        batch: &[(&Lease, Duration, &Hold)],
        publish: Option<&str>,
    ) -> Vec<std::result::Result<Vec<i64>, CallError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let shortest = batch.iter().map(|(_, t, _)| *t).min().unwrap_or_default();
        let timeout = self.instance_timeout(shortest);
        let mut invocation = self.scripts.extend.prepare_invoke();
        // Every key of a batch shares a slot in a cluster (one lease a call).
        let route = batch
            .first()
            .map(|(lease, _, _)| self.keys(lease.name()).lock)
            .unwrap_or_default();
        for (lease, ttl, hold) in batch {
            let keys = self.keys(lease.name());
            invocation.key(hold.owning_key(&keys));
            if !matches!(hold, Hold::Exclusive) {
                invocation.key(&keys.holders);
            }
            invocation
                .arg(hold.extend_kind())
                .arg(lease.owner().to_hex())
                .arg(hold.member(lease.owner()))
                .arg(ttl_millis(*ttl));
        }
        if let Some(channel) = publish {
            invocation.key(channel).arg("p").arg("").arg("").arg(0);
        }
        let (acks, extended) = (self.acks(), |r: &Vec<i64>| r.contains(&1));
        join_all(
            self.instances
                .iter()
                .map(|i| i.invoke_acked(&invocation, &route, acks, extended, timeout)),
        )
        .await
    }

    /// The answer for one lease of a batch: renewed while validity remains
    /// after the round trip.
    fn renewal(
        &self,
        lease: &Lease,
        ttl: Duration,
        sent: Instant,
        tally: Tally<'_>,
    ) -> Result<Renewal> {
        let in_time = valid_until(sent, ttl) > Instant::now();
        let doing = format!("extending `{}`", lease.name());
        self.verdict(lease, &tally, in_time, &doing)
            .map(|()| Renewal::sent_at(sent))
    }

    /// What the instances' answers for one lease mean: done when a quorum
    /// set the expiry (`in_time`: before the validity it was asked for
    /// passed); `NotHeld` when a quorum is out of reach because instances
    /// refused (or the validity passed); else the failures.
    fn verdict(&self, lease: &Lease, tally: &Tally<'_>, in_time: bool, doing: &str) -> Result<()> {
        if tally.extended >= self.quorum && in_time {
            return Ok(());
        }
        if tally.refused > self.tolerated() || tally.extended >= self.quorum {
            return Err(LockError::not_held(lease.name().as_str()));
        }
        Err(self.quorum_error(doing, &tally.failures))
    }
}

/// Counts the instances' answers for the `k`-th lease of a batch.
fn tally(answers: &[std::result::Result<Vec<i64>, CallError>], k: usize) -> Tally<'_> {
    let mut tally = Tally::default();
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Ok(v) if v.get(k) == Some(&1) => tally.extended += 1,
            Ok(_) => tally.refused += 1,
            Err(e) => tally.failures.push((i, e)),
        }
    }
    tally
}
