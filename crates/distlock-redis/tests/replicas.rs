//! Replica acknowledgement (`replicas=N`): a private primary and one
//! private replica (`--replicaof`), both started here. A grant and an
//! extension wait until the replica has them; asking for more replicas
//! than there are fails the acquire clearly and leaves the name free, and
//! an extension no replica acknowledges fails.

mod private_redis;

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, OwnerToken};
use distlock_redis::RedisBackend;
use private_redis::PrivateRedis;

const TTL: Duration = Duration::from_secs(30);
const PREFIX: &str = "replicas:";

/// A primary and one replica of it, the replica in sync.
async fn primary_and_replica() -> (PrivateRedis, PrivateRedis) {
    // Replicas sync at once, not after the default 5 s diskless delay.
    let primary = PrivateRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let port = primary.port().to_string();
    let replica = PrivateRedis::start(&["--replicaof", "127.0.0.1", &port]);
    // WAIT returns once the replica acknowledged our write. The first
    // round may be answered by the replica's first acknowledgement after
    // its initial sync (a write made before the primary had a replica has
    // no replication offset to wait for), which is also what starts the
    // command stream to it; the second write is streamed, so its WAIT
    // proves the replica follows.
    let mut conn = connection(&primary.addr()).await;
    for round in 0..2 {
        let _: () = redis::cmd("SET")
            .arg("synced")
            .arg(round)
            .query_async(&mut conn)
            .await
            .unwrap();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(30_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(acked, 1, "the private replica did not follow within 30 s");
    }
    (primary, replica)
}

async fn connection(addr: &str) -> redis::aio::MultiplexedConnection {
    // No response timeout: WAIT takes as long as it says.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the private redis at {addr}: {e}"))
}

async fn backend(primary: &PrivateRedis, params: &str) -> Arc<dyn DistributedLock> {
    let url = format!("redis://{}?prefix={PREFIX}&{params}", primary.addr());
    Arc::new(
        RedisBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the private redis at {url}: {e}")),
    )
}

fn name() -> LockName {
    LockName::new(format!("replicas/{}", OwnerToken::random())).unwrap()
}

#[tokio::test]
async fn a_grant_and_its_extension_are_on_the_replica_when_they_return() {
    let (primary, replica) = primary_and_replica().await;
    let c = backend(&primary, "replicas=1").await;
    let mut on_replica = connection(&replica.addr()).await;
    let n = name();
    let lock_key = format!("{{{PREFIX}{n}}}:lock");
    let lease = c
        .acquire(&n, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .unwrap();
    let holder: Option<String> = redis::cmd("GET")
        .arg(&lock_key)
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(holder, Some(lease.owner().to_hex()));
    c.extend(&lease, Duration::from_secs(120)).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&lock_key)
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert!(
        pttl > TTL.as_millis() as i64,
        "the extension is not on the replica: {pttl} ms"
    );
    c.release(&lease).await.unwrap();
}

#[tokio::test]
async fn asking_for_more_replicas_than_there_are_fails_the_acquire_and_frees_the_name() {
    let (primary, _replica) = primary_and_replica().await;
    let c = backend(&primary, "replicas=2&replica_timeout=100ms").await;
    let n = name();
    let err = c
        .acquire(&n, &AcquireOptions::try_once(TTL))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("1 of the 2 replicas"), "unclear: {shown}");
    assert!(shown.contains("given back"), "unclear: {shown}");
    // The grant was given back: anyone may take the name at once.
    let plain = backend(&primary, "replicas=0").await;
    let lease = plain
        .acquire(&n, &AcquireOptions::try_once(TTL))
        .await
        .unwrap();
    assert!(lease.is_some(), "the unacknowledged grant was left held");
}

#[tokio::test]
async fn an_extension_no_replica_acknowledged_fails() {
    let (primary, mut replica) = primary_and_replica().await;
    let c = backend(&primary, "replicas=1&replica_timeout=100ms").await;
    let n = name();
    let lease = c
        .acquire(&n, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .unwrap();
    replica.shutdown_nosave().await;
    let err = c.extend(&lease, TTL).await.unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("0 of the 1 replicas"),
        "unclear: {err}"
    );
    c.release(&lease).await.unwrap();
}
