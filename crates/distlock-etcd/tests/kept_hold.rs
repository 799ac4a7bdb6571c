//! A hold kept after its release (lock-at-least-for) on a real cluster: its
//! key moves to an etcd lease of its own and keeps its create revision (the
//! term), its place and its value (the leader's identity); the next
//! leader's term is above it.

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_hold_shows_its_leader_and_term_until_it_ends() {
    let prefix = common::unique_prefix("kept-hold");
    let a = common::connect(common::config(&prefix)).await;
    let b = common::connect(common::config(&prefix)).await;
    let name = LockName::new("kept/leader").unwrap();
    let kept =
        AcquireOptions::try_once(Duration::from_secs(30)).with_at_least(Duration::from_secs(2));
    let first = a.elect(&name, "first", &kept).await.unwrap().unwrap();
    a.release(&first).await.unwrap();
    drop(a); // revokes the client's etcd lease: the kept key is not on it

    let status = b.status(&name).await.unwrap();
    assert!(
        status.held,
        "a hold released before its minimum reads as free"
    );
    assert_eq!(status.holder.as_deref(), Some("first"));
    assert_eq!(status.fencing_token, Some(first.fencing_token()));

    let waiting =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(20)));
    let second = b.elect(&name, "second", &waiting).await.unwrap().unwrap();
    assert!(second.fencing_token() > first.fencing_token());
    let status = b.status(&name).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("second"));
    assert_eq!(status.fencing_token, Some(second.fencing_token()));
    b.release(&second).await.unwrap();
    assert!(!b.status(&name).await.unwrap().held);
}
