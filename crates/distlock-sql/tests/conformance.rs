//! The conformance suite on SQLite, PostgreSQL and MariaDB.
//!
//! Every `client()` opens a new pool (at most 4 connections) to the same
//! database, so clients compete exactly as separate processes would. SQLite
//! gets a fresh file per test, under `target/tmp`.

mod common;

use std::sync::Arc;

use distlock_conformance::Harness;
use distlock_core::DistributedLock;
use distlock_sql::SqlBackend;

/// Connects a new backend (its own pool) to `url`.
async fn new_client(what: &str, url: &str) -> Arc<dyn DistributedLock> {
    common::child_output_on_fresh_line();
    match SqlBackend::connect(url).await {
        Ok(b) => Arc::new(b),
        Err(e) => common::server_missing(what, url, &e),
    }
}

/// One SQLite file per test, deleted when the test ends (by the parent only:
/// a child holder of the cross-process case shares its parent's file).
#[cfg(feature = "sqlite")]
struct SqliteHarness {
    path: std::path::PathBuf,
    url: String,
}

#[cfg(feature = "sqlite")]
impl SqliteHarness {
    fn new() -> Self {
        let path = common::sqlite_test_path();
        let url = format!("sqlite://{}", path.display());
        SqliteHarness { path, url }
    }
}

#[cfg(feature = "sqlite")]
impl Drop for SqliteHarness {
    fn drop(&mut self) {
        if std::env::var_os(distlock_conformance::cases::CHILD_ENV).is_none() {
            common::remove_sqlite_files(&self.path);
        }
    }
}

#[cfg(feature = "sqlite")]
#[distlock_core::async_trait]
impl Harness for SqliteHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        new_client("SQLite", &self.url).await
    }
}

#[cfg(feature = "sqlite")]
distlock_conformance::suite!(sqlite, async { crate::SqliteHarness::new() });

#[cfg(feature = "postgres")]
struct PostgresHarness;

#[cfg(feature = "postgres")]
#[distlock_core::async_trait]
impl Harness for PostgresHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        new_client("PostgreSQL", &common::postgres_url()).await
    }
}

#[cfg(feature = "postgres")]
distlock_conformance::suite!(postgres, async { crate::PostgresHarness });

#[cfg(feature = "mysql")]
struct MariaDbHarness;

#[cfg(feature = "mysql")]
#[distlock_core::async_trait]
impl Harness for MariaDbHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        new_client("MariaDB", &common::mysql_url()).await
    }
}

#[cfg(feature = "mysql")]
distlock_conformance::suite!(mariadb, async { crate::MariaDbHarness });
