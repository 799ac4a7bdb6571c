//! The metrics every acquire, extension and loss emits, seen by a recorder
//! installed for this test only, over a contended workload on the memory
//! backend driven through `LockClient`.

use std::sync::Arc;
use std::time::Duration;

use distlock::memory::MemoryBackend;
use distlock::{AcquireOptions, DistributedLock, LockClient, LockError, Wait};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

const CLIENTS: usize = 4;
const ROUNDS: usize = 25;
const REFUSED: usize = 3;

/// One recorded metric: its kind, name, labels and value.
struct Metric {
    kind: MetricKind,
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
}

impl Metric {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn metrics(snapshotter: &Snapshotter) -> Vec<Metric> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| Metric {
            kind: key.kind(),
            name: key.key().name().to_string(),
            labels: key
                .key()
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect(),
            value,
        })
        .collect()
}

/// The sum of counter `name` over the series whose labels include `with`.
fn counter(all: &[Metric], name: &str, with: &[(&str, &str)]) -> u64 {
    all.iter()
        .filter(|m| m.name == name && with.iter().all(|(k, v)| m.label(k) == Some(*v)))
        .map(|m| match &m.value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// Every sample of histogram `name`.
fn histogram(all: &[Metric], name: &str) -> Vec<f64> {
    all.iter()
        .filter(|m| m.name == name)
        .flat_map(|m| match &m.value {
            DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect::<Vec<_>>(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .collect()
}

/// `CLIENTS` clients take one name `ROUNDS` times each, waiting for each
/// other; returns the clients.
async fn contend(store: &MemoryBackend) -> Vec<LockClient> {
    let options =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(20)));
    let clients: Vec<LockClient> = (0..CLIENTS)
        .map(|_| LockClient::with_defaults(Arc::new(store.clone()), options))
        .collect();
    let tasks = clients.iter().cloned().map(|client| {
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                client
                    .with_lock("counter", |_| async {
                        // Hold it across a scheduling point so others queue.
                        tokio::task::yield_now().await;
                    })
                    .await
                    .unwrap();
            }
        })
    });
    for done in futures::future::join_all(tasks).await {
        done.unwrap();
    }
    clients
}

