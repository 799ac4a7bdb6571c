//! Reader-writer locks: readers share a name, a writer (the mutex) holds
//! it alone, a waiting writer is not starved where the backend queues,
//! fencing tokens rise over mixed grants, and upgrades are atomic or
//! refused.

use std::time::{Duration, Instant};

use distlock_core::{LockError, Mode, Wait};

use super::cancel::{attempt_span, cancel_at, cancel_point, settle};
use super::modes::{
    acquire_in, assert_fencing_order, contend, most_at_once, must_acquire_in, must_wait_in,
};
use super::support::{
    clients, fast_backoff, joined, long_ttl, must_release, opts, skip, unique_name,
    wait_until_queued,
};
use crate::harness::Harness;

const READ: Mode = Mode::Shared;
const WRITE: Mode = Mode::Exclusive;

/// Readers hold a name together; a writer — or a mutex holder, the same
/// hold — waits for them, and they wait for it; a semaphore permit fits
/// beside neither. Every grant's token rises.
pub async fn readers_share_and_writers_exclude(h: &dyn Harness) {
    const CASE: &str = "readers_share_and_writers_exclude";
    let c = clients(h, 3).await;
    let caps = c[0].capabilities();
    if !caps.shared {
        return skip(CASE, "backend serves no shared holds (shared = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("rw");
    let r1 = must_acquire_in(CASE, &c[0], &name, READ, &opts(ttl)).await;
    let r2 = must_acquire_in(CASE, &c[1], &name, READ, &opts(ttl)).await;
    must_wait_in(CASE, &c[2], &name, WRITE, ttl, "two readers hold it").await;
    let r = c[2].acquire(&name, &opts(ttl)).await;
    assert!(
        matches!(r, Ok(None)),
        "[{CASE}] a mutex acquire beside two readers gave {r:?}: the mutex must be the write lock"
    );
    if caps.semaphore {
        let permit = Mode::Permit { limit: 5 };
        must_wait_in(CASE, &c[2], &name, permit, ttl, "readers hold it").await;
    }
    must_release(CASE, &c[0], &r1).await;
    must_release(CASE, &c[1], &r2).await;
    let w = must_acquire_in(CASE, &c[2], &name, WRITE, &opts(ttl)).await;
    must_wait_in(CASE, &c[0], &name, READ, ttl, "a writer holds it").await;
    must_release(CASE, &c[2], &w).await;
    let r3 = must_acquire_in(CASE, &c[0], &name, READ, &opts(ttl)).await;
    must_release(CASE, &c[0], &r3).await;
    if caps.fencing {
        let tokens = [&r1, &r2, &w, &r3].map(|l| l.fencing_token());
        assert!(
            tokens[0] != tokens[1] && tokens[2] > tokens[0].max(tokens[1]) && tokens[3] > tokens[2],
            "[{CASE}] backend claims `fencing` but the tokens of reader, reader, writer, reader were {tokens:?}"
        );
    }
}

/// Eight clients, nine reads in ten: no writer overlaps anyone, readers
/// do overlap, tokens rise over the mixed grants.
pub async fn readers_and_writers_under_contention(h: &dyn Harness) {
    const CASE: &str = "readers_and_writers_under_contention";
    let all = clients(h, 8).await;
    let caps = all[0].capabilities();
    if !caps.shared {
        return skip(CASE, "backend serves no shared holds (shared = false)");
    }
    let name = unique_name("rw-contention");
    let pick = |client: usize, round: usize| {
        if (client * 7 + round * 3) % 10 == 0 {
            WRITE
        } else {
            READ
        }
    };
    let hold = Duration::from_millis(10);
    let holds = contend(CASE, all, &name, long_ttl(&caps), 8, hold, pick).await;
    for w in holds.iter().filter(|h| h.mode == WRITE) {
        let beside = holds
            .iter()
            .filter(|o| o.fencing != w.fencing && o.start < w.end && w.start < o.end)
            .map(|o| {
                format!(
                    "a {} hold of client {} (token {})",
                    o.mode, o.client, o.fencing
                )
            })
            .collect::<Vec<_>>();
        assert!(
            beside.is_empty(),
            "[{CASE}] a writer (token {}) held `{name}` beside {}",
            w.fencing,
            beside.join(", ")
        );
    }
    let writers = holds.iter().filter(|h| h.mode == WRITE).count();
    assert!(writers > 0, "[{CASE}] the workload took no write lock");
    let readers = most_at_once(&holds, |h| h.mode == READ);
    assert!(
        readers >= 2,
        "[{CASE}] seven readers in eight clients never held `{name}` together"
    );
    if caps.fencing {
        assert_fencing_order(CASE, &holds);
    }
    println!(
        "[{CASE}] {} holds ({writers} writes), at most {readers} readers at once",
        holds.len()
    );
}

/// On a backend that queues, a reader arriving while a writer waits does
/// not overtake it: the writer goes when the earlier reader leaves, the
/// new reader after the writer.
pub async fn waiting_writer_is_not_starved(h: &dyn Harness) {
    const CASE: &str = "waiting_writer_is_not_starved";
    let c = clients(h, 3).await;
    let caps = c[0].capabilities();
    if !caps.shared || !caps.fifo {
        return skip(CASE, "needs shared holds and a queue (shared, fifo)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("rw-starve");
    let first = must_acquire_in(CASE, &c[0], &name, READ, &opts(ttl)).await;
    let long_wait = opts(ttl)
        .with_wait(Wait::For(Duration::from_secs(30)))
        .with_backoff(fast_backoff());
    let writer = {
        let (w, name) = (c[1].clone(), name.clone());
        tokio::spawn(async move {
            let lease = must_acquire_in(CASE, &w, &name, WRITE, &long_wait).await;
            let got = Instant::now();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let left = Instant::now();
            must_release(CASE, &w, &lease).await;
            (got, left, lease.fencing_token())
        })
    };
    wait_until_queued(CASE, &c[0], &name, 1).await;
    must_wait_in(CASE, &c[2], &name, READ, ttl, "a writer waits for it").await;
    let reader = {
        let (r, name) = (c[2].clone(), name.clone());
        tokio::spawn(async move {
            let lease = must_acquire_in(CASE, &r, &name, READ, &long_wait).await;
            let got = Instant::now();
            must_release(CASE, &r, &lease).await;
            (got, lease.fencing_token())
        })
    };
    wait_until_queued(CASE, &c[0], &name, 2).await;
    let released = Instant::now();
    must_release(CASE, &c[0], &first).await;
    let (w_got, w_left, w_token) = joined(CASE, writer.await);
    let (r_got, r_token) = joined(CASE, reader.await);
    assert!(
        r_got >= w_left,
        "[{CASE}] the reader that arrived while a writer waited got `{name}` {:?} before the writer left",
        w_left.saturating_duration_since(r_got)
    );
    assert!(
        w_got >= released,
        "[{CASE}] the writer got `{name}` while the first reader still held it"
    );
    if caps.fencing {
        assert!(
            r_token > w_token,
            "[{CASE}] backend claims `fencing` but the reader after the writer got {r_token} after {w_token}"
        );
    }
}

/// Reader and writer acquires cancelled at random points leave nothing
/// held and nothing queued: a fresh writer takes the name afterwards.
pub async fn cancelled_rw_acquires_leave_nothing_held(h: &dyn Harness) {
    const CASE: &str = "cancelled_rw_acquires_leave_nothing_held";
    let c = clients(h, 3).await;
    let caps = c[0].capabilities();
    if !caps.shared {
        return skip(CASE, "backend serves no shared holds (shared = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("rw-cancel");
    let span = attempt_span(CASE, &c[1], &name, &opts(ttl)).await * 2 + Duration::from_millis(20);
    let o = opts(ttl)
        .with_wait(Wait::For(Duration::from_secs(30)))
        .with_backoff(fast_backoff());
    // Writers cancelled while a reader holds; readers while a writer holds.
    // Clean-ups of the cancellations may still be landing when the next
    // round takes its holder: it waits for them (no longer).
    let settled = opts(ttl)
        .with_wait(Wait::For(settle(h)))
        .with_backoff(fast_backoff());
    for (held_as, cancelled_as) in [(READ, WRITE), (WRITE, READ)] {
        let holder = must_acquire_in(CASE, &c[0], &name, held_as, &settled).await;
        for i in 0..20 {
            let acquire = c[1].acquire_as(&name, cancelled_as, &o);
            if let Some(r) = cancel_at(cancel_point(i, span), acquire).await {
                panic!("[{CASE}] a {cancelled_as} acquire beside a {held_as} holder ended with {r:?} instead of waiting");
            }
        }
        must_release(CASE, &c[0], &holder).await;
    }
    let o = opts(ttl)
        .with_wait(Wait::For(settle(h)))
        .with_backoff(fast_backoff());
    let fresh = acquire_in(CASE, &c[2], &name, WRITE, &o).await.unwrap_or_else(|| {
        panic!("[{CASE}] after the cancellations a writer could not take `{name}` within {:?}: a cancelled acquire leaked a hold or a queue place", settle(h))
    });
    must_release(CASE, &c[2], &fresh).await;
}

/// With `upgrade`: a sole reader becomes the writer in place (new, greater
/// token), a reader beside another waits for it to leave and keeps its read
/// lock meanwhile; a non-reader cannot upgrade. Without: `Unsupported`.
pub async fn upgrade_is_atomic_or_refused(h: &dyn Harness) {
    const CASE: &str = "upgrade_is_atomic_or_refused";
    let c = clients(h, 2).await;
    let caps = c[0].capabilities();
    if !caps.shared {
        return skip(CASE, "backend serves no shared holds (shared = false)");
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("upgrade");
    let r1 = must_acquire_in(CASE, &c[0], &name, READ, &opts(ttl)).await;
    if !caps.upgrade {
        let r = c[0].upgrade(&r1, &opts(ttl)).await;
        assert!(
            matches!(r, Err(LockError::Unsupported { .. })),
            "[{CASE}] backend does not claim `upgrade` but an upgrade gave {r:?}"
        );
        return must_release(CASE, &c[0], &r1).await;
    }
    let r2 = must_acquire_in(CASE, &c[1], &name, READ, &opts(ttl)).await;
    let r = c[0].upgrade(&r1, &opts(ttl)).await;
    assert!(
        matches!(r, Ok(None)),
        "[{CASE}] an upgrade beside another reader gave {r:?} instead of waiting"
    );
    if let Err(e) = c[0].extend(&r1, ttl).await {
        panic!("[{CASE}] the read lock was not kept after a refused upgrade: {e}");
    }
    let upgrading = {
        let (a, r1) = (c[0].clone(), r1.clone());
        let o = opts(ttl).with_wait(Wait::For(Duration::from_secs(30)));
        tokio::spawn(async move { a.upgrade(&r1, &o).await })
    };
    wait_until_queued(CASE, &c[1], &name, 1).await;
    must_release(CASE, &c[1], &r2).await;
    let w = match joined(CASE, upgrading.await) {
        Ok(Some(w)) => w,
        other => {
            panic!("[{CASE}] the upgrade did not complete once the other reader left: {other:?}")
        }
    };
    assert_eq!(
        w.mode(),
        WRITE,
        "[{CASE}] an upgraded lease is not exclusive"
    );
    assert!(
        w.fencing_token() > r2.fencing_token().max(r1.fencing_token()),
        "[{CASE}] the upgraded lease's token {} is not above the readers' {} and {}",
        w.fencing_token(),
        r1.fencing_token(),
        r2.fencing_token()
    );
    must_wait_in(
        CASE,
        &c[1],
        &name,
        READ,
        ttl,
        "it was upgraded to a write lock",
    )
    .await;
    let r = c[0].upgrade(&w, &opts(ttl)).await;
    assert!(
        matches!(r, Err(LockError::InvalidOptions { .. })),
        "[{CASE}] upgrading an exclusive lease gave {r:?}, not InvalidOptions"
    );
    must_release(CASE, &c[0], &w).await;
}
