//! Partitions, through the harness's proxied client: a cut-off session is
//! suspended, then recovers or is lost; a cut-off holder reports the loss
//! before anyone else can take its lock.

use std::time::{Duration, Instant};

use distlock_core::{GuardHandle, GuardState, LockClient, LostReason, Wait};

use super::support::{
    assert_fenced_after, long_ttl, must, must_acquire, must_be_held, must_release, opts, short_ttl,
    skip, unique_name,
};
use crate::harness::{Harness, ProxiedClient};
use crate::proxy::ProxyMode;

/// Beyond a session timeout, for the client to notice and report.
const REPORT_SLACK: Duration = Duration::from_secs(2);

fn set_mode(proxied: &ProxiedClient, mode: ProxyMode) {
    for p in &proxied.proxies {
        p.set_mode(mode);
    }
}

/// The harness's proxied client; a backend that claims `claim` must have one.
async fn proxied_client(case: &str, h: &dyn Harness, claim: &str) -> ProxiedClient {
    match h.proxied_client().await {
        Some(p) if !p.proxies.is_empty() => p,
        Some(_) => panic!("[{case}] the harness's proxied client has no proxies to cut it off with"),
        None => panic!(
            "[{case}] backend claims `{claim}` and its harness is networked, but `Harness::proxied_client` returned None: implement it (or answer `networked() == false` for a backend with no network)"
        ),
    }
}

/// Watches `guard` until it is in `wanted`; panics after `within`, or if it
/// was lost on the way (unless `Lost` was wanted).
async fn await_state(
    case: &str,
    guard: &GuardHandle,
    wanted: &GuardState,
    within: Duration,
    when: &str,
) {
    let deadline = Instant::now() + within;
    loop {
        let state = guard.state();
        if std::mem::discriminant(&state) == std::mem::discriminant(wanted) {
            return;
        }
        if let GuardState::Lost(reason) = &state {
            panic!("[{case}] backend claims `session_liveness` but {when} the guard was lost ({reason}) instead of {wanted:?}");
        }
        assert!(
            Instant::now() < deadline,
            "[{case}] backend claims `session_liveness` but {when} the guard stayed {state:?} for {within:?} (expected {wanted:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A session cut off from its servers: the guard turns `Suspended` (the
/// lock may still be held, and nobody else can take it), returns to `Held`
/// when the connections come back within the session timeout, and — cut
/// off again for longer than that — turns `Lost` for the session's reason,
/// after which another client takes the lock.
pub async fn session_suspends_then_recovers_or_is_lost(h: &dyn Harness) {
    const CASE: &str = "session_suspends_then_recovers_or_is_lost";
    let other = h.client().await;
    let caps = other.capabilities();
    if !caps.session_liveness {
        return skip(
            CASE,
            "liveness is the ttl, not a session (session_liveness = false)",
        );
    }
    let proxied = proxied_client(CASE, h, "session_liveness").await;
    let ttl = long_ttl(&caps);
    let session = h.liveness_bound(ttl);
    let client = LockClient::with_defaults(proxied.client.clone(), opts(ttl));
    let name = unique_name("session");
    let guard = must(
        CASE,
        "try_lock of a free name",
        client.try_lock(&name).await,
    )
    .unwrap_or_else(|| panic!("[{CASE}] a free name was held"));
    let handle = guard.handle();

    // A short cut: suspended, still held, then held again.
    set_mode(&proxied, ProxyMode::Blackhole);
    let within = session + REPORT_SLACK;
    await_state(
        CASE,
        &handle,
        &GuardState::Suspended,
        within,
        "with its connections blackholed",
    )
    .await;
    must_be_held(CASE, &other, &name, ttl).await;
    set_mode(&proxied, ProxyMode::Pass);
    await_state(
        CASE,
        &handle,
        &GuardState::Held,
        within,
        "after its connections were restored",
    )
    .await;

    // A long cut: suspended, then lost with the session.
    set_mode(&proxied, ProxyMode::Blackhole);
    await_state(
        CASE,
        &handle,
        &GuardState::Suspended,
        within,
        "cut off a second time",
    )
    .await;
    let bound = session * 2 + REPORT_SLACK;
    let reason = tokio::time::timeout(bound, guard.lost()).await.unwrap_or_else(|_| {
        panic!("[{CASE}] backend claims `session_liveness` but a session cut off for {bound:?} (session timeout {session:?}) was never reported lost")
    });
    assert!(
        matches!(reason, LostReason::Session(_)),
        "[{CASE}] backend claims `session_liveness` but the guard was lost for another reason: {reason}"
    );
    let o = opts(ttl).with_wait(Wait::For(session + REPORT_SLACK));
    let got = must_acquire(CASE, &other, &name, &o).await;
    assert_fenced_after(CASE, &caps, &got, &guard.lease());
    must_release(CASE, &other, &got).await;
    set_mode(&proxied, ProxyMode::Pass);
    drop(guard);
}

/// A holder cut off from every server reports `lost()` strictly before
/// another client's acquisition of its lock returns: there is never a
/// moment when two clients both believe they hold it.
pub async fn partitioned_holder_reports_lost_before_another_acquires(h: &dyn Harness) {
    const CASE: &str = "partitioned_holder_reports_lost_before_another_acquires";
    let other = h.client().await;
    let caps = other.capabilities();
    if !caps.cross_process {
        return skip(
            CASE,
            "in-process backend (cross_process = false): no network to partition",
        );
    }
    if !h.networked() {
        return skip(
            CASE,
            "the harness says the backend has no network (networked = false)",
        );
    }
    let proxied = proxied_client(CASE, h, "cross_process").await;
    // Session backends lose the lock with the session; the others with the ttl.
    let ttl = if caps.session_liveness {
        long_ttl(&caps)
    } else {
        short_ttl(&caps)
    };
    let client = LockClient::with_defaults(proxied.client.clone(), opts(ttl));
    let name = unique_name("partitioned");
    let guard = must(
        CASE,
        "try_lock of a free name",
        client.try_lock(&name).await,
    )
    .unwrap_or_else(|| panic!("[{CASE}] a free name was held"));
    let lost = guard.lost();
    let lost_at = tokio::spawn(async move {
        let reason = lost.await;
        (Instant::now(), reason)
    });

    set_mode(&proxied, ProxyMode::Blackhole);
    let bound = h.liveness_bound(ttl) + Duration::from_secs(5);
    let o = opts(ttl).with_wait(Wait::For(bound));
    let got = must_acquire(CASE, &other, &name, &o).await;
    // Read at once, so no task's scheduling delay blurs the order.
    let lost_before = guard.is_lost();
    let acquired_at = Instant::now();
    let (lost_at, reason) = match tokio::time::timeout(REPORT_SLACK, lost_at).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("[{CASE}] the task watching lost() failed: {e}"),
        Err(_) => panic!("[{CASE}] backend claims `cross_process` but another client acquired the lock while the partitioned holder never reported it lost"),
    };
    assert!(
        lost_before,
        "[{CASE}] backend claims `cross_process` but the partitioned holder's lost() fired {:?} after another client's acquire returned ({reason})",
        lost_at.saturating_duration_since(acquired_at)
    );
    assert!(guard.is_lost(), "[{CASE}] a lost guard reads as held");
    assert_fenced_after(CASE, &caps, &got, &guard.lease());
    must_release(CASE, &other, &got).await;
    set_mode(&proxied, ProxyMode::Pass);
    drop(guard);
}
