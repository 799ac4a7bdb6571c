//! Extension: it keeps a held lock, it refuses a lease that is no longer
//! held, and `extend_many` answers every lease in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    DistributedLock, FencingToken, Lease, LockError, LockName, OwnerToken, Result,
};
use rand::seq::SliceRandom;

use super::support::{
    assert_not_held, child_name, long_ttl, must, must_acquire, must_be_held, must_release, opts,
    short_ttl, unique_name,
};
use crate::harness::Harness;

/// Extending keeps the lock past its original ttl.
pub async fn extend_keeps_the_lock(h: &dyn Harness) {
    const CASE: &str = "extend_keeps_the_lock";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let ttl = short_ttl(&caps);
    let name = unique_name("extend");
    let mut lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let until = Instant::now() + ttl * 2;
    while Instant::now() < until {
        tokio::time::sleep(ttl / 3).await;
        let before = lease.valid_until();
        lease = must(CASE, "extend of a held lease", a.extend(&lease, ttl).await);
        assert!(
            lease.valid_until() > before,
            "[{CASE}] extend did not move the validity forward"
        );
        must_be_held(CASE, &b, &name, ttl).await;
    }
    let more = a.extend_many(std::slice::from_ref(&lease)).await;
    assert_eq!(more.len(), 1, "[{CASE}] extend_many answers once per lease");
    let lease = match more.into_iter().next() {
        Some(Ok(l)) => l,
        other => panic!("[{CASE}] extend_many of a held lease: {other:?}"),
    };
    must_release(CASE, &a, &lease).await;
}

/// After a release, extending or releasing the old lease is refused.
pub async fn extend_and_release_after_release_fail(h: &dyn Harness) {
    const CASE: &str = "extend_and_release_after_release_fail";
    let a = h.client().await;
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("after-release");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    must_release(CASE, &a, &lease).await;
    assert_not_held(CASE, a.extend(&lease, ttl).await, "extend after release");
    assert_not_held(CASE, a.release(&lease).await, "second release");
}

/// What each lease handed to `extend_many` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Held: must come back extended.
    Held,
    /// Released before the call: must be `NotHeld`.
    Released,
    /// Issued by another backend: must be `InvalidLease`.
    Foreign,
}

/// How many leases of each kind; a backend claiming `batch_extend` gets
/// enough to span several of its batches.
fn per_kind(batch_extend: bool) -> usize {
    if batch_extend {
        25
    } else {
        6
    }
}

/// Takes (and for `Released` gives back) one lease per kind, shuffled.
async fn mixed_leases(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    base: &LockName,
    per_kind: usize,
    ttl: Duration,
) -> Vec<(Kind, Lease)> {
    let mut kinds: Vec<Kind> = [Kind::Held, Kind::Released, Kind::Foreign]
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, per_kind))
        .collect();
    kinds.shuffle(&mut rand::thread_rng());
    let mut leases = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.into_iter().enumerate() {
        let name = child_name(case, base, &i.to_string());
        let lease = match kind {
            Kind::Foreign => Lease::new(
                "no-such-backend",
                name,
                OwnerToken::random(),
                FencingToken(1),
                ttl,
                Instant::now() + ttl,
            ),
            Kind::Held | Kind::Released => must_acquire(case, c, &name, &opts(ttl)).await,
        };
        if kind == Kind::Released {
            must_release(case, c, &lease).await;
        }
        leases.push((kind, lease));
    }
    leases
}

/// Checks answer `i` of `extend_many`; the extended lease, for a held one.
fn check_answer(
    case: &str,
    claim: &str,
    i: usize,
    (kind, sent): &(Kind, Lease),
    answer: Result<Lease>,
) -> Option<Lease> {
    match (kind, answer) {
        (Kind::Held, Ok(got)) => {
            assert!(
                got.name() == sent.name() && got.owner() == sent.owner(),
                "[{case}] answer {i} is for `{}`, not for `{}`: extend_many answered out of order{claim}",
                got.name(),
                sent.name()
            );
            assert_eq!(
                got.fencing_token(),
                sent.fencing_token(),
                "[{case}] answer {i}: extending changed the fencing token{claim}"
            );
            assert!(
                got.valid_until() > sent.valid_until(),
                "[{case}] answer {i}: the held lease came back without a later validity{claim}"
            );
            Some(got)
        }
        (Kind::Held, Err(e)) => {
            panic!(
                "[{case}] answer {i}: a held lease of `{}` was not extended: {e}{claim}",
                sent.name()
            )
        }
        (Kind::Released, Err(LockError::NotHeld { .. })) => None,
        (Kind::Foreign, Err(LockError::InvalidLease { .. })) => None,
        (kind, other) => {
            panic!(
            "[{case}] answer {i} for a {kind:?} lease of `{}`: expected {}, got {other:?}{claim}",
            sent.name(),
            if *kind == Kind::Released { "NotHeld" } else { "InvalidLease" }
        )
        }
    }
}

/// `extend_many` over held, released and foreign leases, mixed: one answer
/// per lease, in order; the held ones extended, the others refused each for
/// its own reason, none failing the others.
pub async fn extend_many_answers_in_order(h: &dyn Harness) {
    const CASE: &str = "extend_many_answers_in_order";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let claim = if caps.batch_extend {
        " (the backend claims `batch_extend`)"
    } else {
        ""
    };
    let ttl = long_ttl(&caps);
    let base = unique_name("extend-many");
    let leases = mixed_leases(CASE, &a, &base, per_kind(caps.batch_extend), ttl).await;
    let sent: Vec<Lease> = leases.iter().map(|(_, l)| l.clone()).collect();
    let answers = a.extend_many(&sent).await;
    assert_eq!(
        answers.len(),
        sent.len(),
        "[{CASE}] extend_many gave {} answers for {} leases{claim}",
        answers.len(),
        sent.len()
    );
    let mut extended = Vec::new();
    for (i, (lease, answer)) in leases.iter().zip(answers).enumerate() {
        extended.extend(check_answer(CASE, claim, i, lease, answer));
    }
    // Still held, and released with the extended leases.
    for lease in &extended {
        must_be_held(CASE, &b, lease.name(), ttl).await;
        must_release(CASE, &a, lease).await;
    }
}
