//! Fault tests: the database server goes away and comes back, under each
//! strategy.
//!
//! These stop and start the shared PostgreSQL and MariaDB servers through
//! `distlock_conformance::services` (`$DISTLOCK_SERVICES_SCRIPT`), so they
//! run in the serial fault phase (`cargo test … faults_ -- --test-threads=1`);
//! its guard restarts the server even when an assertion fails.
#![cfg(any(feature = "postgres", feature = "mysql"))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::services::StoppedNodes;
use distlock_core::{AcquireOptions, Backoff, DistributedLock, LockClient, LockName, Wait};
use distlock_sql::SqlBackend;

/// Polling so slow that only a notification (or an error) ends a wait early.
fn slow_polling() -> Backoff {
    Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        factor: 1.0,
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_postgres_restart_fails_fast_then_recovers_with_notifications() {
    let _serial = distlock_conformance::services::exclusive().await;
    let real = common::postgres_url();
    let url = format!("{real}?strategy=table&timeout=1500ms");
    let connect = || async {
        match SqlBackend::connect(&url).await {
            Ok(b) => b,
            Err(e) => common::server_missing("PostgreSQL", &real, &e),
        }
    };
    let (a, b) = (connect().await, connect().await);
    let name = LockName::new(format!("faults/restart/{}", std::process::id())).unwrap();
    let ttl = Duration::from_secs(60);
    let lease = a
        .acquire(&name, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");

    // A waiter, listening for the release.
    let waiting = AcquireOptions::new(ttl)
        .with_wait(Wait::For(Duration::from_secs(60)))
        .with_backoff(slow_polling());
    let waiter = {
        let (b, name) = (b.clone(), name.clone());
        tokio::spawn(async move { b.acquire(&name, &waiting).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The server goes away: the waiter hears of it and fails, rather than
    // sleeping out its minute.
    let mut server = StoppedNodes::stop("postgres", &[1]);
    let got = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("the waiter noticed the outage")
        .expect("waiter task");
    let err = got.expect_err("no lock while the server is down");
    assert!(err.is_transient(), "{err:?}");

    // A new acquire while the server is down ends within its wait plus the
    // attempt timeout, with an error.
    let start = Instant::now();
    let err = b
        .acquire(
            &name,
            &AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(1))),
        )
        .await
        .expect_err("the server is down");
    assert!(err.is_transient(), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );

    server.start_all();

    // The holder's row survived the restart: the lock is still held.
    let healthy = AcquireOptions::try_once(ttl);
    assert!(
        b.acquire(&name, &healthy)
            .await
            .expect("server back")
            .is_none(),
        "the lock survived the restart"
    );

    // The listener is back too: a release wakes a slow-polling waiter at once.
    let waiter = {
        let (b, name) = (b.clone(), name.clone());
        tokio::spawn(async move {
            let got = b.acquire(&name, &waiting).await;
            (Instant::now(), got)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    a.release(&lease).await.expect("release after the restart");
    let (acquired_at, got) = waiter.await.expect("waiter task");
    let got = got.expect("acquire").expect("acquired after the release");
    let took = acquired_at.saturating_duration_since(released_at);
    assert!(
        took < Duration::from_secs(2),
        "woken {took:?} after the release"
    );
    b.release(&got).await.unwrap();
}

/// Under the session strategy a restart ends every session, and with it
/// every lock: the holder's guard reports the loss, a new acquire while
/// the server is down fails fast, and once it is back another client takes
/// the lock with a higher fencing token (the sequence survives restarts).
async fn session_restart(what: &str, service: &str, real: String) {
    let _serial = distlock_conformance::services::exclusive().await;
    let url = format!("{real}?strategy=session&timeout=1500ms");
    let connect = || async {
        match SqlBackend::connect(&url).await {
            Ok(b) => LockClient::new(Arc::new(b)),
            Err(e) => common::server_missing(what, &real, &e),
        }
    };
    let (a, b) = (connect().await, connect().await);
    let name = format!("faults/session-restart/{service}/{}", std::process::id());
    let held = a.try_lock(&name).await.expect("acquire").expect("free");
    let first = held.fencing_token();

    let mut server = StoppedNodes::stop(service, &[1]);
    tokio::time::timeout(Duration::from_secs(10), held.lost())
        .await
        .expect("the holder heard that its session ended");
    assert!(held.is_lost());

    let start = Instant::now();
    let err = b
        .lock_with(
            &name,
            &AcquireOptions::default().with_wait(Wait::For(Duration::from_secs(1))),
        )
        .await
        .expect_err("the server is down");
    assert!(err.is_transient(), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );

    server.start_all();
    // The lock went with the session: free at once for another client,
    // with a higher token.
    let mut taken = None;
    for _ in 0..50 {
        match b.try_lock(&name).await {
            Ok(got) => {
                taken = got;
                break;
            }
            // The pool may still hold connections from before the restart.
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e:?}"),
        }
    }
    let taken = taken.expect("free after the restart");
    assert!(
        taken.fencing_token() > first,
        "tokens rise across a restart"
    );
    taken.release().await.expect("release");
    // The old holder's guard stays lost; dropping it is harmless.
    drop(held);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_postgres_session_restart_loses_the_lock_and_tokens_keep_rising() {
    session_restart("PostgreSQL", "postgres", common::postgres_url()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_mariadb_session_restart_loses_the_lock_and_tokens_keep_rising() {
    session_restart("MariaDB", "mariadb", common::mysql_url()).await;
}
