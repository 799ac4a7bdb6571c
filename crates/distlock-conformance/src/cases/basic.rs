//! The basic promises: a lease is what it says, a held lock is held, only
//! its owner can give it back, names are distinct locks, tokens increase,
//! bad input is refused, modes are served as claimed, status tells the
//! truth.

use std::time::Instant;

use distlock_core::{Lease, LockError, LockName, Mode, OwnerToken};

use super::support::{
    assert_fenced_after, assert_not_held, child_name, clients, long_ttl, must, must_acquire,
    must_be_held, must_release, opts, skip, unique_name,
};
use crate::harness::Harness;

/// Acquire a free lock, check the lease, release it, acquire it again.
pub async fn basic_acquire_release(h: &dyn Harness) {
    const CASE: &str = "basic_acquire_release";
    let c = h.client().await;
    let caps = c.capabilities();
    let name = unique_name("basic");
    let ttl = long_ttl(&caps);
    let lease = must_acquire(CASE, &c, &name, &opts(ttl)).await;
    let returned = Instant::now();
    assert_eq!(lease.name(), &name, "[{CASE}] the lease names the lock");
    assert_eq!(
        lease.backend(),
        c.backend_name(),
        "[{CASE}] the lease names its backend"
    );
    assert_eq!(
        lease.ttl(),
        ttl,
        "[{CASE}] the lease carries the requested ttl"
    );
    assert!(
        lease.valid_until() > Instant::now(),
        "[{CASE}] a fresh lease is valid"
    );
    assert!(
        lease.valid_until() <= returned + ttl,
        "[{CASE}] validity must not run past the acquire's return + ttl"
    );
    must_release(CASE, &c, &lease).await;
    let again = must_acquire(CASE, &c, &name, &opts(ttl)).await;
    must_release(CASE, &c, &again).await;
}

/// While one client holds a lock, another's try-acquire returns `None`.
pub async fn try_acquire_fails_while_held(h: &dyn Harness) {
    const CASE: &str = "try_acquire_fails_while_held";
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("try-held");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    must_be_held(CASE, &b, &name, ttl).await;
    must_be_held(CASE, &a, &name, ttl).await;
    must_release(CASE, &a, &lease).await;
    let lb = must_acquire(CASE, &b, &name, &opts(ttl)).await;
    must_release(CASE, &b, &lb).await;
}

/// Different names are different locks; names are case-sensitive.
pub async fn independent_names(h: &dyn Harness) {
    const CASE: &str = "independent_names";
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let base = unique_name("independent");
    let x = child_name(CASE, &base, "Case");
    let y = child_name(CASE, &base, "case");
    let z = child_name(CASE, &base, "other");
    let lx = must_acquire(CASE, &a, &x, &opts(ttl)).await;
    let ly = must_acquire(CASE, &b, &y, &opts(ttl)).await;
    let lz = must_acquire(CASE, &b, &z, &opts(ttl)).await;
    for (c, l) in [(&a, &lx), (&b, &ly), (&b, &lz)] {
        must_release(CASE, c, l).await;
    }
}

/// Only the owner token can extend or release.
pub async fn non_owner_cannot_release_or_extend(h: &dyn Harness) {
    const CASE: &str = "non_owner_cannot_release_or_extend";
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("non-owner");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let forged = Lease::new(
        lease.backend(),
        name.clone(),
        OwnerToken::random(),
        lease.fencing_token(),
        ttl,
        lease.valid_until(),
    )
    .with_data(lease.data());
    let what = "release with a forged owner token";
    assert_not_held(CASE, b.release(&forged).await, what);
    let what = "extend with a forged owner token";
    assert_not_held(CASE, b.extend(&forged, ttl).await, what);
    let what = "release with a forged owner token from the holder's own client";
    assert_not_held(CASE, a.release(&forged).await, what);
    must_be_held(CASE, &b, &name, ttl).await;
    must_release(CASE, &a, &lease).await;
}

