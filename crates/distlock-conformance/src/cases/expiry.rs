//! Expiry and loss: an abandoned lock frees after its ttl, an expired
//! lease never comes back to life, and a guard reports a lease taken away.

use std::time::{Duration, Instant};

use distlock_core::{LockClient, LockError, LostReason, Wait};

use super::support::{
    acquire, assert_fenced_after, assert_not_held, long_ttl, must, must_acquire, must_be_held,
    must_release, opts, short_ttl, skip, unique_name,
};
use crate::harness::Harness;

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
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    must_be_held(CASE, &b, &name, ttl).await;
    let bound = ttl + Duration::from_secs(5);
    let o = opts(ttl).with_wait(Wait::For(bound));
    let got = acquire(CASE, &b, &name, &o).await.unwrap_or_else(|| {
        panic!("[{CASE}] backend claims `ttl_expiry` but an abandoned lock with a ttl of {ttl:?} was not freed within {bound:?}")
    });
    let at = Instant::now();
    assert!(
        at >= lease.valid_until(),
        "[{CASE}] acquired {:?} before the abandoned lease's validity ended",
        lease.valid_until() - at
    );
    assert_fenced_after(CASE, &caps, &got, &lease);
    must_release(CASE, &b, &got).await;
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
    let old = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let o = opts(long_ttl(&caps)).with_wait(Wait::For(ttl + Duration::from_secs(5)));
    let new = must_acquire(CASE, &b, &name, &o).await;
    let what = "extend of an expired lease after another client took the lock";
    assert_not_held(CASE, a.extend(&old, ttl).await, what);
    let what = "release of an expired lease after another client took the lock";
    assert_not_held(CASE, a.release(&old).await, what);
    must_be_held(CASE, &c, &name, ttl).await;
    must_release(CASE, &b, &new).await;
}

/// Beyond the moment the server lets a lock go: for scheduling and clocks.
fn expiry_slack(ttl: Duration) -> Duration {
    ttl / 10 + Duration::from_millis(250)
}

/// A lease that expired while nobody took the lock is gone for good:
/// extending it and releasing it are both `NotHeld` (an expired lease is
/// never brought back to life), and the lock is free for anyone.
pub async fn extend_and_release_of_an_expired_lease_are_not_held(h: &dyn Harness) {
    const CASE: &str = "extend_and_release_of_an_expired_lease_are_not_held";
    let (a, b) = (h.client().await, h.client().await);
    let caps = a.capabilities();
    if !caps.ttl_expiry {
        return skip(
            CASE,
            "liveness is a session, not a ttl (ttl_expiry = false)",
        );
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("expired-untaken");
    let lease = must_acquire(CASE, &a, &name, &opts(ttl)).await;
    let granted = Instant::now();
    // Nothing to wait on: the server lets the lock go when its time is up.
    let gone = granted + h.liveness_bound(ttl) + expiry_slack(ttl);
    tokio::time::sleep_until(gone.into()).await;
    match a.extend(&lease, ttl).await {
        Err(LockError::NotHeld { .. }) => {}
        Ok(_) => panic!(
            "[{CASE}] backend claims `ttl_expiry` but extended a lease {:?} after its ttl of {ttl:?} ran out (nobody had taken the lock since): an expired lease must not come back to life (expected NotHeld)",
            granted.elapsed()
        ),
        Err(e) => panic!("[{CASE}] extend of an expired lease: expected NotHeld, got {e}"),
    }
    let what = "backend claims `ttl_expiry` but the release of an expired lease (nobody had taken the lock since) did not answer NotHeld";
    assert_not_held(CASE, a.release(&lease).await, what);
    let got = must_acquire(CASE, &b, &name, &opts(ttl)).await;
    assert_fenced_after(CASE, &caps, &got, &lease);
    must_release(CASE, &b, &got).await;
}

/// A guard whose lease is taken away reports `lost()`.
pub async fn lost_fires_when_lease_is_taken_away(h: &dyn Harness) {
    const CASE: &str = "lost_fires_when_lease_is_taken_away";
    let a = h.client().await;
    let caps = a.capabilities();
    let ttl = short_ttl(&caps);
    let client = LockClient::with_defaults(a.clone(), opts(ttl));
    let name = unique_name("lost");
    let guard = must(
        CASE,
        "try_lock of a free name",
        client.try_lock(&name).await,
    )
    .unwrap_or_else(|| panic!("[{CASE}] a free name was held"));
    let lost = guard.lost();
    assert!(!guard.is_lost(), "[{CASE}] a fresh guard reads as lost");
    // Outlast the ttl: the watchdog must keep it.
    tokio::time::sleep(ttl + ttl / 2).await;
    assert!(
        !guard.is_lost(),
        "[{CASE}] the watchdog failed to keep the lock: {:?}",
        guard.state()
    );
    must_be_held(CASE, &h.client().await, &name, ttl).await;
    // Now release it behind the guard's back.
    must_release(CASE, &a, &guard.lease()).await;
    let reason = tokio::time::timeout(ttl * 2, lost)
        .await
        .unwrap_or_else(|_| panic!("[{CASE}] lost() did not fire within two ttls"));
    assert_eq!(
        reason,
        LostReason::Rejected,
        "[{CASE}] why the guard was lost"
    );
    assert!(guard.is_lost(), "[{CASE}] a lost guard reads as held");
    assert_not_held(CASE, guard.release().await, "releasing a lost guard");
}
