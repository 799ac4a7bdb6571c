//! Redis Sentinel failover: the primary killed while a lock is held; the
//! client follows the sentinels to the new primary, and fencing tokens
//! still rise.
//!
//! A binary of its own: it kills a server the Sentinel suite
//! (`sentinel.rs`) uses, and `cargo test` runs one test binary at a time.
//! The killed node is restarted by a drop guard, also when the test fails.

mod common;
mod sentinel_set;

use std::time::Duration;

use distlock_conformance::services::{self, StoppedNodes};
use distlock_core::{
    AcquireOptions, DistributedLock, Lease, LockError, LockName, OwnerToken, Wait,
};
use distlock_redis::{RedisBackend, RedisConfig};
use sentinel_set::{Switches, SERVICE};

fn name(case: &str) -> LockName {
    LockName::new(format!("sentinel/{case}/{}", OwnerToken::random().to_hex())).unwrap()
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
