//! The conformance cases: plain async functions over a [`Harness`].
//!
//! Each case panics with a message that says which promise was broken.
//! [`suite!`](crate::suite) turns every case into a named `#[tokio::test]`;
//! they can also be called directly.
//!
//! Cases that depend on a capability check it first and return early with a
//! printed note when the backend does not claim it; a backend that claims a
//! capability gets the case, so a false claim fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, Backoff, Capabilities, DistributedLock, Lease, LockClient, LockError, LockName,
    LostReason, OwnerToken, Wait,
};
use rand::Rng;

use crate::harness::Harness;
use crate::history::{History, Hold};

/// A fresh, unique lock name for one case run.
pub fn unique_name(case: &str) -> LockName {
    let tag: u64 = rand::thread_rng().gen();
    LockName::new(format!("conformance/{case}/{tag:016x}")).expect("valid name")
}

/// A long ttl for cases where expiry must not interfere, within the
/// backend's bounds.
fn long_ttl(caps: &Capabilities) -> Duration {
    Duration::from_secs(30).clamp(caps.min_ttl, caps.max_ttl)
}

/// A short ttl for cases that wait for expiry.
fn short_ttl(caps: &Capabilities) -> Duration {
    Duration::from_millis(1500).clamp(caps.min_ttl, caps.max_ttl)
}

fn opts(ttl: Duration) -> AcquireOptions {
    AcquireOptions::try_once(ttl)
}

fn skip(case: &str, why: &str) {
    println!("{case}: not applicable: {why}");
}

async fn must_acquire(c: &Arc<dyn DistributedLock>, name: &LockName, o: &AcquireOptions) -> Lease {
    match c.acquire(name, o).await {
        Ok(Some(l)) => l,
        Ok(None) => panic!("expected to acquire `{name}`, but it was held"),
        Err(e) => panic!("expected to acquire `{name}`, got error: {e}"),
    }
}

async fn must_be_held(c: &Arc<dyn DistributedLock>, name: &LockName, ttl: Duration) {
    match c.acquire(name, &opts(ttl)).await {
        Ok(None) => {}
        Ok(Some(l)) => panic!(
            "`{name}` should be held by another client, but was acquired again (fencing {})",
            l.fencing_token()
        ),
        Err(e) => panic!("try-acquire of held `{name}` errored instead of returning None: {e}"),
    }
}

fn assert_not_held(result: distlock_core::Result<impl std::fmt::Debug>, what: &str) {
    match result {
        Err(LockError::NotHeld { .. }) => {}
        other => panic!("{what}: expected NotHeld, got {other:?}"),
    }
}

/// Acquire a free lock, check the lease, release it, acquire it again.
pub async fn basic_acquire_release(h: &dyn Harness) {
    let c = h.client().await;
    let caps = c.capabilities();
    let name = unique_name("basic");
    let ttl = long_ttl(&caps);
    let lease = must_acquire(&c, &name, &opts(ttl)).await;
    let returned = Instant::now();
    assert_eq!(lease.name(), &name, "lease names the lock");
    assert_eq!(lease.backend(), c.backend_name(), "lease names its backend");
    assert_eq!(lease.ttl(), ttl, "lease carries the requested ttl");
    assert!(
        lease.valid_until() > Instant::now(),
        "a fresh lease is valid"
    );
    assert!(
        lease.valid_until() <= returned + ttl,
        "validity must not run past the acquire's return + ttl"
    );
    c.release(&lease).await.expect("release of a held lease");
    let again = must_acquire(&c, &name, &opts(ttl)).await;
    c.release(&again).await.expect("second release");
}

/// While one client holds a lock, another's try-acquire returns `None`.
pub async fn try_acquire_fails_while_held(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("try-held");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    must_be_held(&b, &name, ttl).await;
    must_be_held(&a, &name, ttl).await;
    a.release(&lease).await.expect("release");
    let lb = must_acquire(&b, &name, &opts(ttl)).await;
    b.release(&lb).await.expect("release");
}

