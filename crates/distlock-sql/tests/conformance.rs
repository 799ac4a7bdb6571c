//! The conformance suite on SQLite, and on PostgreSQL and MariaDB under
//! each strategy (`strategy=table`, `strategy=session`): the strategy is a
//! dimension of the suite.
//!
//! Every `client()` opens a new backend (its own pool of at most 4
//! connections, and under the session strategy its own session
//! connections) to the same database, so clients compete exactly as
//! separate processes would. SQLite gets a fresh file per test, under
//! `target/tmp`.
//!
//! The PostgreSQL and MariaDB harnesses hand out proxied clients too: a new
//! backend whose every connection (the PostgreSQL listener's and the
//! session connections included) goes through a fault proxy in front of
//! the server. The session strategy's clients use a short session timeout,
//! so that a client cut off from the server loses its locks (and the server
//! frees them) within seconds. SQLite has no network to partition, so its
//! harness says it is not networked and has none, although a SQLite file is
//! shared across processes (`cross_process`).

mod common;

use std::sync::Arc;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::time::Duration;

use distlock_conformance::Harness;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use distlock_conformance::{FaultProxy, ProxiedClient};
use distlock_core::DistributedLock;
use distlock_sql::SqlBackend;

/// The session timeout of the session strategy's clients.
#[cfg(any(feature = "postgres", feature = "mysql"))]
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

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
        if !common::is_conformance_child() {
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

/// A server database under one strategy.
#[cfg(any(feature = "postgres", feature = "mysql"))]
struct ServerHarness {
    what: &'static str,
    url: String,
    session: bool,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl ServerHarness {
    /// `what` (for messages) at `url`, under the table strategy.
    fn table(what: &'static str, url: &str) -> Self {
        ServerHarness {
            what,
            url: common::with_params(url, "strategy=table"),
            session: false,
        }
    }

    /// `what` at `url`, under the session strategy with a short timeout.
    fn session(what: &'static str, url: &str) -> Self {
        let params = format!("strategy=session&session_timeout={SESSION_TIMEOUT:?}");
        ServerHarness {
            what,
            url: common::with_params(url, &params),
            session: true,
        }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[distlock_core::async_trait]
impl Harness for ServerHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        new_client(self.what, &self.url).await
    }

    /// The ttl under the table strategy. Under the session strategy a
    /// mutex or writer lives with its session (freed at once when its
    /// process dies, within the session timeout when its client is cut
    /// off), a reader's or permit's row with its ttl.
    fn liveness_bound(&self, ttl: Duration) -> Duration {
        if self.session {
            ttl.max(SESSION_TIMEOUT)
        } else {
            ttl
        }
    }

    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(proxied_client(self.what, &self.url).await)
    }
}

#[cfg(feature = "postgres")]
distlock_conformance::suite!(postgres_table, async {
    crate::ServerHarness::table("PostgreSQL", &crate::common::postgres_url())
});

#[cfg(feature = "postgres")]
distlock_conformance::suite!(postgres_session, async {
    crate::ServerHarness::session("PostgreSQL", &crate::common::postgres_url())
});

#[cfg(feature = "mysql")]
distlock_conformance::suite!(mariadb_table, async {
    crate::ServerHarness::table("MariaDB", &crate::common::mysql_url())
});

#[cfg(feature = "mysql")]
distlock_conformance::suite!(mariadb_session, async {
    crate::ServerHarness::session("MariaDB", &crate::common::mysql_url())
});
