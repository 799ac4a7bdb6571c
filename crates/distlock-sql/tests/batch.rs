//! Batched extension on every database: one statement per batch, one
//! answer per lease, and no lease the database no longer holds for its
//! owner comes back — released, taken over, or merely expired.
// Some helpers serve only the tests of some database features.
#![allow(dead_code)]

mod common;

use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, Lease, LockName, Mode};
use distlock_sql::{SqlBackend, MAX_BATCH};

use common::connect;

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(300);

fn name(test: &str, what: &str) -> LockName {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!("batch/{test}/{}/{nanos}/{what}", std::process::id());
    LockName::new(unique).unwrap()
}

async fn take(backend: &SqlBackend, name: LockName, ttl: Duration) -> Lease {
    backend
        .acquire(&name, &AcquireOptions::try_once(ttl))
        .await
        .unwrap_or_else(|e| panic!("acquire {name}: {e}"))
        .unwrap_or_else(|| panic!("{name} was held"))
}

/// Waits until the database itself no longer counts `name` as held (its
/// ttl passed on the database clock).
async fn until_expired(backend: &SqlBackend, name: &LockName) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.status(name).await.unwrap().held {
        assert!(Instant::now() < deadline, "{name} never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Held leases are extended; released, taken-over and expired ones answer
/// `NotHeld`, each in its place; the expired one stays free.
async fn batch_answers_each_lease(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    assert!(a.capabilities().batch_extend, "{what} claims batch_extend");
    let held: Vec<Lease> =
        futures::future::join_all((0..3).map(|i| take(&a, name(what, &format!("held-{i}")), LONG)))
            .await;
    let released = take(&a, name(what, "released"), LONG).await;
    a.release(&released).await.unwrap();
    let expired = take(&a, name(what, "expired"), SHORT).await;
    let overtaken = take(&a, name(what, "overtaken"), SHORT).await;
    until_expired(&b, expired.name()).await;
    until_expired(&b, overtaken.name()).await;
    let successor = take(&b, overtaken.name().clone(), LONG).await;

    let batch = vec![
        held[0].clone(),
        expired.clone(),
        held[1].clone(),
        overtaken.clone(),
        released.clone(),
        held[0].clone(), // the same lease twice
        held[2].clone(),
    ];
    let answers = a.extend_many(&batch).await;
    assert_eq!(answers.len(), batch.len());
    for (i, (lease, answer)) in batch.iter().zip(&answers).enumerate() {
        let should_hold = held.iter().any(|h| h.name() == lease.name());
        match answer {
            Ok(got) => {
                assert!(should_hold, "{what}: answer {i} extended {}", lease.name());
                assert_eq!(got.name(), lease.name(), "{what}: answer {i} out of order");
                assert!(
                    got.valid_until() > lease.valid_until(),
                    "{what}: answer {i}"
                );
            }
            Err(e) => {
                assert!(!should_hold, "{what}: answer {i} for a held lease: {e}");
                assert!(e.is_not_held(), "{what}: answer {i} is not NotHeld: {e:?}");
            }
        }
    }

    // The database agrees: the held ones now run for their ttl again, the
    // expired one was not brought back, the successor still holds.
    for lease in &held {
        let status = b.status(lease.name()).await.unwrap();
        assert!(status.held, "{what}: {} lost", lease.name());
    }
    assert!(
        !b.status(expired.name()).await.unwrap().held,
        "{what}: revived"
    );
    assert!(
        a.extend(&expired, LONG).await.unwrap_err().is_not_held(),
        "{what}: a single extend revived the expired lease"
    );
    b.extend(&successor, LONG)
        .await
        .expect("the successor still holds");
    b.release(&successor).await.unwrap();
    for answer in answers.into_iter().flatten() {
        let _ = a.release(&answer).await;
    }
}

/// A batch of every mode: exclusive leases, readers and permits (some on
/// one name), held, released and expired — one answer each, in order; the
/// expired reader stays expired and its name goes to a writer.
async fn batch_of_every_mode_answers_each_lease(what: &str, url: &str) {
    let (a, b) = (connect(what, url).await, connect(what, url).await);
    let o = |ttl| AcquireOptions::try_once(ttl);
    let two = Mode::Permit { limit: 2 };
    let in_mode = |name: LockName, mode: Mode, ttl: Duration| {
        let a = &a;
        async move {
            a.acquire_as(&name, mode, &o(ttl))
                .await
                .unwrap_or_else(|e| panic!("{mode} acquire of {name}: {e}"))
                .unwrap_or_else(|| panic!("{name} was held"))
        }
    };
    let shared = name(what, "shared");
    let permits = name(what, "permits");
    let held = [
        in_mode(name(what, "mutex"), Mode::Exclusive, LONG).await,
        in_mode(shared.clone(), Mode::Shared, LONG).await,
        in_mode(shared.clone(), Mode::Shared, LONG).await,
        in_mode(permits.clone(), two, LONG).await,
    ];
    let released = in_mode(permits.clone(), two, LONG).await;
    a.release(&released).await.unwrap();
    let expired = in_mode(name(what, "expired-reader"), Mode::Shared, SHORT).await;
    until_expired(&b, expired.name()).await;

    let batch = vec![
        held[1].clone(),
        expired.clone(),
        held[0].clone(),
        released.clone(),
        held[3].clone(),
        held[2].clone(),
    ];
    let answers = a.extend_many(&batch).await;
    let expect = [true, false, true, false, true, true];
    for (i, (lease, answer)) in batch.iter().zip(&answers).enumerate() {
        match answer {
            Ok(got) => {
                assert!(expect[i], "{what}: answer {i} extended {}", lease.name());
                assert_eq!(got.name(), lease.name(), "{what}: answer {i} out of order");
                assert_eq!(got.mode(), lease.mode(), "{what}: answer {i}");
                assert!(
                    got.valid_until() > lease.valid_until(),
                    "{what}: answer {i}"
                );
            }
            Err(e) => {
                assert!(!expect[i], "{what}: answer {i} for a held lease: {e}");
                assert!(e.is_not_held(), "{what}: answer {i} is not NotHeld: {e:?}");
            }
        }
    }
    let writer = b
        .acquire(expired.name(), &o(LONG))
        .await
        .unwrap()
        .expect("the expired reader's name is free for a writer");
    assert!(
        a.extend(&expired, LONG).await.unwrap_err().is_not_held(),
        "{what}: a single extend revived the expired reader"
    );
    b.release(&writer).await.unwrap();
    for lease in answers.into_iter().flatten() {
        a.release(&lease).await.unwrap();
    }
}

/// More leases than one statement carries: the core splits them, every
/// one is extended.
async fn batches_beyond_the_limit_are_split(what: &str, url: &str) {
    let backend = connect(what, url).await;
    let count = MAX_BATCH * 2 + 3;
    let leases: Vec<Lease> = futures::future::join_all(
        (0..count).map(|i| take(&backend, name(what, &format!("many-{i}")), LONG)),
    )
    .await;
    let answers = backend.extend_many(&leases).await;
    assert_eq!(answers.len(), count);
    for (lease, answer) in leases.iter().zip(answers) {
        let got = answer.unwrap_or_else(|e| panic!("{what}: {} not extended: {e}", lease.name()));
        assert_eq!(got.name(), lease.name());
        backend.release(&got).await.unwrap();
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::common::SqliteFile;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        let file = SqliteFile::new("batch");
        super::batch_answers_each_lease("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let file = SqliteFile::new("batch-modes");
        super::batch_of_every_mode_answers_each_lease("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_beyond_the_limit_are_split() {
        let file = SqliteFile::new("batch-many");
        super::batches_beyond_the_limit_are_split("sqlite", &file.url).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        super::batch_answers_each_lease("postgres", &super::common::postgres_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let url = super::common::postgres_url();
        super::batch_of_every_mode_answers_each_lease("postgres", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_beyond_the_limit_are_split() {
        super::batches_beyond_the_limit_are_split("postgres", &super::common::postgres_url()).await;
    }
}

#[cfg(feature = "mysql")]
mod mariadb {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_answers_each_lease() {
        super::batch_answers_each_lease("mariadb", &super::common::mysql_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_of_every_mode_answers_each_lease() {
        let url = super::common::mysql_url();
        super::batch_of_every_mode_answers_each_lease("mariadb", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_beyond_the_limit_are_split() {
        super::batches_beyond_the_limit_are_split("mariadb", &super::common::mysql_url()).await;
    }
}