/// An exported lease can be extended and released by another client (the
/// scheduler-to-handler handoff).
pub async fn lease_handoff_between_clients(h: &dyn Harness) {
    const CASE: &str = "lease_handoff_between_clients";
    let (a, b, c) = (h.client().await, h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.lease_handoff {
        return skip(CASE, "backend does not claim lease_handoff");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("handoff");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let imported = must(
        CASE,
        "import of an exported lease",
        Lease::import(&lease.export()),
    );
    assert_eq!(
        imported.fencing_token(),
        lease.fencing_token(),
        "[{CASE}] the imported lease carries the fencing token"
    );
    let what =
        "backend claims `lease_handoff` but another client could not extend the imported lease";
    let extended = must(CASE, what, b.extend(&imported, ttl).await);
    must_be_held(CASE, &c, &name, ttl).await;
    let what =
        "backend claims `lease_handoff` but another client could not release the imported lease";
    must(CASE, what, b.release(&extended).await);
    let lc = must_acquire(CASE, &c, &name, &opts(ttl)).await;
    must_release(CASE, &c, &lc).await;
}

/// Successive holders get strictly increasing fencing tokens.
pub async fn fencing_tokens_increase(h: &dyn Harness) {
    const CASE: &str = "fencing_tokens_increase";
    let clients = clients(h, 3).await;
    let caps = clients[0].capabilities();
    if !caps.fencing {
        return skip(CASE, "backend does not claim fencing");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("fencing");
    let mut last: Option<Lease> = None;
    for i in 0..15 {
        let c = &clients[i % clients.len()];
        let lease = must_acquire(CASE, c, &name, &opts(ttl)).await;
        if let Some(prev) = &last {
            assert_fenced_after(CASE, &caps, &lease, prev);
        }
        must_release(CASE, c, &lease).await;
        last = Some(lease);
    }
}

/// The awkward names of [`awkward_names_are_distinct_locks`].
fn awkward_suffixes() -> Vec<String> {
    let long_prefix = "L".repeat(LockName::MAX_LEN - 200);
    let mut all: Vec<String> = [
        "plain",
        "ünïcødé 锁 ключ 🔒",
        "a/b",
        "a%2Fb",
        "a%2fb",
        "a_b",
        "/leading",
        "trailing/",
        "double//slash",
        ".",
        "..",
        "with space",
        " ",
        "quote'single",
        "quote\"double",
        "{hash-tag}",
        "{",
        "}",
        "'; DROP TABLE distlock_locks; --",
        "%",
        "_",
        "*?[]",
        "back\\slash",
        "tab\tnew\nline",
        "UPPER",
        "upper",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.push(format!("{long_prefix}-one"));
    all.push(format!("{long_prefix}-two"));
    all
}

/// `base/suffix`, cut from the front to the longest valid name so the
/// distinguishing tail survives.
fn awkward_name(case: &str, base: &LockName, suffix: &str) -> LockName {
    let full = format!("{base}/{suffix}");
    let full = if full.len() > LockName::MAX_LEN {
        let mut at = full.len() - LockName::MAX_LEN;
        while !full.is_char_boundary(at) {
            at += 1;
        }
        full[at..].to_string()
    } else {
        full
    };
    must(case, "an awkward but valid name", LockName::new(&full))
}

/// Awkward names work, map to distinct keys, and do not collide.
pub async fn awkward_names_are_distinct_locks(h: &dyn Harness) {
    const CASE: &str = "awkward_names_are_distinct_locks";
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let base = unique_name("names");
    let mut held = Vec::new();
    for s in awkward_suffixes() {
        let name = awkward_name(CASE, &base, &s);
        let lease = match a.acquire(&name, &opts(ttl)).await {
            Ok(Some(l)) => l,
            Ok(None) => panic!("[{CASE}] name {s:?} collided with an earlier name in the list"),
            Err(e) => panic!("[{CASE}] name {s:?} failed: {e}"),
        };
        must_be_held(CASE, &b, &name, ttl).await;
        held.push(lease);
    }
    for lease in &held {
        must_release(CASE, &a, lease).await;
    }
    // Every name is free again.
    for lease in &held {
        let l = must_acquire(CASE, &b, lease.name(), &opts(ttl)).await;
        must_release(CASE, &b, &l).await;
    }
}

/// Zero and out-of-range ttls and malformed backoffs are `InvalidOptions`,
/// leases from another backend are refused; nothing panics.
pub async fn bad_options_are_rejected(h: &dyn Harness) {
    const CASE: &str = "bad_options_are_rejected";
    let a = h.client().await;
    let caps = a.capabilities();
    let name = unique_name("bad-options");
    let is_invalid = |r: &distlock_core::Result<Option<Lease>>| {
        matches!(r, Err(LockError::InvalidOptions { .. }))
    };
    let r = a.acquire(&name, &opts(std::time::Duration::ZERO)).await;
    assert!(is_invalid(&r), "[{CASE}] zero ttl: {r:?}");
    if caps.max_ttl < std::time::Duration::MAX / 2 {
        let r = a.acquire(&name, &opts(caps.max_ttl * 2)).await;
        assert!(
            is_invalid(&r),
            "[{CASE}] backend claims `max_ttl` {:?} but a ttl of twice that gave {r:?}",
            caps.max_ttl
        );
    }
    if caps.min_ttl > std::time::Duration::from_millis(1) {
        let r = a.acquire(&name, &opts(caps.min_ttl / 2)).await;
        assert!(
            is_invalid(&r),
            "[{CASE}] backend claims `min_ttl` {:?} but a ttl of half that gave {r:?}",
            caps.min_ttl
        );
    }
    let mut bad_backoff = opts(long_ttl(&caps));
    bad_backoff.backoff.factor = f64::NAN;
    let r = a.acquire(&name, &bad_backoff).await;
    assert!(is_invalid(&r), "[{CASE}] NaN backoff: {r:?}");

    let ttl = long_ttl(&caps);
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let r = a.extend(&lease, std::time::Duration::ZERO).await;
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "[{CASE}] extend with zero ttl: {r:?}"
    );
    let alien = Lease::new(
        "no-such-backend",
        name.clone(),
        lease.owner(),
        lease.fencing_token(),
        ttl,
        lease.valid_until(),
    );
    let r = a.release(&alien).await;
    assert!(
        matches!(r, Err(LockError::InvalidLease { .. })),
        "[{CASE}] a lease of another backend: {r:?}"
    );
    must_release(CASE, &a, &lease).await;
}

/// A mode the backend does not claim (`shared`, `semaphore`) is
/// `Unsupported`; a claimed one is served: shared holds coexist and keep
/// an exclusive one out, permits stop at their limit.
pub async fn modes_are_served_as_claimed(h: &dyn Harness) {
    const CASE: &str = "modes_are_served_as_claimed";
    let clients = clients(h, 3).await;
    let caps = clients[0].capabilities();
    let ttl = long_ttl(&caps);
    let modes = [
        (Mode::Shared, caps.shared, "shared"),
        (Mode::Permit { limit: 2 }, caps.semaphore, "semaphore"),
    ];
    for (mode, claimed, claim) in modes {
        let name = unique_name("modes");
        if !claimed {
            let r = clients[0].acquire_as(&name, mode, &opts(ttl)).await;
            assert!(
                matches!(r, Err(LockError::Unsupported { .. })),
                "[{CASE}] backend does not claim `{claim}` but a {mode} acquire gave {r:?} instead of Unsupported"
            );
            continue;
        }
        // Two holders fit both modes; a third (exclusive, or a third permit) does not.
        let mut held = Vec::new();
        for c in &clients[..2] {
            match c.acquire_as(&name, mode, &opts(ttl)).await {
                Ok(Some(l)) => held.push(l),
                other => panic!(
                    "[{CASE}] backend claims `{claim}` but a second {mode} hold was refused: {other:?}"
                ),
            }
        }
        let third = match mode {
            Mode::Shared => Mode::Exclusive,
            _ => mode,
        };
        let r = clients[2].acquire_as(&name, third, &opts(ttl)).await;
        assert!(
            matches!(r, Ok(None)),
            "[{CASE}] backend claims `{claim}` but a {third} hold was granted beside two {mode} holds: {r:?}"
        );
        for (c, l) in clients.iter().zip(&held) {
            must_release(CASE, c, l).await;
        }
    }
}

/// `status` (where supported) tells held from free.
pub async fn status_reports_the_holder(h: &dyn Harness) {
    const CASE: &str = "status_reports_the_holder";
    let a = h.client().await;
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("status");
    match a.status(&name).await {
        Err(LockError::Unsupported { .. }) => return skip(CASE, "status is unsupported"),
        Err(e) => panic!("[{CASE}] status of a free name: {e}"),
        Ok(s) => assert!(!s.held, "[{CASE}] a never-taken name reads as held"),
    }
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let s = must(CASE, "status of a held name", a.status(&name).await);
    assert!(s.held, "[{CASE}] status does not see the holder");
    if let Some(t) = s.fencing_token {
        assert_eq!(
            t,
            lease.fencing_token(),
            "[{CASE}] status shows another fencing token"
        );
    }
    must_release(CASE, &a, &lease).await;
    let s = must(CASE, "status of a released name", a.status(&name).await);
    assert!(
        !s.held,
        "[{CASE}] status still sees a released lock as held"
    );
}
