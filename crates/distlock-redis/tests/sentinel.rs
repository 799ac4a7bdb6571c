//! Redis Sentinel (`redis+sentinel://`): the conformance suite on the
//! primary of the Sentinel set scripts/services.sh runs, and the URL form.
//! The failover is in `faults_sentinel.rs`, a binary of its own: it kills
//! the primary these tests use, and `cargo test` runs one test binary at a
//! time.

mod common;
mod sentinel_set;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{Harness, ProxiedClient};
use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, OwnerToken};
use distlock_redis::{RedisBackend, RedisConfig};

const SUITE_PREFIX: &str = "conformance-sentinel:";

struct SentinelHarness;

#[distlock_core::async_trait]
impl Harness for SentinelHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        sentinel_set::backend(SUITE_PREFIX).await
    }

    /// A client whose connections to the servers the sentinels name pass
    /// through one fault proxy per data node.
    async fn proxied_client(&self) -> Option<ProxiedClient> {
        Some(sentinel_set::proxied(SUITE_PREFIX).await)
    }
}

async fn sentinel_harness() -> SentinelHarness {
    sentinel_set::require_up().await;
    SentinelHarness
}

distlock_conformance::suite!(redis_sentinel, sentinel_harness());

fn name(case: &str) -> LockName {
    LockName::new(format!("sentinel/{case}/{}", OwnerToken::random().to_hex())).unwrap()
}

#[test]
fn the_url_names_the_sentinels_the_master_and_the_primarys_login() {
    let config = RedisConfig::from_url(
        "redis+sentinel://:sentinel-pw@s1:26379,s2:26380/locks?db=2&user=app&password=app-pw&fair=false&prefix=p:",
    )
    .unwrap();
    let sentinel = config.sentinel.as_ref().expect("a Sentinel configuration");
    let addrs: Vec<String> = sentinel.sentinels.iter().map(|s| s.label()).collect();
    assert_eq!(addrs, ["s1:26379", "s2:26380"]);
    // The sentinels' credentials (before the hosts) reach every sentinel.
    for s in &sentinel.sentinels {
        assert_eq!(s.credentials.password.as_deref(), Some("sentinel-pw"));
    }
    assert_eq!(sentinel.master, "locks");
    assert_eq!(sentinel.db, 2);
    assert_eq!(sentinel.credentials.username.as_deref(), Some("app"));
    assert_eq!(sentinel.credentials.password.as_deref(), Some("app-pw"));
    assert!(!config.fair && !config.redlock);
    assert_eq!(config.prefix, "p:");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("sentinel-pw") && !shown.contains("app-pw"),
        "{shown}"
    );
}

#[test]
fn bad_sentinel_urls_are_refused_clearly() {
    let refused = |url: &str, saying: &str| match RedisConfig::from_url(url) {
        Err(LockError::InvalidConfig { reason }) => {
            assert!(reason.contains(saying), "{url}: {reason}");
            assert!(!reason.contains("secret-pw"), "{url}: {reason}");
        }
        other => panic!("{url}: expected InvalidConfig, got {other:?}"),
    };
    refused("redis+sentinel://s1:26379", "master-name");
    refused("redis+sentinel://s1:26379/", "master-name");
    refused("redis+sentinel://s1:26379/a/b", "master-name");
    refused("redis+sentinel://s1:26379/m?tls=true", "TLS");
    refused("redis+sentinel://s1:26379/m?user=app", "password");
    refused(
        "redis+sentinel://:secret-pw@s1:26379,:other@s2:1/m",
        "same credentials",
    );
    refused("redis+sentinel://s1:26379/m?db=-1", "database");
    refused("redis+sentinel://s1:26379/m?color=red", "color");
}

#[tokio::test]
async fn a_master_name_the_sentinels_do_not_know_fails_at_connect() {
    sentinel_set::require_up().await;
    let url = format!(
        "redis+sentinel://{}/no-such-master?timeout=2s",
        sentinel_set::sentinels().join(",")
    );
    let err = RedisBackend::connect(&url)
        .await
        .expect_err("no primary is monitored under that name");
    let shown = err.to_string();
    assert!(shown.contains("no-such-master"), "{shown}");
}

#[tokio::test]
async fn locks_are_taken_on_the_primary_the_sentinels_name() {
    sentinel_set::require_up().await;
    let prefix = "sentinel-primary:";
    let client = sentinel_set::backend(prefix).await;
    let lock = name("on-primary");
    let lease = client
        .acquire(&lock, &AcquireOptions::try_once(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("free lock");
    let mut primary = sentinel_set::connection(&sentinel_set::primary().await).await;
    let key = format!("{{{prefix}{lock}}}:lock");
    let held: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut primary)
        .await
        .unwrap();
    assert_eq!(held, 1, "{key} is not on the primary");
    client.release(&lease).await.unwrap();
}
