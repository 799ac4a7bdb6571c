//! `distlock::connect` turns URLs into backends, and bad URLs into clear
//! errors that never show a password.

use distlock::LockError;

async fn config_error(url: &str) -> String {
    match distlock::connect(url).await {
        Err(LockError::InvalidConfig { reason }) => reason,
        Err(other) => panic!("{url}: expected InvalidConfig, got {other}"),
        Ok(b) => panic!("{url}: expected an error, got {b:?}"),
    }
}

#[tokio::test]
async fn memory_urls_connect() {
    let a = distlock::connect("memory://shared-store").await.unwrap();
    let b = distlock::connect("memory://shared-store").await.unwrap();
    let name = distlock::LockName::new("x").unwrap();
    let opts = distlock::AcquireOptions::default();
    let lease = a.acquire(&name, &opts).await.unwrap().unwrap();
    assert!(
        b.acquire(&name, &opts).await.unwrap().is_none(),
        "same store"
    );
    a.release(&lease).await.unwrap();
}

#[tokio::test]
async fn unknown_schemes_are_named() {
    let reason = config_error("gopher://host/x").await;
    assert!(reason.contains("unknown scheme `gopher`"), "{reason}");
    assert!(
        reason.contains("redis"),
        "lists the known schemes: {reason}"
    );
}

#[tokio::test]
async fn garbage_is_an_error_not_a_panic() {
    for url in ["", "no scheme here", "://x", "::", "é://x", "\0://"] {
        config_error(url).await;
    }
}

#[tokio::test]
async fn passwords_never_appear_in_errors() {
    let reason = config_error("gopher://user:hunter2@host/x").await;
    assert!(!reason.contains("hunter2"), "{reason}");
    let reason = config_error("gopher://h/x?password=hunter2").await;
    assert!(!reason.contains("hunter2"), "{reason}");
}

#[cfg(feature = "zookeeper")]
#[tokio::test]
async fn zk_urls_reach_the_ensemble() {
    let hosts = std::env::var("DISTLOCK_ZK_HOSTS")
        .unwrap_or_else(|_| "127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183".into());
    let backend = distlock::connect(&format!("zk://{hosts}?session_timeout_ms=4000"))
        .await
        .expect("the ensemble from scripts/services.sh is up");
    assert_eq!(backend.backend_name(), "zookeeper");
    let name = distlock::LockName::new("facade/zk").unwrap();
    let opts = distlock::AcquireOptions::default();
    let lease = backend.acquire(&name, &opts).await.unwrap().unwrap();
    backend.release(&lease).await.unwrap();
}

#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_urls_reach_the_cluster() {
    let endpoints = std::env::var("DISTLOCK_ETCD_ENDPOINTS").unwrap_or_else(|_| {
        "http://127.0.0.1:12379,http://127.0.0.1:12381,http://127.0.0.1:12383".into()
    });
    let hosts = endpoints.replace("http://", "");
    let backend = distlock::connect(&format!("etcd://{hosts}"))
        .await
        .expect("the cluster from scripts/services.sh is up");
    assert_eq!(backend.backend_name(), "etcd");
    let name = distlock::LockName::new("facade/etcd").unwrap();
    let opts = distlock::AcquireOptions::default();
    let lease = backend.acquire(&name, &opts).await.unwrap().unwrap();
    backend.release(&lease).await.unwrap();
}
