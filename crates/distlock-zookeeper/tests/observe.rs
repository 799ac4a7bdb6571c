//! Leader observers on ZooKeeper see a waiter that claims its turn.
//!
//! A waiter whose turn comes holds only once it has claimed it: one
//! `setData` on its node after its predecessor's deletion. An observer
//! woken by the deletion reads the name vacant; the claim must wake it
//! again. The race is narrow with real waiters (they claim at once), so the
//! waiter here is a node created and claimed by hand, with the release in
//! between.

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{
    AcquireOptions, AcquireRequest, DistributedLock, Leader, Lease, LockClient, LockName,
};
use distlock_zookeeper::zookeeper_client as zk;
use distlock_zookeeper::ZkConfig;

const SESSION: Duration = Duration::from_secs(6);
const LONG_TTL: Duration = Duration::from_secs(60);
/// The hand-made waiter's window: longer than the test, so nobody passes
/// over it before it claims.
const WINDOW: Duration = Duration::from_secs(120);
/// How long an observer may take to report a change it was notified of.
const SEEN_WITHIN: Duration = Duration::from_secs(5);
/// An observer that reads only on change notices.
const NOTICES_ONLY: Duration = Duration::from_secs(3600);
/// The first byte of a marked (waiting) node's data, as the backend writes it.
const WAITING: u8 = 0xff;

fn node_path(lease: &Lease) -> String {
    let data = lease.data();
    let rest = data.strip_prefix("node=").expect("a ZooKeeper lease");
    rest.split_once(";session=")
        .expect("a ZooKeeper lease")
        .0
        .to_string()
}

/// The holder elects itself, a marked waiter queues behind it, an observer
/// reports the holder; the holder resigns (the observer reports the
/// vacancy), the waiter claims its turn. `Err` when the observer does not
/// report the waiter as the new leader within [`SEEN_WITHIN`].
async fn observer_sees_a_claim(config: ZkConfig) -> Result<(), String> {
    let holder = common::connect(config.clone()).await;
    let waiter = common::connect(config.clone()).await;
    let watcher: Arc<dyn DistributedLock> = Arc::new(common::connect(config).await);
    let name = LockName::new(format!("observe/{:016x}", rand::random::<u64>())).unwrap();
    let options = AcquireOptions::try_once(LONG_TTL);
    let first = holder
        .elect(&name, "first", &options)
        .await
        .unwrap()
        .expect("a fresh name is free");
    // A waiter queued behind the holder, marked as the backend marks one.
    let path = node_path(&first);
    let dir = &path[..path.rfind('/').unwrap()];
    let owner = AcquireRequest::new(name.clone(), options).owner.to_hex();
    let prefix = format!("{dir}/{owner}-");
    let mark = distlock_core::line::waiting_mark(WAITING, WINDOW);
    let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let raw = waiter.zk_client();
    let (stat, seq) = raw.create(&prefix, &mark, &mode).await.unwrap();
    let queued = format!("{prefix}{seq}");

    // Observed from here on: the only notices are the release's and the
    // claim's.
    let mut observer = LockClient::new(watcher)
        .observe_with(&name, NOTICES_ONLY)
        .unwrap();
    let seen = observer.changed().await.unwrap();
    let leader = |identity: &str, term| Leader {
        identity: Some(identity.to_string()),
        term,
    };
    assert_eq!(seen, Some(leader("first", first.fencing_token())));

    holder.release(&first).await.unwrap();
    let vacant = tokio::time::timeout(SEEN_WITHIN, observer.changed()).await;
    assert!(
        matches!(vacant, Ok(Ok(None))),
        "a released name with an unclaimed waiter read as {vacant:?}, not vacant"
    );

    raw.set_data(&queued, b"second", Some(0)).await.unwrap();
    let claimed = tokio::time::timeout(SEEN_WITHIN, observer.changed()).await;
    raw.delete(&queued, None).await.unwrap();
    let term = distlock_core::FencingToken(u64::try_from(stat.czxid).unwrap());
    match claimed {
        Ok(seen) => {
            assert_eq!(seen.unwrap(), Some(leader("second", term)));
            Ok(())
        }
        Err(_) => Err(format!(
            "the observer reported no leader within {SEEN_WITHIN:?} of the waiter's claim"
        )),
    }
}

#[tokio::test]
async fn an_observer_reports_a_waiter_that_claims_its_turn() {
    let config = common::config(&common::unique_root(), SESSION).with_waiter_timeout(WINDOW);
    if let Err(e) = observer_sees_a_claim(config).await {
        panic!("{e}");
    }
}

/// The same with a watch on the directory's children only (not their data):
/// the claim is no notice, and the observer must miss it.
#[tokio::test]
async fn a_watch_on_children_only_misses_the_claim_broken_on_purpose() {
    let config = common::config(&common::unique_root(), SESSION)
        .with_waiter_timeout(WINDOW)
        .with_claims_unnoticed_broken_on_purpose();
    let result = observer_sees_a_claim(config).await;
    assert!(
        result.is_err(),
        "an observer without notices of claims still reported the waiter: the test above cannot fail"
    );
}
