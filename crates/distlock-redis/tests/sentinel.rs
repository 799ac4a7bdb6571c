//! Redis Sentinel (`redis+sentinel://`): the conformance suite on the
//! primary of the Sentinel set scripts/services.sh runs, the URL form, and
//! a failover (the primary killed while a lock is held) that the client
//! follows, with fencing tokens still rising.
//!
//! The failover test kills a shared server, so it runs in the serial fault
//! phase (`cargo test … faults_ -- --test-threads=1`); the killed node is
//! restarted by a drop guard, also when the test fails.

mod sentinel_set;

use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::services::{self, StoppedNodes};
use distlock_conformance::{Harness, ProxiedClient};
use distlock_core::{
    AcquireOptions, DistributedLock, Lease, LockError, LockName, OwnerToken, Wait,
};
use distlock_redis::{RedisBackend, RedisConfig};
use sentinel_set::{Switches, SERVICE};

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

/// After a failover: the first call may still meet the lost connection to
/// the old primary (it reports `Unavailable` and drops that connection);
/// then an acquire must be granted (waiting out a hold the new primary
/// kept from the old one).
async fn granted_after_failover(
    client: &dyn DistributedLock,
    lock: &LockName,
    ttl: Duration,
) -> Result<Lease, String> {
    match client.status(lock).await {
        Ok(_) | Err(LockError::Unavailable { .. }) => {}
        Err(e) => return Err(format!("status after the failover: {e}")),
    }
    let options = AcquireOptions::new(ttl).with_wait(Wait::For(ttl * 5));
    match client.acquire(lock, &options).await {
        Ok(Some(lease)) => Ok(lease),
        Ok(None) => Err("the lock stayed held after the failover".to_string()),
        Err(e) => Err(format!("acquire after the failover: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_sentinel_failover_is_followed_and_tokens_rise() {
    let _serial = services::exclusive().await;
    sentinel_set::require_up().await;
    let prefix = "faults-sentinel:";
    let ttl = Duration::from_secs(2);
    let following = sentinel_set::backend(prefix).await;
    // The purpose-broken control: it stays with the primary it found first.
    let pinned = RedisBackend::from_config_pinned_to_first_primary(
        RedisConfig::sentinel(sentinel_set::sentinel_config()).with_prefix(prefix),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot reach the primary: {e}"));
    let lock = name("failover");
    let before = following
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free lock");

    let old = sentinel_set::primary().await;
    let mut switches = Switches::watch().await;
    let mut killed = StoppedNodes::kill(SERVICE, &[sentinel_set::node_of(&old)]);
    let new = switches.next(Duration::from_secs(60)).await;
    assert_ne!(new, old, "the sentinels elected the killed primary again");

    let after = granted_after_failover(&*following, &lock, ttl)
        .await
        .unwrap_or_else(|e| panic!("the client did not follow the failover: {e}"));
    assert!(
        after.fencing_token() > before.fencing_token(),
        "fencing token {:?} after the failover is not above {:?} before it",
        after.fencing_token(),
        before.fencing_token()
    );
    let mut on_new = sentinel_set::connection(&new).await;
    let key = format!("{{{prefix}{lock}}}:lock");
    let held: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut on_new)
        .await
        .unwrap();
    assert_eq!(
        held, 1,
        "the grant after the failover is not on the new primary {new}"
    );
    following.release(&after).await.unwrap();

    let broken = granted_after_failover(&pinned, &lock, ttl).await;
    assert!(
        broken.is_err(),
        "a client pinned to the old primary was granted the lock: the test cannot tell"
    );

    // The old primary comes back (and is made a replica of the new one by
    // the sentinels).
    killed.start_all();
}
