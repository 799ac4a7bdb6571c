//! Lock-at-least-for under the session strategy: a session lock dies with
//! its connection, so a hold released before its minimum must be kept by
//! the database alone (PostgreSQL: a statement that sleeps on the server,
//! then gives the lock back; MySQL/MariaDB: a row the grants respect). The
//! conformance suite checks it with a child process that releases early
//! and exits; this test proves that case catches a backend that keeps the
//! minimum in its own process instead (it passes the in-process case, and
//! fails once its process is gone); and that a reader released before its
//! minimum keeps writers out until then, readers not (the suite's cases
//! take mutexes).
#![cfg(any(feature = "postgres", feature = "mysql"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{cases, Harness};
use distlock_core::{AcquireOptions, DistributedLock, LockName, Mode, Wait};
use distlock_sql::{BrokenOnPurpose, SqlBackend};

/// The session timeout of these clients.
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Clients of `url` under the session strategy, broken on purpose.
struct BrokenHarness {
    what: &'static str,
    url: String,
}

impl BrokenHarness {
    fn new(what: &'static str, url: &str) -> Self {
        let params = format!("strategy=session&session_timeout={SESSION_TIMEOUT:?}");
        BrokenHarness {
            what,
            url: common::with_params(url, &params),
        }
    }
}

#[distlock_core::async_trait]
impl Harness for BrokenHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        common::child_output_on_fresh_line();
        let backend = match SqlBackend::connect(&self.url).await {
            Ok(b) => b,
            Err(e) => common::server_missing(self.what, &self.url, &e),
        };
        Arc::new(backend.broken_on_purpose(BrokenOnPurpose::MinimumKeptInProcess))
    }

    fn liveness_bound(&self, ttl: Duration) -> Duration {
        ttl.max(SESSION_TIMEOUT)
    }
}

/// The broken backend passes the in-process case, and fails the case of
/// the holder that exits (in the parent; the child's part, run by the
/// child process, completes).
async fn a_minimum_kept_in_process_is_caught(harness: BrokenHarness, test_path: &'static str) {
    if !common::is_conformance_child() {
        cases::released_lock_is_held_at_least_for_its_minimum(&harness).await;
    }
    let run = tokio::spawn(async move {
        cases::lock_is_held_at_least_after_its_holder_exits(&harness, test_path).await;
    });
    let outcome = run.await;
    if common::is_conformance_child() {
        return outcome.unwrap_or_else(|e| panic!("the child's part failed: {e}"));
    }
    let message = match outcome {
        Ok(()) => {
            panic!("the suite let a session backend that keeps the minimum in its own process pass")
        }
        Err(e) if e.is_panic() => panic_message(e.into_panic()),
        Err(e) => panic!("the case was cancelled: {e}"),
    };
    println!("kept in process, fails as it should: {message}");
    assert!(
        message.contains("[lock_is_held_at_least_after_its_holder_exits]")
            && message.contains("before its minimum"),
        "the failure should say the lock was free before its minimum, but said: {message}"
    );
}

/// A panic's message.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "a panic without a message".into()),
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_minimum_kept_in_process_is_caught_when_its_holder_exits() {
    let harness = BrokenHarness::new("PostgreSQL", &common::postgres_url());
    let path = "postgres_minimum_kept_in_process_is_caught_when_its_holder_exits";
    a_minimum_kept_in_process_is_caught(harness, path).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_minimum_kept_in_process_is_caught_when_its_holder_exits() {
    let harness = BrokenHarness::new("MariaDB", &common::mysql_url());
    let path = "mariadb_minimum_kept_in_process_is_caught_when_its_holder_exits";
    a_minimum_kept_in_process_is_caught(harness, path).await;
}

/// A reader released before its minimum: another reader gets in at once, a
/// writer only once the minimum has passed (and then promptly).
async fn a_released_reader_keeps_writers_out_for_its_minimum(what: &str, url: &str) {
    let url = common::with_params(url, "strategy=session");
    let (a, b) = (
        common::connect(what, &url).await,
        common::connect(what, &url).await,
    );
    let name = LockName::new(format!("kept/reader/{}", common::unique())).unwrap();
    let minimum = Duration::from_secs(2);
    let o = AcquireOptions::try_once(Duration::from_secs(30)).with_at_least(minimum);
    let reader = a
        .acquire_as(&name, Mode::Shared, &o)
        .await
        .unwrap()
        .unwrap();
    let until = reader.hold_until().expect("a minimum");
    a.release(&reader).await.unwrap();
    let plain = AcquireOptions::try_once(Duration::from_secs(30));
    let other = b.acquire_as(&name, Mode::Shared, &plain).await.unwrap();
    let other = other.unwrap_or_else(|| panic!("{what}: a reader kept another reader out"));
    b.release(&other).await.unwrap();
    assert!(
        b.acquire(&name, &plain).await.unwrap().is_none(),
        "{what}: a writer got in before the reader's minimum"
    );
    let wait = plain.with_wait(Wait::For(minimum + Duration::from_secs(5)));
    let writer = b
        .acquire(&name, &wait)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: not free after the minimum"));
    assert!(
        std::time::Instant::now() >= until,
        "{what}: a writer got in before the reader's minimum"
    );
    b.release(&writer).await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_released_reader_keeps_writers_out_for_its_minimum() {
    a_released_reader_keeps_writers_out_for_its_minimum("PostgreSQL", &common::postgres_url())
        .await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_released_reader_keeps_writers_out_for_its_minimum() {
    a_released_reader_keeps_writers_out_for_its_minimum("MariaDB", &common::mysql_url()).await;
}
