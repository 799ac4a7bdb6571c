//! TLS against the TLS member of scripts/services.sh (`--client-cert-auth`):
//! the basic cases over TLS with the test CA and a client certificate, by
//! URL and by config; a wrong CA and a missing client certificate are clear
//! errors; key material never shows.

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::tls::{ca, cert, chain, key, key_material, other_ca, setting};
use distlock_conformance::{cases, Harness};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, TlsSettings};
use distlock_etcd::{EtcdBackend, EtcdConfig};

const START_SERVERS: &str = "start the servers with scripts/services.sh up";

/// `host:port` of the TLS member.
fn addr() -> String {
    let url = setting("DISTLOCK_ETCD_TLS_ENDPOINTS", || {
        "https://127.0.0.1:12385".into()
    });
    let first = url.split(',').next().unwrap_or(&url).trim().to_string();
    first.trim_start_matches("https://").to_string()
}

fn prefix(test: &str) -> String {
    format!("distlock-tls/{test}/{:016x}", rand::random::<u64>())
}

async fn require_up() {
    if tokio::net::TcpStream::connect(addr()).await.is_err() {
        panic!(
            "the TLS etcd at {} is not reachable; {START_SERVERS}",
            addr()
        );
    }
}

fn mutual_url(test: &str) -> String {
    format!(
        "etcd://{}/{}?ca={}&cert={}&key={}&session_timeout=3s&connect_timeout=2s",
        addr(),
        prefix(test),
        ca(),
        cert(),
        key()
    )
}

/// Clients of one URL, for the suite's cases.
struct TlsHarness {
    url: String,
}

#[distlock_core::async_trait]
impl Harness for TlsHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        match EtcdBackend::connect(&self.url).await {
            Ok(backend) => Arc::new(backend),
            Err(e) => panic!("TLS connect: {e}; {START_SERVERS}"),
        }
    }

    fn liveness_bound(&self, _ttl: Duration) -> Duration {
        Duration::from_secs(3)
    }
}

async fn harness(test: &str) -> TlsHarness {
    require_up().await;
    TlsHarness {
        url: mutual_url(test),
    }
}

#[tokio::test]
async fn basic_acquire_release_over_tls() {
    cases::basic_acquire_release(&harness("basic").await).await;
}

#[tokio::test]
async fn fencing_tokens_increase_over_tls() {
    cases::fencing_tokens_increase(&harness("fencing").await).await;
}

#[tokio::test]
async fn waiter_is_woken_over_tls() {
    // The release reaches the waiter through a watch on the same TLS channel.
    cases::waiter_acquires_after_release(&harness("wake").await).await;
}

#[tokio::test]
async fn tls_by_config_works_like_the_url() {
    require_up().await;
    let tls = TlsSettings::new()
        .with_ca(ca())
        .with_client_cert(cert(), key());
    let config = EtcdConfig::new([addr()])
        .with_prefix(prefix("config"))
        .with_tls(tls)
        .with_session_timeout(Duration::from_secs(3));
    let backend = EtcdBackend::from_config(config)
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
    let shown = format!("{backend:?}");
    assert!(
        !shown.contains(&key_material()),
        "Debug shows the key: {shown}"
    );
}

#[tokio::test]
async fn a_member_signed_by_another_ca_is_refused_by_name() {
    require_up().await;
    let url = format!(
        "etcd://app:hunter2-tls@{}?ca={}&cert={}&key={}&connect_timeout=2s",
        addr(),
        other_ca(),
        cert(),
        key()
    );
    let err = EtcdBackend::connect(&url).await.expect_err("wrong CA");
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
}

#[tokio::test]
async fn the_member_refuses_a_client_without_a_certificate() {
    require_up().await;
    let url = format!("etcd://{}?ca={}&connect_timeout=2s", addr(), ca());
    let err = EtcdBackend::connect(&url)
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
async fn unreadable_tls_files_are_named_without_their_contents() {
    let url = format!(
        "etcd://{}?ca={}&cert={}&key=/nonexistent/client.key",
        addr(),
        ca(),
        cert()
    );
    let err = EtcdBackend::connect(&url).await.expect_err("missing key");
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
    // The key where the certificate should be.
    let url = format!("etcd://{}?ca={}&cert={}&key={}", addr(), ca(), key(), key());
    let err = EtcdBackend::connect(&url).await.expect_err("swapped files");
    let shown = chain(&err);
    assert!(shown.contains(&key()), "{shown}");
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");
}