/// Different names are different locks; names are case-sensitive.
pub async fn independent_names(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let base = unique_name("independent");
    let x = LockName::new(format!("{base}/Case")).expect("name");
    let y = LockName::new(format!("{base}/case")).expect("name");
    let z = LockName::new(format!("{base}/other")).expect("name");
    let lx = must_acquire(&a, &x, &opts(ttl)).await;
    let ly = must_acquire(&b, &y, &opts(ttl)).await;
    let lz = must_acquire(&b, &z, &opts(ttl)).await;
    for (c, l) in [(&a, &lx), (&b, &ly), (&b, &lz)] {
        c.release(l).await.expect("release");
    }
}

/// A bounded wait on a held lock returns `None` after the wait, not early and
/// not much late.
pub async fn wait_timeout_is_honoured(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("wait-timeout");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let wait = Duration::from_millis(700);
    let start = Instant::now();
    let got = b
        .acquire(&name, &opts(ttl).with_wait(Wait::For(wait)))
        .await
        .expect("acquire with wait");
    let took = start.elapsed();
    assert!(got.is_none(), "acquired a lock that was held");
    assert!(
        took >= wait,
        "gave up early: after {took:?}, wait was {wait:?}"
    );
    assert!(
        took < wait + Duration::from_millis(1500),
        "gave up much too late: after {took:?}, wait was {wait:?}"
    );
    a.release(&lease).await.expect("release");
}

/// A waiter gets the lock once the holder releases it.
pub async fn waiter_acquires_after_release(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("waiter");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let waiter = {
        let (b, name) = (b.clone(), name.clone());
        tokio::spawn(async move {
            b.acquire(&name, &opts(ttl).with_wait(Wait::For(Duration::from_secs(20))))
                .await
        })
    };
    // Let the waiter start waiting; the assertion holds either way.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let released_at = Instant::now();
    a.release(&lease).await.expect("release");
    let got = waiter
        .await
        .expect("waiter task")
        .expect("acquire")
        .expect("waiter should acquire after release, well before the holder's ttl");
    assert!(
        released_at.elapsed() < ttl / 2,
        "waiter only got the lock near the holder's ttl, not on release"
    );
    assert!(got.fencing_token() > lease.fencing_token());
    b.release(&got).await.expect("release");
}

