//! A backend on the application's own sqlx pool: it shares the pool, takes
//! its settings from a `SqlConfig` without a URL, refuses a configuration
//! for another database, and serves every strategy its database has.
// Some imports serve only the server databases' tests.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(unused_imports)
)]

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, Mode};
use distlock_sql::{sqlx, Database, SqlBackend, SqlConfig, Strategy};

fn name(test: &str) -> LockName {
    LockName::new(format!("pools/{test}/{}", common::unique())).unwrap()
}

fn try_once() -> AcquireOptions {
    AcquireOptions::try_once(Duration::from_secs(30))
}

/// A mutex and two readers on `backend`, excluded by `other` as they
/// should be.
async fn serves_locks(backend: &SqlBackend, other: &SqlBackend) {
    let n = name("serves");
    let held = backend
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("free");
    assert!(other.acquire(&n, &try_once()).await.unwrap().is_none());
    backend.release(&held).await.unwrap();
    let r1 = backend
        .acquire_as(&n, Mode::Shared, &try_once())
        .await
        .unwrap();
    let r2 = other
        .acquire_as(&n, Mode::Shared, &try_once())
        .await
        .unwrap();
    let (r1, r2) = (r1.expect("a reader"), r2.expect("a second reader"));
    assert!(other.acquire(&n, &try_once()).await.unwrap().is_none());
    backend.release(&r1).await.unwrap();
    other.release(&r2).await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_pool_is_shared_under_both_strategies() {
    let url = common::postgres_url();
    let pool = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| common::server_missing("PostgreSQL", &url, &e));
    let other = common::connect("PostgreSQL", &url).await;
    for strategy in [Strategy::Session, Strategy::Table] {
        let config = SqlConfig::new(Database::Postgres)
            .with_strategy(strategy)
            .unwrap();
        let backend = SqlBackend::from_pg_pool(pool.clone(), config)
            .await
            .unwrap();
        assert_eq!(backend.strategy(), strategy);
        assert!(backend.postgres_pool().is_some());
        let other = match strategy {
            Strategy::Session => other.clone(),
            _ => common::connect("PostgreSQL", &common::postgres_table_url()).await,
        };
        serves_locks(&backend, &other).await;
    }
    let wrong = SqlBackend::from_pg_pool(pool, SqlConfig::new(Database::MySql)).await;
    assert!(
        matches!(wrong, Err(LockError::InvalidConfig { .. })),
        "{wrong:?}"
    );
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_pool_is_shared() {
    let url = common::mysql_url();
    let pool = sqlx::MySqlPool::connect(&url)
        .await
        .unwrap_or_else(|e| common::server_missing("MariaDB", &url, &e));
    let config = SqlConfig::new(Database::MySql).with_session_timeout(Duration::from_secs(3));
    let backend = SqlBackend::from_mysql_pool(pool.clone(), config)
        .await
        .unwrap();
    assert_eq!(backend.strategy(), Strategy::Session);
    let other = common::connect("MariaDB", &url).await;
    serves_locks(&backend, &other).await;
    let wrong = SqlBackend::from_mysql_pool(pool, SqlConfig::new(Database::Postgres)).await;
    assert!(
        matches!(wrong, Err(LockError::InvalidConfig { .. })),
        "{wrong:?}"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_pool_is_shared() {
    let file = common::SqliteFile::new("pool");
    let path = file.url.strip_prefix("sqlite://").unwrap().to_string();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5))
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let config = SqlConfig::new(Database::Sqlite)
        .with_table("app_locks")
        .unwrap();
    let backend = SqlBackend::from_sqlite_pool(pool.clone(), config)
        .await
        .unwrap();
    assert!(backend.capabilities().cross_process);
    let other = SqlBackend::connect(&format!("{}?table=app_locks", file.url))
        .await
        .unwrap();
    serves_locks(&backend, &other).await;
    // The application's own data lives in the same pool.
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM app_locks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(tables >= 1);
    let memory = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let config = SqlConfig::new(Database::Sqlite);
    let in_memory = SqlBackend::from_sqlite_pool(memory, config).await.unwrap();
    assert!(!in_memory.capabilities().cross_process);
}
