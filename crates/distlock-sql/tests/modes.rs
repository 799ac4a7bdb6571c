//! Readers, permits and writers on every database, beyond the shared suite:
//! a waiting writer is not starved although SQL keeps no queue (its intent
//! holds new readers back), intents go with the writer (granted, cancelled,
//! crashed), cancelled upgrades leave the reader as it was, released holds
//! leave no rows behind, and a locks table of an earlier version is brought
//! up to date on connect.
// Some functions serve only the tests of some database features.
#![allow(dead_code, unused_imports)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, Backoff, DistributedLock, Lease, LockName, Mode, Wait};
use distlock_sql::{sqlx, Database, SqlBackend};

use common::connect;

const TTL: Duration = Duration::from_secs(30);
const READ: Mode = Mode::Shared;
const WRITE: Mode = Mode::Exclusive;

fn name(test: &str) -> LockName {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    LockName::new(format!("modes/{test}/{}/{nanos}", std::process::id())).unwrap()
}

fn try_once() -> AcquireOptions {
    AcquireOptions::try_once(TTL)
}

fn waiting(wait: Duration) -> AcquireOptions {
    AcquireOptions::new(TTL)
        .with_wait(Wait::For(wait))
        .with_backoff(Backoff {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(20),
            factor: 2.0,
        })
}

async fn take(b: &SqlBackend, name: &LockName, mode: Mode) -> Lease {
    b.acquire_as(name, mode, &try_once())
        .await
        .unwrap_or_else(|e| panic!("{mode} acquire of {name}: {e}"))
        .unwrap_or_else(|| panic!("{name} was held"))
}

async fn refused(b: &SqlBackend, name: &LockName, mode: Mode) -> bool {
    let got = b.acquire_as(name, mode, &try_once()).await.unwrap();
    if let Some(lease) = &got {
        b.release(lease).await.unwrap();
    }
    got.is_none()
}

/// Rows of the holders table for `name` (of `kind` when given), read
/// straight from the database.
async fn rows(b: &SqlBackend, name: &LockName, kind: Option<&str>) -> i64 {
    let kinds = kind.map_or("'s', 'p', 'w'".to_string(), |k| format!("'{k}'"));
    let (quote, key) = match b.database() {
        Database::Sqlite => ('"', "?1"),
        Database::Postgres => ('"', "$1"),
        Database::MySql => ('`', "?"),
    };
    let sql = format!(
        "SELECT COUNT(*) FROM {quote}{{table}}{quote} WHERE name = {key} AND kind IN ({kinds})"
    );
    query(b, &sql, name).await.expect("a count")
}

