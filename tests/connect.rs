//! `distlock::connect` and `LockClient::connect` turn URLs into backends
//! through the registry, and bad URLs into clear errors that never show a
//! password.

use std::time::Duration;

use distlock::prelude::*;
use distlock::registry;

async fn config_error(url: &str) -> String {
    match distlock::connect(url).await {
        Err(LockError::InvalidConfig { reason }) => reason,
        Err(other) => panic!("{url}: expected InvalidConfig, got {other}"),
        Ok(b) => panic!("{url}: expected an error, got {b:?}"),
    }
}

fn try_once() -> AcquireOptions {
    AcquireOptions::try_once(Duration::from_secs(30))
}

/// Whether the `distlock` feature a registry entry names is on in this build.
fn compiled_in(feature: &str) -> bool {
    match feature {
        "memory" => cfg!(feature = "memory"),
        "sqlite" => cfg!(feature = "sqlite"),
        "postgres" => cfg!(feature = "postgres"),
        "mysql" => cfg!(feature = "mysql"),
        "redis" => cfg!(feature = "redis"),
        "zookeeper" => cfg!(feature = "zookeeper"),
        "etcd" => cfg!(feature = "etcd"),
        other => panic!("the registry names a feature distlock does not have: `{other}`"),
    }
}

#[tokio::test]
async fn memory_urls_connect() {
    let a = distlock::connect("memory://shared-store").await.unwrap();
    let b = distlock::connect("memory://shared-store").await.unwrap();
    let name = LockName::new("x").unwrap();
    let lease = a.acquire(&name, &try_once()).await.unwrap().unwrap();
    assert!(
        b.acquire(&name, &try_once()).await.unwrap().is_none(),
        "same store"
    );
    a.release(&lease).await.unwrap();
}

#[tokio::test]
async fn lock_client_connects_from_a_url() {
    let a = LockClient::connect("memory://client-connect")
        .await
        .unwrap();
    let b = LockClient::connect("MEMORY://client-connect")
        .await
        .unwrap();
    assert_eq!(a.backend().backend_name(), "memory");
    let guard = a.lock("x").await.unwrap();
    assert!(b.try_lock("x").await.unwrap().is_none(), "same store");
    guard.release().await.unwrap();
    assert!(matches!(
        LockClient::connect("gopher://h").await,
        Err(LockError::InvalidConfig { .. })
    ));
}

#[tokio::test]
async fn unknown_schemes_are_named() {
    let reason = config_error("gopher://host/x").await;
    assert!(reason.contains("unknown scheme `gopher`"), "{reason}");
    for known in registry::all_spellings() {
        assert!(reason.contains(known), "lists `{known}`: {reason}");
    }
}

#[tokio::test]
async fn a_backend_whose_feature_is_off_names_the_feature() {
    for scheme in registry::SCHEMES {
        if compiled_in(scheme.feature) {
            continue;
        }
        for spelling in std::iter::once(scheme.scheme).chain(scheme.aliases.iter().copied()) {
            let reason = config_error(&format!("{spelling}://user:hunter2@h1:1/x")).await;
            let want = format!("enable the `{}` feature", scheme.feature);
            assert!(reason.contains(&want), "{spelling}: {reason}");
            assert!(!reason.contains("hunter2"), "{reason}");
        }
    }
}

#[tokio::test]
async fn garbage_is_an_error_not_a_panic() {
    for url in [
        "",
        "no scheme here",
        "://x",
        "::",
        "é://x",
        "\0://",
        "1abc://x",
    ] {
        config_error(url).await;
    }
}

#[tokio::test]
async fn passwords_never_appear_in_errors() {
    let reason = config_error("gopher://user:hunter2@host/x").await;
    assert!(!reason.contains("hunter2"), "{reason}");
    let reason = config_error("gopher://h/x?password=hunter2").await;
    assert!(!reason.contains("hunter2"), "{reason}");
    let reason = config_error("memory://store?password=hunter2").await;
    assert!(!reason.contains("hunter2"), "{reason}");
}

#[tokio::test]
async fn the_backend_crates_are_reexported() {
    #[cfg(feature = "memory")]
    let _: distlock::memory::MemoryBackend = distlock::memory::MemoryBackend::new();
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    let _ = std::any::type_name::<distlock::sql::SqlBackend>();
    #[cfg(feature = "redis")]
    let _ = (
        std::any::type_name::<distlock::redis::RedisBackend>(),
        std::any::type_name::<distlock::redis::RedlockBackend>(),
    );
    #[cfg(feature = "etcd")]
    let _ = std::any::type_name::<distlock::etcd::EtcdBackend>();
    #[cfg(feature = "zookeeper")]
    let _ = std::any::type_name::<distlock::zookeeper::ZkBackend>();
}

#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper",
    feature = "etcd"
))]
/// Connects through the facade, takes and gives back a lock, and checks the
/// backend that answered.
async fn round_trip(url: &str, backend: &str) {
    let client = LockClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", distlock::redact_url(url)));
    assert_eq!(client.backend().backend_name(), backend);
    let guard = client
        .try_lock_with(format!("facade/{backend}"), &try_once())
        .await
        .unwrap()
        .expect("a fresh name is free");
    assert!(guard.fencing_token().get() >= 1);
    guard.release().await.unwrap();
}

#[cfg(any(
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper",
    feature = "etcd"
))]
fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_urls_open_the_file() {
    let dir = std::env::temp_dir().join(format!("distlock-facade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    round_trip(
        &format!("sqlite://{}", dir.join("locks.db").display()),
        "sqlite",
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_urls_reach_the_server() {
    let url = env_or(
        "DISTLOCK_POSTGRES_URL",
        "postgres://distlock:distlock-pw@127.0.0.1:15432/distlock",
    );
    round_trip(&url, "postgres").await;
    round_trip(&url.replacen("postgres://", "postgresql://", 1), "postgres").await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_urls_reach_the_server() {
    let url = env_or(
        "DISTLOCK_MYSQL_URL",
        "mysql://distlock:distlock-pw@127.0.0.1:13306/distlock",
    );
    round_trip(&url, "mysql").await;
    round_trip(&url.replacen("mysql://", "mariadb://", 1), "mysql").await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_and_redlock_urls_pick_their_backends() {
    let urls = env_or(
        "DISTLOCK_REDIS_URLS",
        "redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381",
    );
    let urls: Vec<&str> = urls.split(',').collect();
    round_trip(urls[0], "redis").await;
    let hosts: Vec<&str> = urls
        .iter()
        .take(3)
        .map(|u| u.trim_start_matches("redis://"))
        .collect();
    round_trip(&format!("redlock://{}", hosts.join(",")), "redlock").await;
}

#[cfg(feature = "zookeeper")]
#[tokio::test]
async fn zk_urls_reach_the_ensemble() {
    let hosts = env_or(
        "DISTLOCK_ZK_HOSTS",
        "127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183",
    );
    round_trip(&format!("zk://{hosts}?session_timeout=4s"), "zookeeper").await;
}

#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_urls_reach_the_cluster() {
    let endpoints = env_or(
        "DISTLOCK_ETCD_ENDPOINTS",
        "http://127.0.0.1:12379,http://127.0.0.1:12381,http://127.0.0.1:12383",
    );
    let hosts = endpoints.replace("http://", "");
    round_trip(&format!("etcd://{hosts}"), "etcd").await;
}
