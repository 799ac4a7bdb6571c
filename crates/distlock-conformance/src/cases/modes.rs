//! What the reader-writer and semaphore cases share: acquires in a mode,
//! a contention workload that records every hold with its mode, and the
//! checks over such a record.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, Lease, LockName, Mode, Wait};

use super::support::{fast_backoff, joined, must_release};

/// An acquire in `mode` that must not fail; `None` when not granted within
/// the wait.
pub(crate) async fn acquire_in(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    mode: Mode,
    o: &AcquireOptions,
) -> Option<Lease> {
    match c.acquire_as(name, mode, o).await {
        Ok(got) => {
            if let Some(lease) = &got {
                assert_eq!(
                    lease.mode(),
                    mode,
                    "[{case}] a {mode} acquire of `{name}` returned a lease in another mode"
                );
            }
            got
        }
        Err(e) => panic!("[{case}] {mode} acquire of `{name}` failed: {e}"),
    }
}

/// An acquire in `mode` that must be granted.
pub(crate) async fn must_acquire_in(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    mode: Mode,
    o: &AcquireOptions,
) -> Lease {
    acquire_in(case, c, name, mode, o).await.unwrap_or_else(|| {
        panic!(
            "[{case}] expected a {mode} hold of `{name}` (wait {:?}), but it was refused",
            o.wait
        )
    })
}

/// A try-once acquire in `mode` that must be refused (`Ok(None)`).
pub(crate) async fn must_wait_in(
    case: &str,
    c: &Arc<dyn DistributedLock>,
    name: &LockName,
    mode: Mode,
    ttl: Duration,
    why: &str,
) {
    if let Some(lease) = acquire_in(case, c, name, mode, &AcquireOptions::try_once(ttl)).await {
        panic!(
            "[{case}] a {mode} hold of `{name}` was granted (fencing {}) although {why}",
            lease.fencing_token()
        );
    }
}

/// One recorded hold, with its mode and when its acquire was called.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModeHold {
    pub(crate) client: usize,
    pub(crate) mode: Mode,
    pub(crate) fencing: u64,
    /// When the acquire was called (the request went out no earlier).
    pub(crate) called: Instant,
    /// When the acquire returned (the hold began no later).
    pub(crate) start: Instant,
    /// When the release was called (the hold ended no earlier).
    pub(crate) end: Instant,
}

/// Clients taking turns on one name, each round in the mode `pick` gives
/// (by client and round); every hold lasts `hold` and is recorded.
pub(crate) async fn contend(
    case: &'static str,
    clients: Vec<Arc<dyn DistributedLock>>,
    name: &LockName,
    ttl: Duration,
    rounds: usize,
    hold: Duration,
    pick: fn(usize, usize) -> Mode,
) -> Vec<ModeHold> {
    let record = Arc::new(Mutex::new(Vec::new()));
    let o = AcquireOptions::try_once(ttl)
        .with_wait(Wait::For(Duration::from_secs(60)))
        .with_backoff(fast_backoff());
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(client, c)| {
            let (name, record) = (name.clone(), record.clone());
            tokio::spawn(async move {
                for round in 0..rounds {
                    let mode = pick(client, round);
                    let called = Instant::now();
                    let lease = must_acquire_in(case, &c, &name, mode, &o).await;
                    let start = Instant::now();
                    tokio::time::sleep(hold).await;
                    let end = Instant::now();
                    must_release(case, &c, &lease).await;
                    let fencing = lease.fencing_token().get();
                    distlock_core::sync::lock(&record).push(ModeHold {
                        client,
                        mode,
                        fencing,
                        called,
                        start,
                        end,
                    });
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        joined(case, t);
    }
    let holds = distlock_core::sync::lock(&record).clone();
    holds
}

/// The most holds among `holds` (those `count` selects) that overlap at
/// one moment, by their recorded intervals (each inside the real hold).
pub(crate) fn most_at_once(holds: &[ModeHold], count: impl Fn(&ModeHold) -> bool) -> usize {
    let mut edges: Vec<(Instant, i32)> = holds
        .iter()
        .filter(|h| count(h))
        .flat_map(|h| [(h.start, 1), (h.end, -1)])
        .collect();
    // At equal instants an end comes first: touching intervals do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Fencing over mixed grants: every token distinct, and a grant whose
/// acquire was called after another grant returned has a greater token.
#[track_caller]
pub(crate) fn assert_fencing_order(case: &str, holds: &[ModeHold]) {
    let mut tokens: Vec<u64> = holds.iter().map(|h| h.fencing).collect();
    tokens.sort_unstable();
    if let Some(pair) = tokens.windows(2).find(|p| p[0] == p[1]) {
        panic!(
            "[{case}] backend claims `fencing` but two grants got the same token {}",
            pair[0]
        );
    }
    for a in holds {
        for b in holds {
            assert!(
                b.called <= a.start || b.fencing > a.fencing,
                "[{case}] backend claims `fencing` but a {} grant got token {} although its acquire began after a {} grant with token {} returned",
                b.mode, b.fencing, a.mode, a.fencing
            );
        }
    }
}
