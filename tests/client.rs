//! The guard client over the memory backend: background extension, batching,
//! loss detection, release on drop, handoff and `with_lock`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock::memory::MemoryBackend;
use distlock::{
    async_trait, AcquireOptions, Capabilities, DistributedLock, GuardState, Lease, Liveness,
    LockClient, LockError, LockName, LostReason, Result, Wait,
};
use tokio::sync::watch;

/// Wraps the memory backend to count batches, stall extensions on demand and
/// report a controllable session.
#[derive(Debug)]
struct Instrumented {
    inner: MemoryBackend,
    batches: AtomicUsize,
    largest_batch: AtomicUsize,
    stall_extends: AtomicBool,
    session: Option<watch::Sender<Liveness>>,
}

impl Instrumented {
    fn new(inner: MemoryBackend) -> Arc<Self> {
        Arc::new(Instrumented {
            inner,
            batches: AtomicUsize::new(0),
            largest_batch: AtomicUsize::new(0),
            stall_extends: AtomicBool::new(false),
            session: None,
        })
    }
}

#[async_trait]
impl DistributedLock for Instrumented {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn acquire(&self, name: &LockName, o: &AcquireOptions) -> Result<Option<Lease>> {
        self.inner.acquire(name, o).await
    }
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        if self.stall_extends.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.extend(lease, ttl).await
    }
    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.largest_batch.fetch_max(leases.len(), Ordering::SeqCst);
        let mut out = Vec::new();
        for l in leases {
            out.push(self.extend(l, l.ttl()).await);
        }
        out
    }
    async fn release(&self, lease: &Lease) -> Result<()> {
        self.inner.release(lease).await
    }
    fn liveness(&self, _lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        self.session.as_ref().map(|s| s.subscribe())
    }
}

fn opts(ttl_ms: u64) -> AcquireOptions {
    AcquireOptions::try_once(Duration::from_millis(ttl_ms))
}

#[tokio::test]
async fn guard_outlives_its_ttl_while_held() {
    let store = MemoryBackend::new();
    let client = LockClient::with_defaults(Arc::new(store.clone()), opts(300));
    let guard = client.lock("job").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!guard.is_lost(), "{:?}", guard.state());
    let other = LockClient::new(Arc::new(store));
    assert!(other.try_lock("job").await.unwrap().is_none());
    guard.release().await.unwrap();
    assert!(other.try_lock("job").await.unwrap().is_some());
}

