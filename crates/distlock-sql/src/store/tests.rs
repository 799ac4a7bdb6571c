//! A busy pool is waited for within the caller's wait, not within the
//! statement timeout: on a dialect whose one connection's statements each
//! take most of the timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::{LockError, LockName};

use super::Store;
use crate::dialect::{AttemptConnection, Dialect, Extension, Group, Holder, Take, Waiting};
use crate::holds::Decide;

/// The statement timeout of the tests.
const TIMEOUT: Duration = Duration::from_millis(300);

/// How long each acquire statement takes: within the timeout, but two
/// of them are not.
const STATEMENT: Duration = Duration::from_millis(200);

/// A database of one connection whose acquire statement takes
/// [`STATEMENT`] and finds the lock held.
struct Slow;

#[async_trait]
impl Dialect for Slow {
    fn cross_process(&self) -> bool {
        false
    }

    fn slots(&self) -> usize {
        1
    }

    async fn create_table(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(SlowConnection))
    }

    async fn holder(&self, _: &str) -> Result<Option<Holder>, sqlx::Error> {
        Ok(None)
    }

    async fn extend(&self, _: &str, _: &str, _: Duration) -> Result<bool, sqlx::Error> {
        Ok(true)
    }

    async fn keep(&self, _: &str, _: &str, _: Duration) -> Result<bool, sqlx::Error> {
        Ok(true)
    }

    async fn extend_batch(&self, _: Group, b: &[Extension]) -> Result<Vec<bool>, sqlx::Error> {
        Ok(vec![true; b.len()])
    }

    async fn release(&self, _: &str, _: &str) -> Result<bool, sqlx::Error> {
        Ok(true)
    }

    async fn release_holder(&self, _: &str, _: &str) -> Result<bool, sqlx::Error> {
        Ok(true)
    }

    async fn forget_intent(&self, _: &str, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

struct SlowConnection;

#[async_trait]
impl AttemptConnection for SlowConnection {
    async fn take(
        &mut self,
        _: &str,
        _: &str,
        _: Duration,
        _: Option<&str>,
    ) -> Result<Take, sqlx::Error> {
        tokio::time::sleep(STATEMENT).await;
        Ok(Take::HeldAskRemaining)
    }

    async fn waiting(&mut self, _: &str, _: &str) -> Result<Option<Waiting>, sqlx::Error> {
        Ok(None)
    }

    async fn enqueue(&mut self, _: &str, _: &str, _: Duration, _: i64) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn release(&mut self, _: &str, _: &str) -> Result<bool, sqlx::Error> {
        Ok(false)
    }

    async fn transact(
        &mut self,
        _: &str,
        _: &str,
        _: Duration,
        _: &mut Decide<'_>,
    ) -> Result<Option<u64>, sqlx::Error> {
        Ok(None)
    }

    async fn record_intent(&mut self, _: &str, _: &str, _: Duration) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn release_holder(&mut self, _: &str, _: &str) -> Result<bool, sqlx::Error> {
        Ok(false)
    }

    async fn abandon_transaction(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn downgrade(&mut self, _: &str, _: &str, _: Option<u64>) -> Result<bool, sqlx::Error> {
        Ok(false)
    }
}

/// One acquire attempt on `store` by a caller whose wait ends at
/// `deadline`: takes a connection, runs the acquire statement on it.
async fn attempt(store: Store, deadline: Option<Instant>) -> Result<(), LockError> {
    let name = LockName::new("slots").unwrap();
    let mut conn = store.connection(&name, deadline).await?;
    conn.take(&name, "k", "o", (Duration::from_secs(1), None), TIMEOUT)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_busy_pool_is_waited_for_within_the_callers_wait() {
    let store = Store::new(Arc::new(Slow), "test", "t", TIMEOUT);
    let far = Some(Instant::now() + Duration::from_secs(30));
    // Served in the order they asked (one connection: one after the other).
    let first = tokio::spawn(attempt(store.clone(), far));
    let second = tokio::spawn(attempt(store.clone(), far));
    // Waits two statements (400 ms) for the connection: more than the
    // timeout, less than its wait.
    let third = tokio::spawn(attempt(store.clone(), far));
    // Tries once: waits at most the timeout for a connection.
    let once = tokio::spawn(attempt(store.clone(), Some(Instant::now())));
    let started = Instant::now();
    first.await.unwrap().expect("first");
    second.await.unwrap().expect("second");
    third
        .await
        .unwrap()
        .expect("a caller who may wait waits for the pool past the timeout");
    assert!(started.elapsed() >= 2 * STATEMENT);
    match once.await.unwrap() {
        Err(LockError::Unavailable { reason, .. }) => {
            assert!(
                reason.contains("no free connection of the pool"),
                "{reason}"
            );
        }
        other => panic!("a try-once caller waited for the pool past the timeout: {other:?}"),
    }
}

/// SQLite's `SQLITE_BUSY` (another connection kept the file's write lock
/// past the busy handler's timeout) is `Unavailable`, like a server that
/// did not answer; the database's other refusals stay `Backend`.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_file_kept_locked_is_unavailable_and_other_refusals_are_not() {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Executor};

    let path = std::env::temp_dir().join(format!("distlock-store-busy-{}.db", std::process::id()));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let mut holder = options.connect().await.unwrap();
    holder.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let mut other = options.connect().await.unwrap();
    let busy = other
        .execute("INSERT INTO t VALUES (1)")
        .await
        .expect_err("the write lock is taken");
    let refused = other
        .execute("INSERT INTO missing VALUES (1)")
        .await
        .expect_err("no such table");
    holder.execute("COMMIT").await.unwrap();
    drop((holder, other));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    let err = super::driver_error("sqlite", "acquiring `x`".into(), TIMEOUT, busy);
    assert!(
        matches!(&err, LockError::Unavailable { reason, .. } if reason.contains("stayed locked")),
        "{err:?}"
    );
    let err = super::driver_error("sqlite", "acquiring `x`".into(), TIMEOUT, refused);
    assert!(matches!(err, LockError::Backend { .. }), "{err:?}");
}