#[tokio::test]
async fn acquires_waits_extensions_and_losses_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let store = MemoryBackend::new();
    let clients = contend(&store).await;

    // Not acquired: a zero wait on a held lock.
    let holder = clients[0].lock("counter").await.unwrap();
    for _ in 0..REFUSED {
        let err = clients[1]
            .lock_with(
                "counter",
                &AcquireOptions::try_once(Duration::from_secs(30)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
    }

    // An extension, then a loss: the lease is taken away and the next
    // extension is refused.
    holder.extend(Duration::from_secs(60)).await.unwrap();
    store.release(&holder.lease()).await.unwrap();
    assert!(holder.extend(Duration::from_secs(60)).await.is_err());
    assert!(holder.is_lost());
    drop(holder);

    let all = metrics(&snapshotter);
    let taken = (CLIENTS * ROUNDS + 1) as u64;

    for m in all.iter().filter(|m| m.name.starts_with("distlock_")) {
        assert_eq!(m.label("backend"), Some("memory"), "{}", m.name);
        if m.name != "distlock_cleanups_total" {
            assert_eq!(m.label("primitive"), Some("mutex"), "{}", m.name);
        }
    }
    let kind_of = |name: &str| all.iter().find(|m| m.name == name).map(|m| m.kind);
    assert_eq!(
        kind_of("distlock_acquired_total"),
        Some(MetricKind::Counter)
    );
    assert_eq!(
        kind_of("distlock_acquire_seconds"),
        Some(MetricKind::Histogram)
    );

    assert_eq!(counter(&all, "distlock_acquired_total", &[]), taken);
    assert_eq!(
        counter(&all, "distlock_not_acquired_total", &[]),
        REFUSED as u64
    );
    assert_eq!(counter(&all, "distlock_acquire_errors_total", &[]), 0);

    let acquire = histogram(&all, "distlock_acquire_seconds");
    assert_eq!(acquire.len() as u64, taken + REFUSED as u64, "one per call");
    assert!(
        acquire.iter().all(|s| (0.0..20.0).contains(s)),
        "{acquire:?}"
    );

    let waits = histogram(&all, "distlock_wait_seconds");
    assert_eq!(waits.len() as u64, taken, "one per acquisition");
    assert!(waits.iter().all(|s| (0.0..20.0).contains(s)), "{waits:?}");
    assert!(
        waits.iter().any(|s| *s > 0.0),
        "under contention some acquisitions waited"
    );
    let longest_call = acquire.iter().cloned().fold(0.0, f64::max);
    assert!(waits.iter().all(|w| *w <= longest_call));

    assert!(
        counter(&all, "distlock_extensions_total", &[("outcome", "ok")]) >= 1,
        "the explicit extension"
    );
    assert_eq!(
        counter(
            &all,
            "distlock_extensions_total",
            &[("outcome", "not_held")]
        ),
        1
    );
    assert_eq!(
        counter(&all, "distlock_lost_total", &[("reason", "rejected")]),
        1
    );
    assert_eq!(counter(&all, "distlock_lost_total", &[]), 1);
    assert_eq!(
        counter(&all, "distlock_releases_total", &[("outcome", "ok")]),
        (CLIENTS * ROUNDS) as u64 + 1,
        "every with_lock released, and the lease taken away"
    );
}

/// Readers, permits and upgrades are labelled by their primitive, and an
/// upgrade is counted by its outcome.
#[tokio::test]
async fn readers_permits_and_upgrades_are_labelled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let store = MemoryBackend::new();
    let (a, b) = (
        LockClient::new(Arc::new(store.clone())),
        LockClient::new(Arc::new(store.clone())),
    );
    let pool = a.semaphore("pool", 2).unwrap();
    let permits = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    assert!(pool.try_acquire().await.unwrap().is_none());
    for permit in permits {
        permit.release().await.unwrap();
    }
    let reader = a.read_lock("doc").await.unwrap();
    let other = b.read_lock("doc").await.unwrap();
    let refused = AcquireOptions::try_once(Duration::from_secs(30));
    assert!(reader.upgrade_with(&refused).await.is_err());
    other.release().await.unwrap();
    reader.upgrade().await.unwrap();
    reader.release().await.unwrap();

    let all = metrics(&snapshotter);
    let acquired =
        |primitive| counter(&all, "distlock_acquired_total", &[("primitive", primitive)]);
    assert_eq!(acquired("semaphore"), 2);
    assert_eq!(acquired("shared"), 2);
    assert_eq!(
        counter(
            &all,
            "distlock_not_acquired_total",
            &[("primitive", "semaphore")]
        ),
        1
    );
    assert_eq!(
        counter(&all, "distlock_upgrades_total", &[("outcome", "timeout")]),
        1
    );
    assert_eq!(
        counter(&all, "distlock_upgrades_total", &[("outcome", "upgraded")]),
        1
    );
    assert_eq!(
        counter(
            &all,
            "distlock_releases_total",
            &[("primitive", "mutex"), ("outcome", "ok")]
        ),
        1,
        "the upgraded lease is released as the writer"
    );
}

/// Elections are acquires of the `leader` primitive; resignations,
/// multi-name acquires and the changes observers report have counters of
/// their own.
#[tokio::test]
async fn elections_multi_locks_and_observers_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let store = MemoryBackend::new();
    let (a, b) = (
        LockClient::new(Arc::new(store.clone())),
        LockClient::new(Arc::new(store.clone())),
    );
    let mut observer = b.observe("election").unwrap();
    assert_eq!(observer.changed().await.unwrap(), None);
    let leadership = a.elect("election", "node-a").await.unwrap();
    let seen = observer.changed().await.unwrap().unwrap();
    assert_eq!(seen.term, leadership.term());
    assert!(b.try_elect("election", "node-b").await.unwrap().is_none());
    leadership.resign().await.unwrap();
    assert_eq!(observer.changed().await.unwrap(), None);
    let both = a.lock_many(["x", "y"]).await.unwrap();
    assert!(b.try_lock_many(["y", "z"]).await.unwrap().is_none());
    both.release().await.unwrap();

    let all = metrics(&snapshotter);
    let by = |name, with: &[(&str, &str)]| counter(&all, name, with);
    assert_eq!(by("distlock_acquired_total", &[("primitive", "leader")]), 1);
    assert_eq!(
        by("distlock_not_acquired_total", &[("primitive", "leader")]),
        1
    );
    assert_eq!(by("distlock_resignations_total", &[("outcome", "ok")]), 1);
    assert_eq!(
        by("distlock_leader_changes_total", &[]),
        3,
        "vacant, node-a, vacant"
    );
    assert_eq!(by("distlock_observe_errors_total", &[]), 0);
    assert_eq!(
        by("distlock_multi_acquires_total", &[("outcome", "acquired")]),
        1
    );
    assert_eq!(
        by(
            "distlock_multi_acquires_total",
            &[("outcome", "not_acquired")]
        ),
        1
    );
    assert_eq!(by("distlock_acquired_total", &[("primitive", "mutex")]), 2);
}
