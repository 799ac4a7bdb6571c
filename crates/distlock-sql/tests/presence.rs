//! MySQL/MariaDB's presence slots under the session strategy: a session
//! with readers or permit holders of a name holds one of the name's slots
//! (`GET_LOCK` on `<name>:<i>`), and a writer reads the holders table only
//! while some slot is held. These tests show that one backend takes one
//! slot whatever its number of readers, that readers beyond the slots wait
//! for one, that a reader whose session the server kills is lost (and its
//! row no longer keeps writers out), and that the suite catches a backend
//! whose readers take no slot.
#![cfg(feature = "mysql")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::{cases, Harness};
use distlock_core::{
    AcquireOptions, DistributedLock, LockClient, LockName, LostReason, Mode, Wait,
};
use distlock_sql::{sqlx, SqlBackend, SqlConfig};
use sha2::{Digest, Sha256};

const TTL: Duration = Duration::from_secs(30);

fn url(params: &str) -> String {
    let params = match params {
        "" => "strategy=session".to_string(),
        p => format!("strategy=session&{p}"),
    };
    common::with_params(&common::mysql_url(), &params)
}

async fn backend(params: &str) -> SqlBackend {
    common::connect("MariaDB", &url(params)).await
}

fn name(test: &str) -> LockName {
    LockName::new(format!("presence/{test}/{}", common::unique())).unwrap()
}

fn try_once() -> AcquireOptions {
    AcquireOptions::try_once(TTL)
}

/// The `GET_LOCK` name of `name` in the default table.
fn named(name: &LockName) -> String {
    let digest = Sha256::digest(format!("distlock_locks\0{name}").as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("dl:{hex}")
}

/// The connection ids holding `name`'s presence slots `0..slots`, in slot
/// order (`None` for a free slot), as the server shows them.
async fn slot_holders(name: &LockName, slots: u32) -> Vec<Option<i64>> {
    let pool = sqlx::MySqlPool::connect(&common::mysql_url())
        .await
        .unwrap();
    let mut out = Vec::new();
    for i in 0..slots {
        let id: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?)")
            .bind(format!("{}:{i}", named(name)))
            .fetch_one(&pool)
            .await
            .unwrap();
        out.push(id);
    }
    out
}

/// Five readers on one backend of two sessions hold one slot between them
/// (that readers there keep a writer out until the last leaves is
/// `session.rs`'s case); once they are gone every slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_backend_takes_one_slot_for_all_its_readers() {
    let readers = backend("sessions=2").await;
    let n = name("one-slot");
    let mut held = Vec::new();
    for _ in 0..5 {
        let r = readers.acquire_as(&n, Mode::Shared, &try_once()).await;
        held.push(r.unwrap().expect("readers share"));
    }
    let taken = slot_holders(&n, 8).await;
    let count = taken.iter().filter(|s| s.is_some()).count();
    assert_eq!(
        count, 1,
        "five readers of one backend hold the slots {taken:?}"
    );
    for r in held {
        readers.release(&r).await.unwrap();
    }
    assert_eq!(slot_holders(&n, 8).await, vec![None; 8]);
}

/// With two slots, readers of two backends fill them: a third backend's
/// reader (or permit holder) waits until one of them leaves, and a writer
/// stays out throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_beyond_the_slots_wait_for_one() {
    let params = "shared_slots=2";
    let (a, b, c) = (
        backend(params).await,
        backend(params).await,
        backend(params).await,
    );
    let n = name("beyond");
    let ra = a.acquire_as(&n, Mode::Shared, &try_once()).await.unwrap();
    let ra = ra.expect("a slot is free");
    let rb = b.acquire_as(&n, Mode::Shared, &try_once()).await.unwrap();
    let rb = rb.expect("a slot is free");
    let third = c.acquire_as(&n, Mode::Shared, &try_once()).await.unwrap();
    assert!(
        third.is_none(),
        "a third session got a read lock beside two slots"
    );
    let waiting = try_once().with_wait(Wait::For(Duration::from_secs(10)));
    let c = Arc::new(c);
    let waiter = {
        let (c, n) = (Arc::clone(&c), n.clone());
        tokio::spawn(async move { c.acquire_as(&n, Mode::Shared, &waiting).await })
    };
    assert!(a.acquire(&n, &try_once()).await.unwrap().is_none());
    a.release(&ra).await.unwrap();
    let rc = waiter
        .await
        .unwrap()
        .unwrap()
        .expect("the freed slot went to the waiting reader");
    assert!(a.acquire(&n, &try_once()).await.unwrap().is_none());
    b.release(&rb).await.unwrap();
    c.release(&rc).await.unwrap();
    let w = a.acquire(&n, &try_once()).await.unwrap().expect("free");
    a.release(&w).await.unwrap();
}

