//! The conformance suite on SQLite, PostgreSQL and MariaDB.
//!
//! Every `client()` opens a new pool (at most 4 connections) to the same
//! database, so clients compete exactly as separate processes would. SQLite
//! gets a fresh file per test, under `target/tmp`.
//!
//! The PostgreSQL and MariaDB harnesses hand out proxied clients too: a new
//! pool whose every connection (the PostgreSQL listener's included) goes
//! through a fault proxy in front of the server. SQLite has no network to
//! partition, so its harness says it is not networked and has none, although
//! a SQLite file is shared across processes (`cross_process`).

mod common;

use std::sync::Arc;

use distlock_conformance::Harness;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use distlock_conformance::{FaultProxy, ProxiedClient};
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

/// A new client of the server at `url` whose every connection goes through
/// a fault proxy of its own.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn proxied_client(what: &str, url: &str) -> ProxiedClient {
    let upstream = common::server_address(url).await;
    let proxy = match FaultProxy::start(upstream).await {
        Ok(p) => p,
        Err(e) => panic!("cannot start a fault proxy in front of {upstream}: {e}"),
    };
    let client = new_client(what, &common::through(url, proxy.addr())).await;
    ProxiedClient {
        client,
        proxies: vec![proxy],
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

    /// No: the clients share a file through the kernel, with no network
    /// between them and the database to cut (so no proxied client either,
    /// although the file is shared across processes).
    fn networked(&self) -> bool {
        false
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

    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(proxied_client("PostgreSQL", &common::postgres_url()).await)
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

    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(proxied_client("MariaDB", &common::mysql_url()).await)
    }
}

#[cfg(feature = "mysql")]
distlock_conformance::suite!(mariadb, async { crate::MariaDbHarness });