#[tokio::test]
async fn extensions_of_many_guards_are_batched() {
    let backend = Instrumented::new(MemoryBackend::new());
    let client = LockClient::with_defaults(backend.clone(), opts(600));
    let mut guards = Vec::new();
    for i in 0..10 {
        guards.push(client.lock(format!("batch/{i}")).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(guards.iter().all(|g| !g.is_lost()));
    let batches = backend.batches.load(Ordering::SeqCst);
    assert!(batches >= 1, "no extension happened");
    assert!(
        backend.largest_batch.load(Ordering::SeqCst) > 1,
        "guards due together were extended one call each"
    );
    for g in guards {
        g.release().await.unwrap();
    }
}

#[tokio::test]
async fn lost_fires_when_extensions_stop_getting_through() {
    let backend = Instrumented::new(MemoryBackend::new());
    let client = LockClient::with_defaults(backend.clone(), opts(600));
    let guard = client.lock("stalled").await.unwrap();
    let lost = guard.lost();
    backend.stall_extends.store(true, Ordering::SeqCst);
    let valid_until = guard.lease().valid_until();
    let reason = tokio::time::timeout(Duration::from_secs(5), lost)
        .await
        .expect("lost() fired");
    let at = Instant::now();
    assert_eq!(reason, LostReason::Expired);
    assert!(
        at <= guard.lease().valid_until() + Duration::from_millis(200),
        "lost() fired {:?} after validity ended",
        at - valid_until
    );
    assert!(guard.is_lost());
}

#[tokio::test]
async fn session_states_reach_the_guard() {
    let (tx, _) = watch::channel(Liveness::Live);
    let backend = Arc::new(Instrumented {
        session: Some(tx.clone()),
        ..Arc::into_inner(Instrumented::new(MemoryBackend::new())).unwrap()
    });
    let client = LockClient::with_defaults(backend, opts(30_000));
    let guard = client.lock("session").await.unwrap();
    let mut state = guard.handle();
    tx.send_replace(Liveness::Suspended);
    wait_for_state(&mut state, GuardState::Suspended).await;
    tx.send_replace(Liveness::Live);
    wait_for_state(&mut state, GuardState::Held).await;
    tx.send_replace(Liveness::Lost("expired".into()));
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .unwrap();
    assert_eq!(reason, LostReason::Session("expired".into()));
}

async fn wait_for_state(handle: &mut distlock::GuardHandle, want: GuardState) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.state() != want {
        assert!(
            Instant::now() < deadline,
            "state stayed {:?}",
            handle.state()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn dropping_a_guard_releases_it_in_the_background() {
    let store = MemoryBackend::new();
    let a = LockClient::with_defaults(Arc::new(store.clone()), opts(30_000));
    let b = LockClient::with_defaults(Arc::new(store), opts(30_000));
    drop(a.lock("dropped").await.unwrap());
    let o = opts(30_000).with_wait(Wait::For(Duration::from_secs(5)));
    let g = b
        .lock_with("dropped", &o)
        .await
        .expect("freed well before its ttl");
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_detached_lease_is_adopted_and_released_elsewhere() {
    let store = MemoryBackend::new();
    let scheduler = LockClient::with_defaults(Arc::new(store.clone()), opts(2_000));
    let handler = LockClient::with_defaults(Arc::new(store.clone()), opts(2_000));
    let guard = scheduler.lock("task/42").await.unwrap();
    let token = guard.fencing_token();
    let exported = guard.detach().export();
    let adopted = handler.adopt(Lease::import(&exported).unwrap()).unwrap();
    assert_eq!(adopted.fencing_token(), token);
    // The handler keeps it alive past the ttl it was taken with.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!adopted.is_lost());
    adopted.release().await.unwrap();
    assert!(scheduler.try_lock("task/42").await.unwrap().is_some());
}

#[tokio::test]
async fn with_lock_returns_the_work_and_releases() {
    let client = LockClient::new(Arc::new(MemoryBackend::new()));
    let token = client
        .with_lock("w", |held| async move { held.fencing_token() })
        .await
        .unwrap();
    assert!(token.get() >= 1);
    assert!(client.try_lock("w").await.unwrap().is_some());
}

#[tokio::test]
async fn with_lock_reports_a_loss_during_the_work() {
    let store = Arc::new(MemoryBackend::new());
    let client = LockClient::with_defaults(store.clone(), opts(600));
    let err = client
        .with_lock("w", |held| async move {
            // The lease is taken away while the work runs.
            store.release(&held.lease()).await.unwrap();
            tokio::time::timeout(Duration::from_secs(5), held.lost())
                .await
                .expect("loss noticed");
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotHeld { .. }), "{err}");
}

#[tokio::test]
async fn lock_times_out_with_a_timeout_error() {
    let store = MemoryBackend::new();
    let a = LockClient::new(Arc::new(store.clone()));
    let b = LockClient::new(Arc::new(store));
    let _held = a.lock("busy").await.unwrap();
    let o = opts(30_000).with_wait(Wait::For(Duration::from_millis(100)));
    let err = b.lock_with("busy", &o).await.unwrap_err();
    assert!(matches!(err, LockError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn bad_names_and_options_are_errors_not_panics() {
    let client = LockClient::new(Arc::new(MemoryBackend::new()));
    assert!(matches!(
        client.lock("").await,
        Err(LockError::InvalidName { .. })
    ));
    assert!(matches!(
        client.lock("a\0b").await,
        Err(LockError::InvalidName { .. })
    ));
    let long = "x".repeat(LockName::MAX_LEN + 1);
    assert!(matches!(
        client.lock(long).await,
        Err(LockError::InvalidName { .. })
    ));
    assert!(matches!(
        client.lock_with("ok", &opts(0)).await,
        Err(LockError::InvalidOptions { .. })
    ));
    assert!(Lease::import("not a lease").is_err());
}

#[test]
fn adopting_outside_a_runtime_is_an_error() {
    let client = LockClient::new(Arc::new(MemoryBackend::new()));
    let lease = Lease::new(
        "memory",
        LockName::new("x").unwrap(),
        distlock::OwnerToken::random(),
        distlock::FencingToken(1),
        Duration::from_secs(1),
        Instant::now() + Duration::from_secs(1),
    );
    assert!(matches!(
        client.adopt(lease),
        Err(LockError::InvalidConfig { .. })
    ));
}
