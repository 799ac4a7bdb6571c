//! TLS against the TLS instance of scripts/services.sh (client certificates
//! required): the basic cases over TLS with the test CA, by URL and by
//! config, on one instance and with Redlock; a wrong CA and a missing client
//! certificate are clear errors; passwords and key material never show.

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::tls::{ca, cert, chain, key, key_material, other_ca, setting};
use distlock_conformance::{cases, Harness};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, TlsSettings};
use distlock_redis::{InstanceConfig, RedisBackend, RedisConfig, RedlockBackend};

const START_SERVERS: &str = "start the servers with scripts/services.sh up";

/// `host:port` of the TLS instance.
fn addr() -> String {
    let url = setting("DISTLOCK_REDIS_TLS_URL", || {
        "rediss://127.0.0.1:16385".into()
    });
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// The CA and the client certificate, as URL parameters.
fn mutual(prefix: &str) -> String {
    format!("ca={}&cert={}&key={}&prefix={prefix}", ca(), cert(), key())
}

fn prefix(test: &str) -> String {
    format!("tls-{test}-{}:", distlock_core::OwnerToken::random())
}

async fn require_up() {
    if tokio::net::TcpStream::connect(addr()).await.is_err() {
        panic!(
            "the TLS redis at {} is not reachable; {START_SERVERS}",
            addr()
        );
    }
}

/// Clients of one URL, for the suite's cases.
struct TlsHarness {
    url: String,
    redlock: bool,
}

#[distlock_core::async_trait]
impl Harness for TlsHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        let connected: distlock_core::Result<Arc<dyn DistributedLock>> = if self.redlock {
            RedlockBackend::connect(&self.url)
                .await
                .map(|b| Arc::new(b) as _)
        } else {
            RedisBackend::connect(&self.url)
                .await
                .map(|b| Arc::new(b) as _)
        };
        connected.unwrap_or_else(|e| panic!("TLS connect: {e}; {START_SERVERS}"))
    }
}

async fn single(test: &str) -> TlsHarness {
    require_up().await;
    TlsHarness {
        url: format!("rediss://{}?{}", addr(), mutual(&prefix(test))),
        redlock: false,
    }
}

#[tokio::test]
async fn basic_acquire_release_over_tls() {
    cases::basic_acquire_release(&single("basic").await).await;
}

#[tokio::test]
async fn fencing_tokens_increase_over_tls() {
    cases::fencing_tokens_increase(&single("fencing").await).await;
}

#[tokio::test]
async fn try_acquire_fails_while_held_over_tls() {
    cases::try_acquire_fails_while_held(&single("held").await).await;
}

#[tokio::test]
async fn waiter_is_woken_over_tls() {
    // The release notification comes through a pub/sub connection: TLS too.
    cases::waiter_acquires_after_release(&single("wake").await).await;
}

#[tokio::test]
async fn redlock_over_tls() {
    require_up().await;
    let harness = TlsHarness {
        url: format!(
            "redlock://{}?tls=true&{}",
            addr(),
            mutual(&prefix("redlock"))
        ),
        redlock: true,
    };
    cases::basic_acquire_release(&harness).await;
    cases::fencing_tokens_increase(&harness).await;
}

#[tokio::test]
async fn tls_by_config_works_like_the_url() {
    require_up().await;
    let (host, port) = addr()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse().unwrap()))
        .unwrap();
    let tls = TlsSettings::new()
        .with_ca(ca())
        .with_client_cert(cert(), key());
    let config = RedisConfig::single(InstanceConfig::new(host, port))
        .with_tls(tls)
        .with_prefix(prefix("config"));
    let backend = RedisBackend::from_config(config)
        .await
        .expect("TLS by config");
    let name = LockName::new("config").unwrap();
    let options = AcquireOptions::try_once(Duration::from_secs(5));
    let lease = backend
        .acquire(&name, &options)
        .await
        .unwrap()
        .expect("free");
    backend.release(&lease).await.unwrap();
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_by_name() {
    require_up().await;
    let url = format!(
        "rediss://:hunter2-tls@{}?ca={}&cert={}&key={}",
        addr(),
        other_ca(),
        cert(),
        key()
    );
    let err = RedisBackend::connect(&url).await.expect_err("wrong CA");
    let shown = chain(&err);
    assert!(
        shown.contains("certificate") && shown.contains("UnknownIssuer"),
        "not a clear certificate error: {shown}"
    );
    assert!(
        !shown.contains("hunter2-tls"),
        "shows the password: {shown}"
    );
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");
    println!("wrong CA: {err}");

    // Redlock tolerates instances that are down, not one it cannot trust.
    let url = url.replacen("rediss://", "redlock://", 1) + "&tls=true";
    let err = RedlockBackend::connect(&url).await.expect_err("wrong CA");
    assert!(chain(&err).contains("UnknownIssuer"), "{}", chain(&err));
}

/// The refusal above comes from verifying the certificate: the same client
/// without verification (`danger_accept_invalid_certs`) connects.
#[tokio::test]
async fn without_verification_the_same_server_is_accepted() {
    require_up().await;
    let url = format!(
        "rediss://{}?danger_accept_invalid_certs=true&cert={}&key={}&prefix={}",
        addr(),
        cert(),
        key(),
        prefix("insecure")
    );
    RedisBackend::connect(&url)
        .await
        .expect("no verification, so no refusal");
}

#[tokio::test]
async fn the_server_refuses_a_client_without_a_certificate() {
    require_up().await;
    let url = format!("rediss://{}?ca={}", addr(), ca());
    let err = RedisBackend::connect(&url)
        .await
        .expect_err("no client certificate");
    let shown = chain(&err);
    assert!(
        shown.to_lowercase().contains("certificate"),
        "not a clear certificate error: {shown}"
    );
    println!("no client certificate: {err}");
}

#[tokio::test]
async fn debug_and_errors_show_no_password_or_key() {
    require_up().await;
    let url = format!(
        "rediss://locker:hunter2-tls@{}?{}",
        addr(),
        mutual(&prefix("debug"))
    );
    let config = RedisConfig::from_url(&url).unwrap();
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2-tls") && !shown.contains(&key_material()),
        "{shown}"
    );
    // The server has no user `locker`: refused, without the password.
    let err = RedisBackend::connect(&url).await.expect_err("no such user");
    let shown = chain(&err);
    assert!(
        !shown.contains("hunter2-tls"),
        "shows the password: {shown}"
    );
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");
}

#[tokio::test]
async fn unreadable_tls_files_are_named() {
    let url = format!(
        "rediss://{}?ca={}&cert={}&key=/nonexistent/client.key",
        addr(),
        ca(),
        cert()
    );
    let err = RedisBackend::connect(&url)
        .await
        .expect_err("missing key file");
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
    // The certificate where the key should be: named, contents not shown.
    let url = format!(
        "rediss://{}?ca={}&cert={}&key={}",
        addr(),
        ca(),
        key(),
        cert()
    );
    let err = RedisBackend::connect(&url)
        .await
        .expect_err("swapped files");
    let shown = chain(&err);
    assert!(shown.contains(&key()), "{shown}");
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");
}
