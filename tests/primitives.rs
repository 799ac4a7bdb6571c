//! The client side of the primitives over the memory backend: a
//! multi-name guard (names, tokens, loss, release and drop), a leadership
//! (term, identity, loss), an observer as a stream, and a minimum kept
//! through `with_lock`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock::memory::MemoryBackend;
use distlock::{AcquireOptions, DistributedLock, Leader, LockClient, LockError, LostReason, Wait};
use futures::StreamExt;

/// Two clients of one private store, guards with `ttl_ms`.
fn two_clients(ttl_ms: u64) -> (MemoryBackend, LockClient, LockClient) {
    let store = MemoryBackend::new();
    let options = AcquireOptions::new(Duration::from_millis(ttl_ms))
        .with_wait(Wait::For(Duration::from_secs(10)));
    let client = || LockClient::with_defaults(Arc::new(store.clone()), options);
    (store.clone(), client(), client())
}

/// Bounds a wait on something that should happen soon.
async fn soon<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

#[tokio::test]
async fn a_multi_lock_guard_holds_each_name_once_with_its_token() {
    let (_, a, b) = two_clients(30_000);
    let guard = a.lock_many(["b/2", "a/1", "b/2"]).await.unwrap();
    let names: Vec<String> = guard.names().iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["a/1", "b/2"]);
    assert_eq!(guard.fencing_tokens().len(), 2);
    assert!(guard.fencing_token("a/1").is_some());
    assert_eq!(guard.fencing_token("c/3"), None);
    assert!(b.try_lock("a/1").await.unwrap().is_none());
    assert!(b.try_lock_many(["c/3", "b/2"]).await.unwrap().is_none());
    let untouched = b.try_lock("c/3").await.unwrap();
    assert!(untouched.is_some(), "a failed multi-lock kept a name");
    guard.release().await.unwrap();
    let again = b.try_lock_many(["a/1", "b/2"]).await.unwrap();
    assert!(again.is_some(), "released names are free");
}

#[tokio::test]
async fn a_multi_lock_is_lost_when_one_of_its_names_is() {
    let (store, a, _) = two_clients(300);
    let guard = a.lock_many(["x", "y"]).await.unwrap();
    let lost = guard.lost();
    // Take `y` away behind the guard's back: its next extension is refused.
    store.release(&guard.leases()[1]).await.unwrap();
    assert_eq!(soon("the loss", lost).await, LostReason::Rejected);
    assert!(guard.is_lost());
    let err = guard.release().await.unwrap_err();
    assert!(err.is_not_held(), "{err}");
}

#[tokio::test]
async fn dropping_a_multi_lock_guard_releases_every_name() {
    let (_, a, b) = two_clients(30_000);
    let guard = a.lock_many(["p", "q"]).await.unwrap();
    drop(guard);
    let both = soon("the background release", b.lock_many(["q", "p"])).await;
    both.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_client_refuses_what_cannot_be_a_multi_lock_or_a_leader() {
    let (_, a, _) = two_clients(30_000);
    let none: [&str; 0] = [];
    let err = a.lock_many(none).await.unwrap_err();
    assert!(matches!(err, LockError::InvalidName { .. }), "{err}");
    let err = a.elect("e", "").await.unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
    let err = a.observe_with("e", Duration::ZERO).unwrap_err();
    assert!(matches!(err, LockError::InvalidOptions { .. }), "{err}");
}

#[tokio::test]
async fn a_leadership_carries_its_identity_and_term_and_reports_its_loss() {
    let (store, a, b) = two_clients(300);
    let first = a.elect("election", "node-a").await.unwrap();
    assert_eq!(first.identity(), "node-a");
    assert!(b.try_elect("election", "node-b").await.unwrap().is_none());
    let lost = first.lost();
    store.release(&first.guard().lease()).await.unwrap();
    assert_eq!(soon("the loss", lost).await, LostReason::Rejected);
    let second = b.try_elect("election", "node-b").await.unwrap().unwrap();
    assert!(second.term() > first.term());
    assert!(first.resign().await.unwrap_err().is_not_held());
    second.resign().await.unwrap();
}

#[tokio::test]
async fn an_observer_streams_each_leader_in_order() {
    let (_, a, b) = two_clients(30_000);
    let mut leaders = Box::pin(b.observe("election").unwrap().into_stream());
    assert_eq!(leaders.next().await.unwrap().unwrap(), None);
    let mut terms = Vec::new();
    for identity in ["node-1", "node-2"] {
        let leadership = a.elect("election", identity).await.unwrap();
        let seen = loop {
            match soon("a report", leaders.next()).await.unwrap().unwrap() {
                Some(leader) => break leader,
                None => continue,
            }
        };
        let expected = Leader {
            identity: Some(identity.to_string()),
            term: leadership.term(),
        };
        assert_eq!(seen, expected);
        terms.push(seen.term);
        leadership.resign().await.unwrap();
    }
    assert!(terms[1] > terms[0]);
}

#[tokio::test]
async fn with_lock_keeps_a_minimum_after_the_work() {
    let (_, a, b) = two_clients(30_000);
    let minimum = Duration::from_millis(400);
    let options = a.defaults().with_at_least(minimum);
    let started = Instant::now();
    a.with_lock_with("job", &options, |_| async {})
        .await
        .unwrap();
    assert!(b.try_lock("job").await.unwrap().is_none(), "released early");
    let guard = b.lock("job").await.unwrap();
    assert!(started.elapsed() >= minimum);
    guard.release().await.unwrap();
}