/// Backends that claim notification wake a waiter promptly on release, even
/// when its backoff policy would make a polling loop sleep for seconds.
pub async fn wake_up_follows_release_promptly(h: &dyn Harness) {
    const CASE: &str = "wake_up_follows_release_promptly";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.wait_notification {
        return skip(CASE, "backend polls (wait_notification = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("wake-up");
    let slow_polling = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        factor: 1.0,
    };
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let lease = must_acquire(&a, &name, &opts(ttl)).await;
        let waiter = {
            let (b, name) = (b.clone(), name.clone());
            tokio::spawn(async move {
                let o = opts(ttl)
                    .with_wait(Wait::For(Duration::from_secs(20)))
                    .backoff(slow_polling);
                let got = b.acquire(&name, &o).await;
                (Instant::now(), got)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let released_at = Instant::now();
        a.release(&lease).await.expect("release");
        let (acquired_at, got) = waiter.await.expect("waiter task");
        let got = got.expect("acquire").expect("waiter acquires");
        worst = worst.max(acquired_at.saturating_duration_since(released_at));
        b.release(&got).await.expect("release");
    }
    assert!(
        worst < Duration::from_millis(750),
        "a notified waiter took {worst:?} after the release to acquire"
    );
}

/// Only the owner token can extend or release.
pub async fn non_owner_cannot_release_or_extend(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("non-owner");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let forged = Lease::new(
        lease.backend(),
        name.clone(),
        OwnerToken::random(),
        lease.fencing_token(),
        ttl,
        lease.valid_until(),
    )
    .with_data(lease.data());
    assert_not_held(
        b.release(&forged).await,
        "release with a forged owner token",
    );
    assert_not_held(
        b.extend(&forged, ttl).await,
        "extend with a forged owner token",
    );
    assert_not_held(
        a.release(&forged).await,
        "release with a forged owner token from the holder's own client",
    );
    must_be_held(&b, &name, ttl).await;
    a.release(&lease).await.expect("the real owner releases");
}

/// An exported lease can be released by another client (the
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
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let exported = lease.export();
    let imported = Lease::import(&exported).expect("import");
    assert_eq!(imported.fencing_token(), lease.fencing_token());
    let extended = b
        .extend(&imported, ttl)
        .await
        .expect("extend via imported lease");
    must_be_held(&c, &name, ttl).await;
    b.release(&extended)
        .await
        .expect("release via imported lease");
    let lc = must_acquire(&c, &name, &opts(ttl)).await;
    c.release(&lc).await.expect("release");
}

/// An abandoned lock (holder never releases) frees once its ttl passes, and
/// not before its lease's validity ended.
pub async fn abandoned_lock_expires_after_ttl(h: &dyn Harness) {
    const CASE: &str = "abandoned_lock_expires_after_ttl";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.ttl_expiry {
        return skip(
            CASE,
            "liveness is a session, not a ttl (ttl_expiry = false)",
        );
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("abandoned");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    must_be_held(&b, &name, ttl).await;
    let got = b
        .acquire(
            &name,
            &opts(ttl).with_wait(Wait::For(ttl + Duration::from_secs(5))),
        )
        .await
        .expect("acquire")
        .expect("an abandoned lock frees after its ttl");
    let at = Instant::now();
    assert!(
        at >= lease.valid_until(),
        "acquired {:?} before the abandoned lease's validity ended",
        lease.valid_until() - at
    );
    assert!(got.fencing_token() > lease.fencing_token());
    b.release(&got).await.expect("release");
}

/// Extending keeps the lock past its original ttl.
pub async fn extend_keeps_the_lock(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    let ttl = short_ttl(&caps);
    let name = unique_name("extend");
    let mut lease = must_acquire(&a, &name, &opts(ttl)).await;
    let until = Instant::now() + ttl * 2;
    while Instant::now() < until {
        tokio::time::sleep(ttl / 3).await;
        let before = lease.valid_until();
        lease = a.extend(&lease, ttl).await.expect("extend a held lease");
        assert!(
            lease.valid_until() > before,
            "extend moved validity forward"
        );
        must_be_held(&b, &name, ttl).await;
    }
    let more = a.extend_many(std::slice::from_ref(&lease)).await;
    assert_eq!(more.len(), 1, "extend_many answers once per lease");
    let lease = more
        .into_iter()
        .next()
        .and_then(|r| r.ok())
        .expect("extend_many of a held lease");
    a.release(&lease).await.expect("release");
}

/// After a release, extending or releasing the old lease is refused.
pub async fn extend_and_release_after_release_fail(h: &dyn Harness) {
    let a = h.client().await;
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("after-release");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    a.release(&lease).await.expect("release");
    assert_not_held(a.extend(&lease, ttl).await, "extend after release");
    assert_not_held(a.release(&lease).await, "second release");
}

/// After a lease expired and someone else took the lock, the old lease can
/// neither extend nor release.
pub async fn extend_and_release_after_expiry_fail(h: &dyn Harness) {
    const CASE: &str = "extend_and_release_after_expiry_fail";
    let (a, b, c) = (h.client().await, h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.ttl_expiry {
        return skip(
            CASE,
            "liveness is a session, not a ttl (ttl_expiry = false)",
        );
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("after-expiry");
    let old = must_acquire(&a, &name, &opts(ttl)).await;
    let new = b
        .acquire(
            &name,
            &opts(long_ttl(&caps)).with_wait(Wait::For(ttl + Duration::from_secs(5))),
        )
        .await
        .expect("acquire")
        .expect("taken over after expiry");
    assert_not_held(a.extend(&old, ttl).await, "extend of an expired lease");
    assert_not_held(a.release(&old).await, "release of an expired lease");
    must_be_held(&c, &name, ttl).await;
    b.release(&new).await.expect("the new holder releases");
}

/// A guard whose lease is taken away reports `lost()`.
pub async fn lost_fires_when_lease_is_taken_away(h: &dyn Harness) {
    let a = h.client().await;
    let caps = a.capabilities();
    let ttl = short_ttl(&caps);
    let client = LockClient::with_defaults(a.clone(), opts(ttl));
    let name = unique_name("lost");
    let guard = client.try_lock(&name).await.expect("lock").expect("free");
    let lost = guard.lost();
    assert!(!guard.is_lost());
    // Outlast the ttl: the watchdog must keep it.
    tokio::time::sleep(ttl + ttl / 2).await;
    assert!(
        !guard.is_lost(),
        "watchdog failed to keep the lock: {:?}",
        guard.state()
    );
    must_be_held(&h.client().await, &name, ttl).await;
    // Now release it behind the guard's back.
    a.release(&guard.lease())
        .await
        .expect("release behind the guard");
    let reason = tokio::time::timeout(ttl * 2, lost)
        .await
        .expect("lost() fired within two ttls");
    assert_eq!(reason, LostReason::Rejected);
    assert!(guard.is_lost());
    assert_not_held(guard.release().await, "releasing a lost guard");
}

/// Successive holders get strictly increasing fencing tokens.
pub async fn fencing_tokens_increase(h: &dyn Harness) {
    let clients = [h.client().await, h.client().await, h.client().await];
    let ttl = long_ttl(&clients[0].capabilities());
    let name = unique_name("fencing");
    let mut last = None;
    for i in 0..15 {
        let c = &clients[i % clients.len()];
        let lease = must_acquire(c, &name, &opts(ttl)).await;
        if let Some(prev) = last {
            assert!(
                lease.fencing_token() > prev,
                "fencing token {} after {prev}",
                lease.fencing_token()
            );
        }
        last = Some(lease.fencing_token());
        c.release(&lease).await.expect("release");
    }
}

/// Many clients, many acquisitions, one name: no two holds overlap, tokens
/// increase, and every client gets its turns (no starvation).
pub async fn mutual_exclusion_under_contention(h: &dyn Harness) {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 125;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(h.client().await);
    }
    let ttl = long_ttl(&clients[0].capabilities());
    let name = unique_name("contention");
    let history = History::new();
    let mut tasks = Vec::new();
    for (id, c) in clients.into_iter().enumerate() {
        let (name, history) = (name.clone(), history.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let o = opts(ttl).with_wait(Wait::For(Duration::from_secs(60)));
                let lease = match c.acquire(&name, &o).await {
                    Ok(Some(l)) => l,
                    Ok(None) => panic!("client {id} starved: no lock within 60 s"),
                    Err(e) => panic!("client {id} acquire failed: {e}"),
                };
                let start = Instant::now();
                // A hold that spans a scheduling point, so overlaps show.
                tokio::task::yield_now().await;
                let end = Instant::now();
                history.record(Hold {
                    client: id,
                    fencing: lease.fencing_token().get(),
                    start,
                    end,
                });
                c.release(&lease)
                    .await
                    .unwrap_or_else(|e| panic!("client {id} release: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    assert_eq!(history.len(), CLIENTS * ROUNDS);
    if let Err(e) = history.check() {
        panic!("{e}");
    }
}

/// Dropping an in-flight acquire leaves nothing held and nothing queued.
pub async fn cancelled_acquire_leaves_nothing_held(h: &dyn Harness) {
    let (a, b, c) = (h.client().await, h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("cancelled");
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    // B waits, then gives up by dropping its future mid-wait.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        b.acquire(&name, &opts(ttl).with_wait(Wait::For(Duration::from_secs(20)))),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "B's acquire should still have been waiting"
    );
    a.release(&lease).await.expect("release");
    // Neither a zombie holder nor a zombie queue entry may stand in C's way.
    let got = c
        .acquire(&name, &opts(ttl).with_wait(Wait::For(Duration::from_secs(3))))
        .await
        .expect("acquire")
        .expect("a cancelled acquire left the lock held or queued");
    c.release(&got).await.expect("release");
    // And B's client is not stuck either.
    let lb = must_acquire(&b, &name, &opts(ttl)).await;
    b.release(&lb).await.expect("release");
}

/// Awkward names work, map to distinct keys, and do not collide.
pub async fn awkward_names_are_distinct_locks(h: &dyn Harness) {
    let (a, b) = (h.client().await, h.client().await);
    let ttl = long_ttl(&a.capabilities());
    let base = unique_name("names");
    let long_prefix = "L".repeat(LockName::MAX_LEN - 200);
    let suffixes: Vec<String> = vec![
        "plain".into(),
        "ünïcødé 锁 ключ 🔒".into(),
        "a/b".into(),
        "a%2Fb".into(),
        "a%2fb".into(),
        "a_b".into(),
        "/leading".into(),
        "trailing/".into(),
        "double//slash".into(),
        ".".into(),
        "..".into(),
        "with space".into(),
        " ".into(),
        "quote'single".into(),
        "quote\"double".into(),
        "{hash-tag}".into(),
        "{".into(),
        "}".into(),
        "'; DROP TABLE distlock_locks; --".into(),
        "%".into(),
        "_".into(),
        "*?[]".into(),
        "back\\slash".into(),
        "tab\tnew\nline".into(),
        "UPPER".into(),
        "upper".into(),
        format!("{long_prefix}-one"),
        format!("{long_prefix}-two"),
    ];
    let mut held = Vec::new();
    for s in &suffixes {
        let full = format!("{base}/{s}");
        let full = if full.len() > LockName::MAX_LEN {
            // Keep the distinguishing tail.
            let cut = full.len() - LockName::MAX_LEN;
            let mut at = cut;
            while !full.is_char_boundary(at) {
                at += 1;
            }
            full[at..].to_string()
        } else {
            full
        };
        let name = LockName::new(&full).expect("valid name");
        let lease = match a.acquire(&name, &opts(ttl)).await {
            Ok(Some(l)) => l,
            Ok(None) => panic!("name {s:?} collided with an earlier name in the list"),
            Err(e) => panic!("name {s:?} failed: {e}"),
        };
        must_be_held(&b, &name, ttl).await;
        held.push(lease);
    }
    for lease in &held {
        a.release(lease).await.expect("release");
    }
    // Every name is free again.
    for lease in &held {
        let l = must_acquire(&b, lease.name(), &opts(ttl)).await;
        b.release(&l).await.expect("release");
    }
}

/// Zero and out-of-range ttls and malformed backoffs are `InvalidOptions`,
/// leases from another backend are refused; nothing panics.
pub async fn bad_options_are_rejected(h: &dyn Harness) {
    let a = h.client().await;
    let caps = a.capabilities();
    let name = unique_name("bad-options");
    let is_invalid = |r: &distlock_core::Result<Option<Lease>>| {
        matches!(r, Err(LockError::InvalidOptions { .. }))
    };
    let r = a.acquire(&name, &opts(Duration::ZERO)).await;
    assert!(is_invalid(&r), "zero ttl: {r:?}");
    if caps.max_ttl < Duration::MAX / 2 {
        let r = a.acquire(&name, &opts(caps.max_ttl * 2)).await;
        assert!(is_invalid(&r), "ttl above max_ttl: {r:?}");
    }
    if caps.min_ttl > Duration::from_millis(1) {
        let r = a.acquire(&name, &opts(caps.min_ttl / 2)).await;
        assert!(is_invalid(&r), "ttl below min_ttl: {r:?}");
    }
    let mut bad_backoff = opts(long_ttl(&caps));
    bad_backoff.backoff.factor = f64::NAN;
    let r = a.acquire(&name, &bad_backoff).await;
    assert!(is_invalid(&r), "NaN backoff: {r:?}");

    let ttl = long_ttl(&caps);
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let r = a.extend(&lease, Duration::ZERO).await;
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "extend with zero ttl: {r:?}"
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
        "foreign lease: {r:?}"
    );
    a.release(&lease).await.expect("release");
}

/// `status` (where supported) tells held from free.
pub async fn status_reports_the_holder(h: &dyn Harness) {
    const CASE: &str = "status_reports_the_holder";
    let a = h.client().await;
    let ttl = long_ttl(&a.capabilities());
    let name = unique_name("status");
    match a.status(&name).await {
        Err(LockError::Unsupported { .. }) => return skip(CASE, "status is unsupported"),
        Err(e) => panic!("status of a free name: {e}"),
        Ok(s) => assert!(!s.held, "a never-taken name reads as held"),
    }
    let lease = must_acquire(&a, &name, &opts(ttl)).await;
    let s = a.status(&name).await.expect("status");
    assert!(s.held, "status does not see the holder");
    if let Some(t) = s.fencing_token {
        assert_eq!(
            t,
            lease.fencing_token(),
            "status shows another fencing token"
        );
    }
    a.release(&lease).await.expect("release");
    let s = a.status(&name).await.expect("status");
    assert!(!s.held, "status still sees a released lock as held");
}

/// Environment variable that turns a test process into the child holder of
/// [`lease_expires_when_holder_is_killed`].
pub const CHILD_ENV: &str = "DISTLOCK_CONFORMANCE_CHILD_LOCK";
/// The line the child prints once it holds the lock.
const CHILD_MARK: &str = "DISTLOCK-CHILD-HOLDS";

/// A child process takes the lock and is SIGKILLed; the lock frees within
/// the backend's liveness bound (ttl, or session timeout).
///
/// The case re-runs the current test binary as the child (`test_path` is the
/// test's path as libtest names it); in the child, the same function sees
/// [`CHILD_ENV`] and holds the lock until killed.
pub async fn lease_expires_when_holder_is_killed(h: &dyn Harness, test_path: &str) {
    const CASE: &str = "lease_expires_when_holder_is_killed";
    if let Ok(lock) = std::env::var(CHILD_ENV) {
        return child_hold(h, &lock).await;
    }
    let b = h.client().await;
    let caps = b.capabilities();
    if !caps.cross_process {
        return skip(CASE, "backend is in-process only (cross_process = false)");
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("killed-holder");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = tokio::process::Command::new(exe)
        .args([test_path, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name.as_str())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child holder");
    let stdout = child.stdout.take().expect("child stdout");
    let fence = tokio::time::timeout(Duration::from_secs(60), async {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // libtest may have printed `test … ... ` on the same line.
            if let Some((_, rest)) = line.split_once(CHILD_MARK) {
                return rest.trim().parse::<u64>().ok();
            }
        }
        None
    })
    .await
    .expect("child reported within 60 s")
    .expect("child acquired the lock");
    must_be_held(&b, &name, ttl).await;
    child.start_kill().expect("SIGKILL the child");
    let _ = child.wait().await;
    let killed_at = Instant::now();
    let bound = h.liveness_bound(ttl) + Duration::from_secs(3);
    let got = b
        .acquire(&name, &opts(ttl).with_wait(Wait::For(bound)))
        .await
        .expect("acquire")
        .unwrap_or_else(|| panic!("lock of a killed holder not freed within {bound:?}"));
    let took = killed_at.elapsed();
    assert!(
        got.fencing_token().get() > fence,
        "fencing token {} after the killed holder's {fence}",
        got.fencing_token()
    );
    println!("{CASE}: freed {took:?} after SIGKILL (bound {bound:?})");
    b.release(&got).await.expect("release");
}

async fn child_hold(h: &dyn Harness, lock: &str) {
    let c = h.client().await;
    let ttl = short_ttl(&c.capabilities());
    let name = LockName::new(lock).expect("child lock name");
    let lease = must_acquire(&c, &name, &opts(ttl)).await;
    // Start on a fresh line: libtest may have printed the test's name.
    println!("\n{CHILD_MARK} {}", lease.fencing_token());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Hold until killed; never release.
    std::future::pending::<()>().await;
}
