//! TLS against the TLS servers of scripts/services.sh: PostgreSQL (`ssl=on`,
//! TCP only over TLS, `distlock_tls` by client certificate) and MariaDB
//! (`require_secure_transport`, `distlock_tls` REQUIRE X509). The basic
//! cases over TLS with the test CA under both strategies, by URL and by
//! config; the plain protocol, a wrong CA and a missing client certificate
//! are refused with clear errors; passwords and key material never show.

#![cfg(all(feature = "postgres", feature = "mysql", feature = "tls-rustls"))]

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::tls::{ca, cert, chain, key, key_material, other_ca, setting};
use distlock_conformance::{cases, Harness};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, TlsSettings};
use distlock_sql::{SqlBackend, SqlConfig};

const START_SERVERS: &str = "start the servers with scripts/services.sh up";
const PASSWORD: &str = "distlock-pw";

fn cert_user() -> String {
    setting("DISTLOCK_TLS_CERT_USER", || "distlock_tls".into())
}

/// The two TLS servers.
#[derive(Clone, Copy, Debug)]
enum Server {
    Postgres,
    MySql,
}

impl Server {
    /// The server's URL with the password user (no parameters).
    fn url(self) -> String {
        match self {
            Server::Postgres => setting("DISTLOCK_POSTGRES_TLS_URL", || {
                format!("postgres://distlock:{PASSWORD}@127.0.0.1:15433/distlock")
            }),
            Server::MySql => setting("DISTLOCK_MYSQL_TLS_URL", || {
                format!("mysql://distlock:{PASSWORD}@127.0.0.1:13307/distlock")
            }),
        }
    }

    /// `host:port`.
    fn addr(self) -> String {
        let url = self.url();
        let rest = url.rsplit_once('@').map_or(url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_string()
    }

    /// The URL of the certificate user (no password).
    fn cert_user_url(self) -> String {
        let scheme = match self {
            Server::Postgres => "postgres",
            Server::MySql => "mysql",
        };
        format!("{scheme}://{}@{}/distlock", cert_user(), self.addr())
    }

    async fn require_up(self) {
        if tokio::net::TcpStream::connect(self.addr()).await.is_err() {
            panic!(
                "the TLS {self:?} server at {} is not reachable; {START_SERVERS}",
                self.addr()
            );
        }
    }
}

fn with(url: &str, params: &str) -> String {
    format!("{url}?{params}")
}

/// Clients of one URL, for the suite's cases.
struct TlsHarness {
    url: String,
}

#[distlock_core::async_trait]
impl Harness for TlsHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        match SqlBackend::connect(&self.url).await {
            Ok(backend) => Arc::new(backend),
            Err(e) => panic!("TLS connect: {e}; {START_SERVERS}"),
        }
    }

    fn liveness_bound(&self, ttl: Duration) -> Duration {
        ttl.max(Duration::from_secs(5))
    }
}

/// The password user over TLS verified against the test CA.
async fn harness(server: Server, strategy: &str) -> TlsHarness {
    server.require_up().await;
    let params = format!("ca={}&strategy={strategy}&table=tls_{strategy}", ca());
    TlsHarness {
        url: with(&server.url(), &params),
    }
}

#[tokio::test]
async fn postgres_basic_cases_over_tls() {
    for strategy in ["session", "table"] {
        let harness = harness(Server::Postgres, strategy).await;
        cases::basic_acquire_release(&harness).await;
        cases::fencing_tokens_increase(&harness).await;
    }
}

#[tokio::test]
async fn postgres_waiter_is_woken_over_tls() {
    // strategy=table: the release reaches the waiter by LISTEN/NOTIFY on a
    // connection of its own, over TLS too.
    cases::waiter_acquires_after_release(&harness(Server::Postgres, "table").await).await;
}

#[tokio::test]
async fn mysql_basic_cases_over_tls() {
    for strategy in ["session", "table"] {
        let harness = harness(Server::MySql, strategy).await;
        cases::basic_acquire_release(&harness).await;
        cases::fencing_tokens_increase(&harness).await;
    }
}

async fn lock_once(backend: &SqlBackend) {
    let name = LockName::new(format!("tls/{}", distlock_core::OwnerToken::random())).unwrap();
    let options = AcquireOptions::try_once(Duration::from_secs(5));
    let lease = backend
        .acquire(&name, &options)
        .await
        .unwrap()
        .expect("free");
    backend.release(&lease).await.unwrap();
}