/// The server kills the session holding a reader's slot: the reader's
/// guard reports the loss at once, and a writer gets in although the
/// reader's row has not expired (every slot is free, so the writer reads
/// no table).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_whose_session_is_killed_is_lost() {
    let reader = LockClient::with_defaults(Arc::new(backend("").await), try_once());
    let writer = backend("").await;
    let n = name("killed");
    let guard = reader.try_read_lock(&n).await.unwrap().expect("free");
    let lost = guard.lost();
    let holders = slot_holders(&n, 8).await;
    let id = holders
        .iter()
        .flatten()
        .next()
        .copied()
        .expect("a slot held");
    let pool = sqlx::MySqlPool::connect(&common::mysql_url())
        .await
        .unwrap();
    let killed = Instant::now();
    sqlx::query(&format!("KILL {id}"))
        .execute(&pool)
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(2), lost)
        .await
        .expect("lost() did not fire within 2 s of the kill");
    assert!(matches!(reason, LostReason::Session(_)), "{reason:?}");
    println!("reader lost {:?} after the kill", killed.elapsed());
    let w = writer
        .acquire(&n, &try_once())
        .await
        .unwrap()
        .expect("the killed reader keeps the writer out");
    assert!(w.fencing_token() > guard.fencing_token());
    writer.release(&w).await.unwrap();
}

/// A URL's `shared_slots` out of range, or on PostgreSQL, is refused.
#[tokio::test]
async fn shared_slots_out_of_range_are_refused() {
    for bad in ["shared_slots=0", "shared_slots=65", "shared_slots=x"] {
        let refused = SqlConfig::from_url(&url(bad));
        assert!(refused.is_err(), "{bad} was accepted");
    }
    let config = SqlConfig::from_url(&url("")).unwrap();
    assert!(config.clone().with_shared_slots(0).is_err());
    assert!(config.with_shared_slots(64).is_ok());
    let pg = SqlConfig::from_url("postgres://u:p@127.0.0.1:1/db?shared_slots=8");
    let e = pg.expect_err("shared_slots on PostgreSQL");
    assert!(e.to_string().contains("shared_slots"), "{e}");
}

/// Clients whose readers take no presence slot (broken on purpose).
struct Unmarked;

#[distlock_core::async_trait]
impl Harness for Unmarked {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        let config = SqlConfig::from_url(&url(""))
            .unwrap()
            .with_presence_unmarked_broken_on_purpose();
        let backend = match SqlBackend::from_config(config).await {
            Ok(b) => b,
            Err(e) => common::server_missing("MariaDB", &url(""), &e),
        };
        Arc::new(backend)
    }
}

/// The suite's reader-writer case fails on a backend whose readers take no
/// slot: its writer, finding every slot free, takes the lock beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_catches_readers_without_a_slot() {
    let run = tokio::spawn(async { cases::readers_share_and_writers_exclude(&Unmarked).await });
    let message = match run.await {
        Ok(()) => panic!("the suite let writers in beside readers without a slot"),
        Err(e) if e.is_panic() => match e.into_panic().downcast::<String>() {
            Ok(s) => *s,
            Err(_) => "a panic without a message".into(),
        },
        Err(e) => panic!("the case was cancelled: {e}"),
    };
    println!("readers without a slot, fails as it should: {message}");
    assert!(
        message.contains("[readers_share_and_writers_exclude]"),
        "the failure should come from the reader-writer case: {message}"
    );
}
