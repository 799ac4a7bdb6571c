//! TLS against the TLS server of scripts/services.sh (its `secureClientPort`,
//! `ssl.clientAuth=need`): the basic cases over TLS with the test CA and a
//! client certificate, by URL and by config; a wrong CA and a missing client
//! certificate are clear errors; passwords and key material never show.

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::tls::{ca, cert, chain, key, key_material, other_ca, setting};
use distlock_conformance::{cases, Harness};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, TlsSettings};
use distlock_zookeeper::{ZkBackend, ZkConfig};

const START_SERVERS: &str = "start the servers with scripts/services.sh up";
const SESSION: Duration = Duration::from_secs(4);

/// `host:port` of the TLS server.
fn addr() -> String {
    setting("DISTLOCK_ZK_TLS_HOSTS", || "127.0.0.1:12184".into())
}

fn prefix(test: &str) -> String {
    format!("/distlock-tls-{test}-{:016x}", rand::random::<u64>())
}

async fn require_up() {
    if tokio::net::TcpStream::connect(addr()).await.is_err() {
        panic!(
            "the TLS ZooKeeper at {} is not reachable; {START_SERVERS}",
            addr()
        );
    }
}

/// Clients of one URL, for the suite's cases.
struct TlsHarness {
    url: String,
}

#[distlock_core::async_trait]
impl Harness for TlsHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        match ZkBackend::connect(&self.url).await {
            Ok(backend) => Arc::new(backend),
            Err(e) => panic!("TLS connect: {e}; {START_SERVERS}"),
        }
    }

    fn liveness_bound(&self, _ttl: Duration) -> Duration {
        SESSION + SESSION / 4
    }
}

async fn harness(test: &str) -> TlsHarness {
    require_up().await;
    TlsHarness {
        url: format!(
            "zk://{}?prefix={}&ca={}&cert={}&key={}&session_timeout={}s",
            addr(),
            prefix(test),
            ca(),
            cert(),
            key(),
            SESSION.as_secs()
        ),
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
    // The release reaches the waiter as a watch event on the TLS session.
    cases::waiter_acquires_after_release(&harness("wake").await).await;
}

#[tokio::test]
async fn tls_by_config_works_like_the_url() {
    require_up().await;
    let tls = TlsSettings::new()
        .with_ca(ca())
        .with_client_cert(cert(), key());
    let config = ZkConfig::new([addr()])
        .with_prefix(&prefix("config"))
        .unwrap()
        .with_credentials("app", "hunter2-tls")
        .with_session_timeout(SESSION)
        .with_tls(tls);
    let backend = ZkBackend::from_config(config).await.expect("TLS by config");
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
        !shown.contains("hunter2-tls"),
        "Debug shows the password: {shown}"
    );
    assert!(
        !shown.contains(&key_material()),
        "Debug shows the key: {shown}"
    );
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused_by_name() {
    require_up().await;
    let url = format!(
        "zk://app:hunter2-tls@{}?ca={}&cert={}&key={}&connect_timeout=3s",
        addr(),
        other_ca(),
        cert(),
        key()
    );
    let err = ZkBackend::connect(&url).await.expect_err("wrong CA");
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
async fn the_server_refuses_a_client_without_a_certificate() {
    require_up().await;
    let url = format!("zk://{}?ca={}&connect_timeout=3s", addr(), ca());
    let err = ZkBackend::connect(&url)
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
        "zk://{}?ca={}&cert={}&key=/nonexistent/client.key",
        addr(),
        ca(),
        cert()
    );
    let err = ZkBackend::connect(&url).await.expect_err("missing key");
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
    // The key where the certificate should be.
    let url = format!("zk://{}?ca={}&cert={}&key={}", addr(), ca(), key(), key());
    let err = ZkBackend::connect(&url).await.expect_err("swapped files");
    let shown = chain(&err);
    assert!(shown.contains(&key()), "{shown}");
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");
}
