//! Backends built on the application's own `redis::Client`s: the
//! conformance suite through them (one instance, and Redlock over the five
//! instances), interplay with backends built from URLs, credentials carried
//! by the client, and bad input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{Harness, ProxiedClient};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, OwnerToken};
use distlock_redis::{redis, RedisBackend, RedisConfig, RedlockBackend};

const SINGLE_PREFIX: &str = "clients-single:";
const REDLOCK_PREFIX: &str = "clients-redlock:";
const TTL: Duration = Duration::from_secs(30);

fn client_of(addr: &str) -> redis::Client {
    redis::Client::open(format!("redis://{addr}")).unwrap()
}

async fn single_from_client(addr: &str, prefix: &str) -> Arc<dyn DistributedLock> {
    let options = RedisConfig::default().with_prefix(prefix);
    let backend = RedisBackend::from_client(client_of(addr), options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach redis at {addr}: {e}; {}",
                common::START_SERVERS
            )
        });
    Arc::new(backend)
}

async fn redlock_from_clients(addrs: &[String], prefix: &str) -> Arc<dyn DistributedLock> {
    let clients = addrs.iter().map(|a| client_of(a)).collect();
    let options = RedisConfig::default().with_prefix(prefix);
    let backend = RedlockBackend::from_clients(clients, options)
        .await
        .unwrap_or_else(|e| panic!("cannot reach redis: {e}; {}", common::START_SERVERS));
    Arc::new(backend)
}

struct SingleHarness;

#[distlock_core::async_trait]
impl Harness for SingleHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        single_from_client(&common::instance_addrs()[0], SINGLE_PREFIX).await
    }

    /// A backend whose client reaches the instance through a fault proxy.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        let proxies = common::proxies_for(&common::instance_addrs()[..1]).await;
        let client = single_from_client(&common::proxy_addrs(&proxies)[0], SINGLE_PREFIX).await;
        Some(ProxiedClient { client, proxies })
    }
}

struct RedlockHarness {
    addrs: Vec<String>,
}

#[distlock_core::async_trait]
impl Harness for RedlockHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        redlock_from_clients(&self.addrs, REDLOCK_PREFIX).await
    }

    /// A backend whose clients reach each instance through its own proxy.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        let proxies = common::proxies_for(&self.addrs).await;
        let client = redlock_from_clients(&common::proxy_addrs(&proxies), REDLOCK_PREFIX).await;
        Some(ProxiedClient { client, proxies })
    }
}

async fn redlock_harness() -> RedlockHarness {
    let addrs = common::instance_addrs();
    assert_eq!(addrs.len(), 5, "DISTLOCK_REDIS_URLS must list 5 instances");
    common::require_all_up(&addrs).await;
    RedlockHarness { addrs }
}

distlock_conformance::suite!(from_client, async { SingleHarness });
distlock_conformance::suite!(from_clients, redlock_harness());

fn name() -> LockName {
    LockName::new(format!("clients/{}", OwnerToken::random())).unwrap()
}

#[tokio::test]
async fn a_backend_on_a_shared_client_and_one_from_a_url_exclude_each_other() {
    let addr = &common::instance_addrs()[0];
    let shared = client_of(addr);
    let options = RedisConfig::default().with_prefix(SINGLE_PREFIX);
    let on_client = RedisBackend::from_client(shared.clone(), options)
        .await
        .unwrap();
    let from_url = common::single(SINGLE_PREFIX).await;
    let n = name();
    let once = AcquireOptions::try_once(TTL);
    let lease = on_client.acquire(&n, &once).await.unwrap().unwrap();
    assert!(from_url.acquire(&n, &once).await.unwrap().is_none());
    // The application's own use of the client goes on beside the backend.
    let mut conn = shared.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{SINGLE_PREFIX}app-key:{}", OwnerToken::random());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let read: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read, "v");
    on_client.release(&lease).await.unwrap();
    let again = from_url.acquire(&n, &once).await.unwrap().unwrap();
    assert!(again.fencing_token() > lease.fencing_token());
    from_url.release(&again).await.unwrap();
}

#[tokio::test]
async fn redlock_on_shared_clients_counts_a_quorum_of_them() {
    let addrs = common::instance_addrs();
    let clients: Vec<redis::Client> = addrs.iter().map(|a| client_of(a)).collect();
    let backend = RedlockBackend::from_clients(clients, RedisConfig::default())
        .await
        .unwrap();
    assert_eq!(backend.quorum(), addrs.len() / 2 + 1);
}

#[tokio::test]
async fn a_shared_client_carries_its_credentials_and_never_shows_them() {
    let url = std::env::var("DISTLOCK_REDIS_AUTH_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:16384".to_string());
    let addr = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let password = std::env::var("DISTLOCK_REDIS_AUTH_PASSWORD")
        .unwrap_or_else(|_| "distlock-secret-pw".to_string());
    let good = redis::Client::open(format!("redis://:{password}@{addr}")).unwrap();
    let backend = RedisBackend::from_client(good, RedisConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}; {}", common::START_SERVERS));
    assert!(!format!("{backend:?}").contains(&password));
    let n = name();
    let lease = backend
        .acquire(&n, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .unwrap();
    backend.release(&lease).await.unwrap();

    let wrong = "not-the-pw-8c1e";
    let bad = redis::Client::open(format!("redis://:{wrong}@{addr}")).unwrap();
    let err = RedisBackend::from_client(bad, RedisConfig::default())
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.to_lowercase().contains("authentication"),
        "not an auth error: {err}"
    );
    assert!(!shown.contains(wrong), "the password shows: {shown}");
}

#[tokio::test]
async fn redlock_without_clients_or_with_bad_options_is_invalid_config() {
    let err = RedlockBackend::from_clients(Vec::new(), RedisConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err:?}");
    let client = client_of(&common::instance_addrs()[0]);
    let options = RedisConfig::default().with_prefix("{bad}");
    let err = RedisBackend::from_client(client, options)
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err:?}");
}