/// Waits (polling the table, at most 10 s) until `name` has `n` intents.
async fn until_intents(b: &SqlBackend, name: &LockName, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(b, name, Some("w")).await != n {
        assert!(Instant::now() < deadline, "{name} never had {n} intents");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A writer waiting behind a reader records its intent: a new reader is
/// then refused although only readers hold the name; the writer goes when
/// the first reader leaves, and its intent goes with the grant.
async fn waiting_writer_holds_new_readers_back(what: &str, url: &str) {
    let (a, b, c) = (
        connect(what, url).await,
        connect(what, url).await,
        connect(what, url).await,
    );
    let name = name("intent");
    let first = take(&a, &name, READ).await;
    let writer = {
        let (b, name) = (b.clone(), name.clone());
        tokio::spawn(async move {
            let w = b.acquire(&name, &waiting(Duration::from_secs(20))).await;
            let w = w
                .unwrap()
                .expect("the writer is granted once the reader leaves");
            let got = Instant::now();
            b.release(&w).await.unwrap();
            (got, w.fencing_token())
        })
    };
    until_intents(&c, &name, 1).await;
    assert!(
        refused(&c, &name, READ).await,
        "{what}: a reader overtook the waiting writer"
    );
    assert!(
        refused(&c, &name, Mode::Permit { limit: 3 }).await,
        "{what}: a permit overtook the waiting writer"
    );
    let released = Instant::now();
    a.release(&first).await.unwrap();
    let (got, token) = writer.await.unwrap();
    assert!(got >= released);
    assert!(token > first.fencing_token());
    assert_eq!(
        rows(&c, &name, Some("w")).await,
        0,
        "{what}: the intent stayed"
    );
    let after = take(&c, &name, READ).await;
    assert!(after.fencing_token() > token);
    c.release(&after).await.unwrap();
}

/// Readers overlapping without a gap would keep a writer out forever; the
/// writer's intent lets it in within a few of their holds.
async fn stream_of_readers_does_not_starve_a_writer(what: &str, url: &str) {
    let name = name("stream");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (r, name, stop) = (connect(what, url).await, name.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = waiting(Duration::from_secs(30));
                let lease = r.acquire_as(&name, READ, &o).await.unwrap().unwrap();
                tokio::time::sleep(Duration::from_millis(60)).await;
                r.release(&lease).await.unwrap();
            }
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let w = connect(what, url).await;
    let started = Instant::now();
    let lease = w
        .acquire(&name, &waiting(Duration::from_secs(10)))
        .await
        .unwrap();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lease =
        lease.unwrap_or_else(|| panic!("{what}: a stream of readers starved the writer for 10 s"));
    w.release(&lease).await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
    assert!(
        took < Duration::from_secs(3),
        "{what}: the writer waited {took:?}"
    );
}

/// A waiting writer dropped mid-wait takes its intent with it (in the
/// background): readers are let in again well within the intent's life.
async fn cancelled_writer_leaves_no_intent(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    let name = name("cancelled-writer");
    let reader = take(&a, &name, READ).await;
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        b.acquire(&name, &waiting(Duration::from_secs(20))),
    )
    .await;
    assert!(
        waited.is_err(),
        "{what}: the writer should still have waited"
    );
    until_intents(&a, &name, 0).await;
    let second = take(&a, &name, READ).await;
    a.release(&second).await.unwrap();
    a.release(&reader).await.unwrap();
}

/// A writer that gives up (its wait ran out) removes its intent itself.
async fn writer_giving_up_removes_its_intent(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    let name = name("gave-up");
    let reader = take(&a, &name, READ).await;
    let got = b
        .acquire(&name, &waiting(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(got.is_none(), "{what}: the writer came in beside a reader");
    assert_eq!(
        rows(&a, &name, Some("w")).await,
        0,
        "{what}: the intent stayed"
    );
    let second = take(&a, &name, READ).await;
    a.release(&second).await.unwrap();
    a.release(&reader).await.unwrap();
}

/// The intent of a writer that crashed (nobody removes it) holds readers
/// back for its life on the database clock, one second, and no longer.
async fn crashed_writer_intent_expires(what: &str, url: &str, plant: &str) {
    let a = connect(what, url).await;
    let name = name("crashed-writer");
    let reader = take(&a, &name, READ).await;
    query(&a, plant, &name).await;
    assert!(
        refused(&a, &name, READ).await,
        "{what}: the planted intent was ignored"
    );
    let started = Instant::now();
    let second = a
        .acquire_as(&name, READ, &waiting(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: a dead writer's intent kept readers out for 5 s"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    a.release(&second).await.unwrap();
    a.release(&reader).await.unwrap();
}

/// Runs `sql` (with `{table}` for the holders table and one key
/// parameter) on `b`'s pool: the first column of the row it returns, if
/// any.
async fn query(b: &SqlBackend, sql: &str, name: &LockName) -> Option<i64> {
    let sql = sql.replace("{table}", &format!("{}_holders", b.config().table()));
    let key = name.as_str();
    let got = match b.database() {
        #[cfg(feature = "sqlite")]
        Database::Sqlite => {
            let query = sqlx::query_scalar(&sql).bind(key);
            query.fetch_optional(b.sqlite_pool().unwrap()).await
        }
        #[cfg(feature = "postgres")]
        Database::Postgres => {
            let query = sqlx::query_scalar(&sql).bind(key);
            query.fetch_optional(b.postgres_pool().unwrap()).await
        }
        #[cfg(feature = "mysql")]
        Database::MySql => {
            let query = sqlx::query_scalar(&sql).bind(key.as_bytes());
            query.fetch_optional(b.mysql_pool().unwrap()).await
        }
        #[allow(unreachable_patterns)]
        other => panic!("{other:?} is not compiled in"),
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `fut` for at most `polls` polls (each after a wake-up): its output,
/// or `None` when it was dropped unfinished.
async fn poll_at_most<F: std::future::Future>(polls: usize, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut left = polls;
    std::future::poll_fn(move |cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending => {
            left -= 1;
            if left == 0 {
                std::task::Poll::Ready(None)
            } else {
                std::task::Poll::Pending
            }
        }
    })
    .await
}

/// Upgrades dropped at every point of their transaction leave the reader
/// held as it was — also one dropped after its transaction committed, which
/// is undone — and nothing else: another reader comes in afterwards.
async fn cancelled_upgrades_leave_the_reader_held(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    let name = name("cancelled-upgrade");
    let mut reader = take(&a, &name, READ).await;
    let (mut dropped, mut undone) = (0, 0);
    let mut last = reader.fencing_token().get();
    for at in 1..=24 {
        let upgraded = poll_at_most(at, a.upgrade(&reader, &try_once())).await;
        if let Some(done) = upgraded {
            // Completed in time: back to a reader for the next round.
            let w = done.unwrap().expect("a sole reader upgrades");
            a.release(&w).await.unwrap();
            reader = take(&a, &name, READ).await;
            last = reader.fencing_token().get();
            continue;
        }
        dropped += 1;
        let o = waiting(Duration::from_secs(3));
        let other = b
            .acquire_as(&name, READ, &o)
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!("{what}: after an upgrade dropped at poll {at}, no reader came in")
            });
        b.release(&other).await.unwrap();
        // Every grant takes the next token: a gap is an upgrade that
        // committed before its future was dropped, and was undone.
        if other.fencing_token().get() > last + 1 {
            undone += 1;
        }
        last = other.fencing_token().get();
        a.extend(&reader, TTL).await.unwrap_or_else(|e| {
            panic!("{what}: the reader was lost after an upgrade dropped at poll {at}: {e}")
        });
    }
    assert!(dropped > 0, "{what}: no upgrade was dropped");
    println!("{what}: {dropped} upgrades dropped, {undone} of them after they committed");
    a.release(&reader).await.unwrap();
    until_intents(&a, &name, 0).await;
    assert_eq!(rows(&a, &name, None).await, 0);
}

/// Released readers and permits leave no rows; a writer takes the name at
/// once after them.
async fn released_holds_leave_no_rows(what: &str, url: &str) {
    let a = connect(what, url).await;
    let name = name("no-rows");
    let r = [take(&a, &name, READ).await, take(&a, &name, READ).await];
    assert_eq!(rows(&a, &name, None).await, 2);
    for lease in &r {
        a.release(lease).await.unwrap();
    }
    assert_eq!(
        rows(&a, &name, None).await,
        0,
        "{what}: released readers left rows"
    );
    let w = take(&a, &name, WRITE).await;
    a.release(&w).await.unwrap();
    let permit = Mode::Permit { limit: 2 };
    let p = take(&a, &name, permit).await;
    a.release(&p).await.unwrap();
    assert_eq!(
        rows(&a, &name, None).await,
        0,
        "{what}: a released permit left a row"
    );
    let status = a.status(&name).await.unwrap();
    assert!(!status.held);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::common::SqliteFile as File;

    const PLANT: &str = "INSERT INTO \"{table}\" (name, owner, kind, permits, expires_at) \
        VALUES (?1, 'crashed', 'w', 0, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + 1000)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_writer_holds_new_readers_back() {
        let f = File::new("intent");
        super::waiting_writer_holds_new_readers_back("sqlite", &f.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stream_of_readers_does_not_starve_a_writer() {
        let f = File::new("stream");
        super::stream_of_readers_does_not_starve_a_writer("sqlite", &f.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_writer_leaves_no_intent() {
        let f = File::new("cancelled-writer");
        super::cancelled_writer_leaves_no_intent("sqlite", &f.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writer_giving_up_removes_its_intent() {
        let f = File::new("gave-up");
        super::writer_giving_up_removes_its_intent("sqlite", &f.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn crashed_writer_intent_expires() {
        let f = File::new("crashed-writer");
        super::crashed_writer_intent_expires("sqlite", &f.url, PLANT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_upgrades_leave_the_reader_held() {
        let f = File::new("cancelled-upgrade");
        super::cancelled_upgrades_leave_the_reader_held("sqlite", &f.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn released_holds_leave_no_rows() {
        let f = File::new("no-rows");
        super::released_holds_leave_no_rows("sqlite", &f.url).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres_table_url as url;

    const PLANT: &str = "INSERT INTO \"{table}\" (name, owner, kind, permits, expires_at) \
        VALUES ($1, 'crashed', 'w', 0, now() + interval '1 second')";

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_writer_holds_new_readers_back() {
        super::waiting_writer_holds_new_readers_back("postgres", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stream_of_readers_does_not_starve_a_writer() {
        super::stream_of_readers_does_not_starve_a_writer("postgres", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_writer_leaves_no_intent() {
        super::cancelled_writer_leaves_no_intent("postgres", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writer_giving_up_removes_its_intent() {
        super::writer_giving_up_removes_its_intent("postgres", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn crashed_writer_intent_expires() {
        super::crashed_writer_intent_expires("postgres", &url(), PLANT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_upgrades_leave_the_reader_held() {
        super::cancelled_upgrades_leave_the_reader_held("postgres", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn released_holds_leave_no_rows() {
        super::released_holds_leave_no_rows("postgres", &url()).await;
    }
}

#[cfg(feature = "mysql")]
mod mariadb {
    use super::common::mysql_table_url as url;

    const PLANT: &str = "INSERT INTO `{table}` (name, owner, kind, permits, expires_at) \
        VALUES (?, 'crashed', 'w', 0, UTC_TIMESTAMP(6) + INTERVAL 1 SECOND)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_writer_holds_new_readers_back() {
        super::waiting_writer_holds_new_readers_back("mariadb", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stream_of_readers_does_not_starve_a_writer() {
        super::stream_of_readers_does_not_starve_a_writer("mariadb", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_writer_leaves_no_intent() {
        super::cancelled_writer_leaves_no_intent("mariadb", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writer_giving_up_removes_its_intent() {
        super::writer_giving_up_removes_its_intent("mariadb", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn crashed_writer_intent_expires() {
        super::crashed_writer_intent_expires("mariadb", &url(), PLANT).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_upgrades_leave_the_reader_held() {
        super::cancelled_upgrades_leave_the_reader_held("mariadb", &url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn released_holds_leave_no_rows() {
        super::released_holds_leave_no_rows("mariadb", &url()).await;
    }
}
