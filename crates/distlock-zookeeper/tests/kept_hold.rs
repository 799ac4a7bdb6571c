//! A hold kept after its release (lock-at-least-for) on a real ensemble:
//! it keeps its place, its leader's identity and its term (the node is
//! created again on a session of its own, so its creation zxid is not the
//! term: its data records it), and the next leader's term is above it.

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockBackend, LockError, LockName, Wait};

const SESSION: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_hold_shows_its_leader_and_term_until_it_ends() {
    let root = common::unique_root();
    let a = common::connect(common::config(&root, SESSION)).await;
    let b = common::connect(common::config(&root, SESSION)).await;
    let name = LockName::new("kept/leader").unwrap();
    let kept =
        AcquireOptions::try_once(Duration::from_secs(30)).with_at_least(Duration::from_secs(2));
    let first = a.elect(&name, "first", &kept).await.unwrap().unwrap();
    a.release(&first).await.unwrap();

    let status = b.status(&name).await.unwrap();
    assert!(
        status.held,
        "a hold released before its minimum reads as free"
    );
    assert_eq!(status.holder.as_deref(), Some("first"));
    assert_eq!(status.fencing_token, Some(first.fencing_token()));
    assert!(
        a.extend(&first, first.ttl()).await.is_err(),
        "a kept hold is no longer the client's"
    );

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

/// A minimum whose hold the ensemble's longest session (`maxSessionTimeout`,
/// 60 s on the test ensemble) cannot cover is refused when the lock is
/// taken, not when it is released; a shorter one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minimum_beyond_the_longest_session_is_refused_up_front() {
    let root = common::unique_root();
    let a = common::connect(common::config(&root, SESSION)).await;
    let name = LockName::new("kept/too-long").unwrap();
    let ttl = Duration::from_secs(300);
    let too_long = AcquireOptions::try_once(ttl).with_at_least(Duration::from_secs(61));
    let refused = a.acquire(&name, &too_long).await;
    assert!(
        matches!(&refused, Err(LockError::InvalidOptions { reason }) if reason.contains("maxSessionTimeout")),
        "{refused:?}"
    );
    assert!(
        !a.status(&name).await.unwrap().held,
        "a refused acquire left a node"
    );
    let fits = AcquireOptions::try_once(ttl).with_at_least(Duration::from_secs(10));
    let lease = a.acquire(&name, &fits).await.unwrap().unwrap();
    a.revoke(&lease).await.unwrap(); // released without the minimum: free at once
    assert!(!a.status(&name).await.unwrap().held);
}
