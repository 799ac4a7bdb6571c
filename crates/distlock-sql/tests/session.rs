//! The session strategy on PostgreSQL and MariaDB, beyond the shared suite:
//! exclusion and fencing by the database's session locks, waiting in the
//! server's queue, the rule that keeps two local requests for one key off
//! one session (and a build that breaks it on purpose, which the test
//! catches), cancelled waits, sessions killed by the server, ten thousand
//! locks on one client, many acquisitions in flight at once.
#![cfg(any(feature = "postgres", feature = "mysql"))]
// Some functions serve only the tests of one database.
#![allow(dead_code)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, Backoff, DistributedLock, LockClient, LockError, LockName, LostReason, Mode,
    Wait,
};
use distlock_sql::{sqlx, SqlBackend, SqlConfig, Strategy};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const TTL: Duration = Duration::from_secs(30);

/// One of the two databases with session locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Db {
    Postgres,
    MariaDb,
}

impl Db {
    fn what(self) -> &'static str {
        match self {
            Db::Postgres => "PostgreSQL",
            Db::MariaDb => "MariaDB",
        }
    }

    /// The server's URL, under the session strategy, with `params`.
    fn url(self, params: &str) -> String {
        let base = match self {
            Db::Postgres => common::postgres_session_url(),
            Db::MariaDb => common::mysql_session_url(),
        };
        if params.is_empty() {
            base
        } else {
            common::with_params(&base, params)
        }
    }

    async fn backend(self, params: &str) -> SqlBackend {
        common::connect(self.what(), &self.url(params)).await
    }

    async fn client(self, params: &str) -> Arc<dyn DistributedLock> {
        Arc::new(self.backend(params).await)
    }
}

fn name(test: &str) -> LockName {
    LockName::new(format!("session/{test}/{}", common::unique())).unwrap()
}

fn try_once() -> AcquireOptions {
    AcquireOptions::try_once(TTL)
}

fn waiting(wait: Duration) -> AcquireOptions {
    AcquireOptions::new(TTL).with_wait(Wait::For(wait))
}

/// Polling so slow that only the server's queue ends a wait early.
fn slow_polling() -> Backoff {
    Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        factor: 1.0,
    }
}