#[tokio::test]
async fn the_certificate_user_logs_in_by_certificate_only() {
    for server in [Server::Postgres, Server::MySql] {
        server.require_up().await;
        let mutual = format!("ca={}&cert={}&key={}&table=tls_cert", ca(), cert(), key());
        let backend = SqlBackend::connect(&with(&server.cert_user_url(), &mutual))
            .await
            .unwrap_or_else(|e| panic!("{server:?}: client certificate refused: {e}"));
        lock_once(&backend).await;
        let shown = format!("{backend:?}");
        assert!(
            !shown.contains(&key_material()),
            "Debug shows the key: {shown}"
        );

        let url = with(&server.cert_user_url(), &format!("ca={}", ca()));
        let err = SqlBackend::connect(&url)
            .await
            .expect_err("no client certificate");
        let shown = chain(&err).to_lowercase();
        let clear = match server {
            Server::Postgres => shown.contains("certificate"),
            Server::MySql => shown.contains("access denied") && shown.contains(&cert_user()),
        };
        assert!(clear, "{server:?}: not a clear refusal: {shown}");
        println!("{server:?} without a client certificate: {err}");
    }
}

#[tokio::test]
async fn tls_by_config_works_like_the_url() {
    for server in [Server::Postgres, Server::MySql] {
        server.require_up().await;
        let config = SqlConfig::from_url(&with(&server.url(), "table=tls_config"))
            .unwrap()
            .with_tls(TlsSettings::new().with_ca(ca()))
            .unwrap();
        let backend = SqlBackend::from_config(config)
            .await
            .unwrap_or_else(|e| panic!("{server:?}: TLS by config: {e}"));
        lock_once(&backend).await;
    }
}

#[tokio::test]
async fn the_plain_protocol_is_refused() {
    for server in [Server::Postgres, Server::MySql] {
        server.require_up().await;
        let plain = match server {
            Server::Postgres => "sslmode=disable",
            Server::MySql => "ssl-mode=DISABLED",
        };
        let err = SqlBackend::connect(&with(&server.url(), plain))
            .await
            .expect_err("plain connection to a TLS-only server");
        assert!(!chain(&err).contains(PASSWORD), "shows the password: {err}");
        println!("{server:?} without TLS: {err}");
    }
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_by_name() {
    for server in [Server::Postgres, Server::MySql] {
        server.require_up().await;
        let params = format!("ca={}&cert={}&key={}", other_ca(), cert(), key());
        let err = SqlBackend::connect(&with(&server.url(), &params))
            .await
            .expect_err("wrong CA");
        let shown = chain(&err);
        assert!(
            shown.contains("certificate") && shown.contains("UnknownIssuer"),
            "{server:?}: not a clear certificate error: {shown}"
        );
        assert!(!shown.contains(PASSWORD), "shows the password: {shown}");
        assert!(!shown.contains(&key_material()), "shows the key: {shown}");
        println!("{server:?} wrong CA: {err}");
    }
}

/// The refusal above comes from verifying the certificate: the same client
/// without verification (`danger_accept_invalid_certs`) connects.
#[tokio::test]
async fn without_verification_the_same_servers_are_accepted() {
    for server in [Server::Postgres, Server::MySql] {
        server.require_up().await;
        let url = with(
            &server.url(),
            "danger_accept_invalid_certs=true&table=tls_insecure",
        );
        let backend = SqlBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{server:?}: no verification, so no refusal: {e}"));
        lock_once(&backend).await;
    }
}

#[tokio::test]
async fn unreadable_tls_files_are_named_without_their_contents() {
    for server in [Server::Postgres, Server::MySql] {
        let params = format!("ca={}&cert={}&key=/nonexistent/client.key", ca(), cert());
        let err = SqlBackend::connect(&with(&server.url(), &params))
            .await
            .expect_err("missing key");
        assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
        let params = format!("ca={}&cert={}&key={}", ca(), key(), key());
        let err = SqlBackend::connect(&with(&server.url(), &params))
            .await
            .expect_err("swapped files");
        let shown = chain(&err);
        assert!(shown.contains(&key()), "{shown}");
        assert!(!shown.contains(&key_material()), "shows the key: {shown}");
        assert!(!shown.contains(PASSWORD), "shows the password: {shown}");
    }
}

#[test]
fn our_tls_keys_and_the_drivers_are_not_mixed() {
    let err =
        SqlConfig::from_url("postgres://u:secret@h/db?ca=/ca.pem&sslmode=require").unwrap_err();
    assert!(err.to_string().contains("give one"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = SqlConfig::from_url("sqlite://x.db?tls=true").unwrap_err();
    assert!(err.to_string().contains("`tls`"), "{err}");
    assert!(SqlConfig::new(distlock_sql::Database::Sqlite)
        .with_tls(TlsSettings::new())
        .is_err());
}