/// Waits until `c`'s status shows a waiter on `name` (PostgreSQL), or a
/// moment (MariaDB cannot tell).
async fn until_waiting(db: Db, c: &Arc<dyn DistributedLock>, name: &LockName) {
    if db == Db::MariaDb {
        tokio::time::sleep(Duration::from_millis(300)).await;
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.status(name).await.unwrap().waiters != Some(1) {
        assert!(Instant::now() < deadline, "the waiter never showed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The server's id of the session holding `name` (in the default table).
async fn holder_session(db: Db, name: &LockName) -> i64 {
    let digest = Sha256::digest(format!("distlock_locks\0{name}").as_bytes());
    match db {
        Db::Postgres => {
            let key = i64::from_be_bytes(digest[..8].try_into().unwrap());
            let pool = sqlx::PgPool::connect(&common::postgres_url())
                .await
                .unwrap();
            let pid: i32 = sqlx::query_scalar(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND classid = (($1 >> 32) & 4294967295)::oid \
                 AND objid = ($1 & 4294967295)::oid AND objsubid = 1",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap();
            i64::from(pid)
        }
        Db::MariaDb => {
            let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
            let pool = sqlx::MySqlPool::connect(&common::mysql_url())
                .await
                .unwrap();
            let id: i64 = sqlx::query_scalar("SELECT IS_USED_LOCK(?)")
                .bind(format!("dl:{hex}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            id
        }
    }
}

/// Ends session `id` from the server's side, as an administrator would.
async fn kill(db: Db, id: i64) {
    match db {
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&common::postgres_url())
                .await
                .unwrap();
            let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(i32::try_from(id).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(done, "pg_terminate_backend({id})");
        }
        Db::MariaDb => {
            let pool = sqlx::MySqlPool::connect(&common::mysql_url())
                .await
                .unwrap();
            sqlx::query(&format!("KILL {id}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

async fn a_held_lock_excludes_other_clients(db: Db) {
    let (a, b) = (db.client("").await, db.client("").await);
    let n = name("exclusion");
    let held = a.acquire(&n, &try_once()).await.unwrap().expect("free");
    assert!(b.acquire(&n, &try_once()).await.unwrap().is_none());
    assert!(a.acquire(&n, &try_once()).await.unwrap().is_none());
    assert!(b.status(&n).await.unwrap().held);
    a.release(&held).await.unwrap();
    assert!(!b.status(&n).await.unwrap().held);
    let again = b.acquire(&n, &try_once()).await.unwrap().expect("released");
    assert!(again.fencing_token() > held.fencing_token());
    b.release(&again).await.unwrap();
}

/// A waiter's token is drawn when it is granted, not when it starts to
/// wait: a token another name drew meanwhile is below it.
async fn tokens_rise_and_are_drawn_after_the_grant(db: Db) {
    let (a, b, c) = (
        db.client("").await,
        db.client("").await,
        db.client("").await,
    );
    let (x, y) = (name("fence-x"), name("fence-y"));
    let first = a.acquire(&x, &try_once()).await.unwrap().expect("free");
    let waiter = {
        let (b, x) = (b.clone(), x.clone());
        tokio::spawn(async move { b.acquire(&x, &waiting(Duration::from_secs(20))).await })
    };
    until_waiting(db, &a, &x).await;
    let meanwhile = c.acquire(&y, &try_once()).await.unwrap().expect("free");
    a.release(&first).await.unwrap();
    let second = waiter.await.unwrap().unwrap().expect("granted on release");
    assert!(second.fencing_token() > first.fencing_token());
    assert!(
        second.fencing_token() > meanwhile.fencing_token(),
        "the waiter's token {} was drawn before {} (another name's, taken while it waited)",
        second.fencing_token(),
        meanwhile.fencing_token()
    );
    b.release(&second).await.unwrap();
    c.release(&meanwhile).await.unwrap();
}

/// The waiter waits in the server: it is granted as soon as the holder
/// releases, although its backoff would have it poll every five seconds.
async fn a_waiter_is_granted_by_the_server_on_release(db: Db) {
    let (a, b) = (db.client("").await, db.client("").await);
    let n = name("queue");
    for _ in 0..3 {
        let held = a.acquire(&n, &try_once()).await.unwrap().expect("free");
        let waiter = {
            let (b, n) = (b.clone(), n.clone());
            let o = waiting(Duration::from_secs(20)).with_backoff(slow_polling());
            tokio::spawn(async move {
                let got = b.acquire(&n, &o).await;
                (Instant::now(), got)
            })
        };
        until_waiting(db, &a, &n).await;
        let released = Instant::now();
        a.release(&held).await.unwrap();
        let (granted, got) = waiter.await.unwrap();
        let took = granted.saturating_duration_since(released);
        assert!(
            took < Duration::from_millis(250),
            "granted {took:?} after the release"
        );
        b.release(&got.unwrap().expect("granted")).await.unwrap();
    }
}

/// Two local requests for one name on one backend never both hold it —
/// sessions' locks are re-entrant, so the backend must keep them apart.
/// With that rule broken on purpose, the same steps grant it twice.
async fn one_backend_never_grants_a_lock_twice(db: Db) {
    let url = db.url("sessions=1");
    let kept = SqlBackend::connect(&url).await.unwrap();
    assert!(!double_grant(&kept).await, "{}: granted twice", db.what());
    let config = SqlConfig::from_url(&url)
        .unwrap()
        .with_reentrant_sessions_broken_on_purpose();
    let broken = SqlBackend::from_config(config).await.unwrap();
    assert!(
        double_grant(&broken).await,
        "{}: the broken build did not grant twice: the test cannot catch it",
        db.what()
    );
}

/// Whether two tries for one name on `backend` were both granted.
async fn double_grant(backend: &SqlBackend) -> bool {
    let n = name("reentry");
    let first = backend
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("free");
    let second = backend.acquire(&n, &try_once()).await.unwrap();
    let twice = second.is_some();
    if let Some(second) = second {
        let _ = backend.release(&second).await;
    }
    let _ = backend.release(&first).await;
    twice
}

/// Many local requests for one name, on a backend with few sessions,
/// never overlap.
async fn local_contention_never_overlaps(db: Db) {
    let backend = Arc::new(db.backend("sessions=3").await);
    let n = name("local-contention");
    let inside = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (backend, n, inside) = (backend.clone(), n.clone(), inside.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let lease = backend
                        .acquire(&n, &waiting(Duration::from_secs(60)))
                        .await
                        .unwrap()
                        .expect("granted within a minute");
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    inside.store(false, Ordering::SeqCst);
                    backend.release(&lease).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A wait in the server, cancelled: its connection is closed (the server
/// drops it from the queue), nothing is held, the holder's release hands
/// the lock to nobody in particular.
async fn a_cancelled_wait_leaves_nothing_held(db: Db) {
    let (a, c) = (db.client("").await, db.client("").await);
    let b = Arc::new(db.backend("").await);
    let n = name("cancelled");
    let held = a.acquire(&n, &try_once()).await.unwrap().expect("free");
    let waiter = {
        let (b, n) = (b.clone(), n.clone());
        tokio::spawn(async move { b.acquire(&n, &waiting(Duration::from_secs(30))).await })
    };
    until_waiting(db, &a, &n).await;
    assert_eq!(b.session_census(), (1, 0), "one session, waiting");
    waiter.abort();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.session_census().0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the waiting session was not closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if db == Db::Postgres {
        // The server notices its client left and drops the wait.
        let deadline = Instant::now() + Duration::from_secs(2);
        while a.status(&n).await.unwrap().waiters != Some(0) {
            assert!(
                Instant::now() < deadline,
                "the cancelled wait stayed queued"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    a.release(&held).await.unwrap();
    let taken = c
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("nothing held");
    c.release(&taken).await.unwrap();
}

/// The server kills the holder's session: the guard's `lost()` fires
/// within a second, and another client takes the lock at once.
async fn a_killed_session_loses_its_locks_at_once(db: Db) {
    let a = LockClient::with_defaults(db.client("").await, try_once());
    let b = db.client("").await;
    let n = name("killed");
    let guard = a.try_lock(&n).await.unwrap().expect("free");
    let lost = guard.lost();
    let id = holder_session(db, &n).await;
    let killed = Instant::now();
    kill(db, id).await;
    let reason = tokio::time::timeout(Duration::from_secs(1), lost)
        .await
        .unwrap_or_else(|_| panic!("{}: lost() did not fire within 1 s", db.what()));
    assert!(matches!(reason, LostReason::Session(_)), "{reason:?}");
    let renewed = a.backend().extend(&guard.lease(), TTL).await;
    assert!(
        matches!(renewed, Err(LockError::NotHeld { .. })),
        "renewing a lease of a dead session: {renewed:?}"
    );
    println!("{}: lost {:?} after the kill", db.what(), killed.elapsed());
    let taken = b
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("freed with the session");
    assert!(taken.fencing_token() > guard.fencing_token());
    b.release(&taken).await.unwrap();
    assert!(guard.release().await.is_err(), "a lost guard released");
}

/// One client holds 10,000 locks (guards extended in the background) for
/// five seconds, and gives them back.
async fn ten_thousand_locks_are_held_by_one_client(db: Db) {
    const LOCKS: usize = 10_000;
    let backend = Arc::new(db.backend("").await);
    let client = LockClient::with_defaults(
        backend.clone(),
        AcquireOptions::try_once(Duration::from_secs(3)),
    );
    let base = name("ten-thousand");
    let names: Vec<LockName> = (0..LOCKS)
        .map(|i| LockName::new(format!("{base}/{i}")).unwrap())
        .collect();
    let started = Instant::now();
    let guards: Vec<_> = futures::stream::iter(names.iter().cloned())
        .map(|n| {
            let client = client.clone();
            async move {
                match client.try_lock(&n).await.unwrap() {
                    Some(g) => g,
                    None => {
                        let again = client.try_lock(&n).await.unwrap();
                        panic!("{n} refused; again: {:?}", again.map(|g| g.fencing_token()));
                    }
                }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let took = started.elapsed();
    let (sessions, held) = backend.session_census();
    assert_eq!(held, LOCKS);
    println!(
        "{}: {LOCKS} locks taken in {took:?} on {sessions} sessions",
        db.what()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lost = guards.iter().filter(|g| g.is_lost()).count();
    assert_eq!(lost, 0, "{}: {lost} of {LOCKS} locks lost", db.what());
    let other = db.client("").await;
    for n in names.iter().step_by(997) {
        assert!(
            other.acquire(n, &try_once()).await.unwrap().is_none(),
            "{n} not held"
        );
    }
    let started = Instant::now();
    futures::stream::iter(guards)
        .for_each_concurrent(64, |g| async move { g.release().await.unwrap() })
        .await;
    println!("{}: released in {:?}", db.what(), started.elapsed());
    assert_eq!(backend.session_census().1, 0);
}

/// 64 acquisitions in flight on one backend with default settings, on
/// distinct names and then on one name: every one served, none
/// `Unavailable` because the backend's own connections were busy.
async fn sixty_four_in_flight_are_all_served(db: Db) {
    let backend = Arc::new(db.backend("").await);
    let base = name("in-flight");
    let distinct = (0..64).map(|i| {
        let (backend, n) = (
            backend.clone(),
            LockName::new(format!("{base}/{i}")).unwrap(),
        );
        tokio::spawn(async move {
            let lease = backend.acquire(&n, &waiting(Duration::from_secs(30))).await;
            let lease = lease.unwrap().expect("a free name");
            backend.release(&lease).await.unwrap();
        })
    });
    for t in distinct.collect::<Vec<_>>() {
        t.await.unwrap();
    }
    let inside = Arc::new(AtomicBool::new(false));
    let shared = (0..64).map(|_| {
        let (backend, n, inside) = (backend.clone(), base.clone(), inside.clone());
        tokio::spawn(async move {
            let lease = backend.acquire(&n, &waiting(Duration::from_secs(60))).await;
            let lease = lease.unwrap().expect("served within a minute");
            assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
            tokio::time::sleep(Duration::from_millis(1)).await;
            inside.store(false, Ordering::SeqCst);
            backend.release(&lease).await.unwrap();
        })
    });
    for t in shared.collect::<Vec<_>>() {
        t.await.unwrap();
    }
}

/// A name used under the table strategy, then under the session strategy,
/// gets a greater token (the one direction the docs promise).
async fn tokens_rise_from_the_table_strategy_to_the_session_strategy(db: Db) {
    let table_url = match db {
        Db::Postgres => common::postgres_table_url(),
        Db::MariaDb => common::mysql_table_url(),
    };
    let table = common::connect(db.what(), &table_url).await;
    assert_eq!(table.strategy(), Strategy::Table);
    let session = db.backend("").await;
    let n = name("direction");
    let before = table.acquire(&n, &try_once()).await.unwrap().expect("free");
    table.release(&before).await.unwrap();
    let after = session
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("free");
    assert!(after.fencing_token() > before.fencing_token());
    session.release(&after).await.unwrap();
}

/// Readers on one backend with two sessions: once both hold the name's
/// shared lock, more readers join it locally; a writer waits for the last
/// of them.
async fn readers_beyond_the_sessions_join_a_shared_hold(db: Db) {
    let readers = db.backend("sessions=2").await;
    let writer = db.client("").await;
    let n = name("join");
    let mut held = Vec::new();
    for _ in 0..5 {
        let r = readers
            .acquire_as(&n, Mode::Shared, &try_once())
            .await
            .unwrap();
        held.push(r.expect("readers share"));
    }
    if db == Db::Postgres {
        // Two hold the name's shared lock; three joined them.
        assert_eq!(readers.session_census(), (2, 2));
    }
    let last = held.pop().unwrap();
    for r in held {
        readers.release(&r).await.unwrap();
        assert!(writer.acquire(&n, &try_once()).await.unwrap().is_none());
    }
    readers.release(&last).await.unwrap();
    let w = writer
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("readers gone");
    assert!(w.fencing_token() > last.fencing_token());
    writer.release(&w).await.unwrap();
}

/// Without the privilege to draw tokens, an acquire fails with a clear
/// `Backend` error — and leaves nothing held, although the advisory lock
/// was taken before the token failed (a session lock outlives the failed
/// statement).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_no_privilege_on_the_sequence_is_a_clear_error_and_leaves_nothing_held() {
    let table = format!("dl_noseq_{}", std::process::id());
    let url = Db::Postgres.url(&format!("table={table}"));
    let owner = common::connect("PostgreSQL", &url).await;
    let pool = owner.postgres_pool().unwrap().clone();
    let exec = |sql: String| {
        let pool = pool.clone();
        async move { sqlx::query(&sql).execute(&pool).await.unwrap() }
    };
    exec(format!(
        "REVOKE ALL ON SEQUENCE \"{table}_fence\" FROM CURRENT_USER, PUBLIC"
    ))
    .await;
    let n = name("no-sequence");
    let refused = owner.acquire(&n, &try_once()).await;
    exec(format!(
        "GRANT ALL ON SEQUENCE \"{table}_fence\" TO CURRENT_USER"
    ))
    .await;
    let err = refused.expect_err("no privilege on the sequence");
    let LockError::Backend {
        context, source, ..
    } = &err
    else {
        panic!("expected a Backend error, got {err:?}");
    };
    assert!(
        context.contains(&table),
        "context names the table: {context}"
    );
    assert!(source.to_string().contains("permission denied"), "{source}");
    let other = common::connect("PostgreSQL", &url).await;
    let taken = other.acquire(&n, &waiting(Duration::from_secs(2))).await;
    let taken = taken
        .unwrap()
        .expect("the failed acquire left its lock held");
    other.release(&taken).await.unwrap();
    for object in [
        "SEQUENCE \"{t}_fence\"",
        "TABLE \"{t}_holders\"",
        "TABLE \"{t}\"",
    ] {
        exec(format!("DROP {}", object.replace("{t}", &table))).await;
    }
}

macro_rules! for_database {
    ($module:ident, $db:expr, $feature:literal) => {
        #[cfg(feature = $feature)]
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_held_lock_excludes_other_clients() {
                super::a_held_lock_excludes_other_clients($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn tokens_rise_and_are_drawn_after_the_grant() {
                super::tokens_rise_and_are_drawn_after_the_grant($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_waiter_is_granted_by_the_server_on_release() {
                super::a_waiter_is_granted_by_the_server_on_release($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn one_backend_never_grants_a_lock_twice() {
                super::one_backend_never_grants_a_lock_twice($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local_contention_never_overlaps() {
                super::local_contention_never_overlaps($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_cancelled_wait_leaves_nothing_held() {
                super::a_cancelled_wait_leaves_nothing_held($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_killed_session_loses_its_locks_at_once() {
                super::a_killed_session_loses_its_locks_at_once($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn ten_thousand_locks_are_held_by_one_client() {
                super::ten_thousand_locks_are_held_by_one_client($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sixty_four_in_flight_are_all_served() {
                super::sixty_four_in_flight_are_all_served($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn tokens_rise_from_the_table_strategy_to_the_session_strategy() {
                super::tokens_rise_from_the_table_strategy_to_the_session_strategy($db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn readers_beyond_the_sessions_join_a_shared_hold() {
                super::readers_beyond_the_sessions_join_a_shared_hold($db).await;
            }
        }
    };
}

for_database!(postgres, Db::Postgres, "postgres");
for_database!(mariadb, Db::MariaDb, "mysql");
