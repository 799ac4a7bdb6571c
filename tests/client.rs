//! The guard client over the memory backend: background extension, batching,
//! loss detection, release on drop, handoff, and the `lock*` / `try_lock*` /
//! `with_lock*` vocabulary.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock::memory::MemoryBackend;
use distlock::{
    async_trait, AcquireOptions, Capabilities, DistributedLock, GuardState, Lease, Liveness,
    LockClient, LockError, LockName, LostReason, Mode, Result, Wait,
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
    async fn acquire_as(
        &self,
        name: &LockName,
        mode: Mode,
        o: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        self.inner.acquire_as(name, mode, o).await
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

async fn store_status(client: &LockClient, name: &LockName) -> distlock::LockStatus {
    client.backend().status(name).await.unwrap()
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
    assert!(err.is_transient(), "a timeout is worth retrying: {err}");
}

#[tokio::test]
async fn lock_with_no_wait_on_a_held_lock_is_held_not_timeout() {
    let store = MemoryBackend::new();
    let a = LockClient::new(Arc::new(store.clone()));
    let b = LockClient::new(Arc::new(store));
    let held = a.lock("busy").await.unwrap();
    let started = Instant::now();
    let err = b.lock_with("busy", &opts(30_000)).await.unwrap_err();
    assert!(
        matches!(&err, LockError::Held { name } if name == "busy"),
        "{err}"
    );
    assert!(!err.is_transient(), "`Held` is an answer, not a failure");
    assert!(!err.is_not_held());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a zero wait does not wait"
    );
    held.release().await.unwrap();
    let g = b.lock_with("busy", &opts(30_000)).await.unwrap();
    g.release().await.unwrap();
}

#[tokio::test]
async fn default_options_wait_30s_on_client_and_options() {
    assert_eq!(AcquireOptions::default().wait, distlock::DEFAULT_WAIT);
    assert_eq!(distlock::DEFAULT_WAIT, Wait::For(Duration::from_secs(30)));
    let client = LockClient::new(Arc::new(MemoryBackend::new()));
    assert_eq!(client.defaults().wait, distlock::DEFAULT_WAIT);
    assert_eq!(
        AcquireOptions::try_once(Duration::from_secs(1)).wait,
        Wait::NoWait
    );
}

#[tokio::test]
async fn lock_waits_for_the_holder_by_default() {
    let store = MemoryBackend::new();
    let a = LockClient::new(Arc::new(store.clone()));
    let b = LockClient::new(Arc::new(store));
    let held = a.lock("queue").await.unwrap();
    let waiter = tokio::spawn(async move { b.lock("queue").await.map(|g| g.fencing_token()) });
    let name = LockName::new("queue").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store_status(&a, &name).await.waiters != Some(1) {
        assert!(Instant::now() < deadline, "the second client never queued");
        tokio::task::yield_now().await;
    }
    let first = held.fencing_token();
    held.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter got the lock once it was released")
        .unwrap()
        .unwrap();
    assert!(second > first);
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

/// Two clients on one private store.
fn two_clients(ttl_ms: u64) -> (Arc<MemoryBackend>, LockClient, LockClient) {
    let store = Arc::new(MemoryBackend::new());
    let a = LockClient::with_defaults(store.clone(), opts(ttl_ms));
    let b = LockClient::with_defaults(Arc::new((*store).clone()), opts(ttl_ms));
    (store, a, b)
}

#[tokio::test]
async fn try_with_lock_skips_the_work_when_held() {
    let store = MemoryBackend::new();
    let a = LockClient::new(Arc::new(store.clone()));
    // The default wait is 30 s; `try_with_lock` must not use it.
    let b = LockClient::new(Arc::new(store));
    let held = a.lock("nightly").await.unwrap();
    let ran = AtomicBool::new(false);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        b.try_with_lock("nightly", |_| async {
            ran.store(true, Ordering::SeqCst);
            1
        }),
    )
    .await
    .expect("answers at once, without waiting")
    .unwrap();
    assert_eq!(outcome, None);
    assert!(!ran.load(Ordering::SeqCst), "the work ran without the lock");
    assert!(!held.is_lost(), "the holder is untouched");
    held.release().await.unwrap();

    let outcome = b
        .try_with_lock("nightly", |held| async move { held.fencing_token() })
        .await
        .unwrap();
    assert!(outcome.is_some_and(|t| t.get() >= 2));
    assert!(a.try_lock("nightly").await.unwrap().is_some(), "released");
}

#[derive(Debug, PartialEq)]
enum JobError {
    Lock(String),
    Failed(&'static str),
}

impl From<LockError> for JobError {
    fn from(e: LockError) -> Self {
        JobError::Lock(match e {
            LockError::Held { .. } => "held".into(),
            LockError::NotHeld { .. } => "not held".into(),
            other => other.to_string(),
        })
    }
}

#[tokio::test]
async fn with_lock_fallible_flattens_work_and_lock_errors() {
    let (store, a, b) = two_clients(30_000);
    let o = opts(30_000);

    let ok: std::result::Result<u64, JobError> = a
        .with_lock_fallible("ledger", &o, |held| async move {
            Ok(held.fencing_token().get())
        })
        .await;
    assert_eq!(ok, Ok(1));

    // The work's own error comes back as is, and the lock is released.
    let failed: std::result::Result<u64, JobError> = a
        .with_lock_fallible("ledger", &o, |_| async {
            Err(JobError::Failed("disk full"))
        })
        .await;
    assert_eq!(failed, Err(JobError::Failed("disk full")));
    let held = b.try_lock("ledger").await.unwrap().expect("released");

    // A lock error comes back through `From<LockError>`, without running the work.
    let ran = AtomicBool::new(false);
    let refused: std::result::Result<u64, JobError> = a
        .with_lock_fallible("ledger", &o, |_| async {
            ran.store(true, Ordering::SeqCst);
            Ok(0)
        })
        .await;
    assert_eq!(refused, Err(JobError::Lock("held".into())));
    assert!(!ran.load(Ordering::SeqCst));
    held.release().await.unwrap();

    // Work that succeeded while the lock was lost reports the loss.
    let lost: std::result::Result<u64, JobError> = a
        .with_lock_fallible("ledger", &o, |held| async move {
            store.release(&held.lease()).await.unwrap();
            Ok(7)
        })
        .await;
    assert_eq!(lost, Err(JobError::Lock("not held".into())));
}

/// Sets its flag when dropped: tells whether a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn with_lock_until_lost_drops_the_work_when_the_lock_is_lost() {
    let (store, a, b) = two_clients(300);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let started = Instant::now();
    let err = a
        .with_lock_until_lost("migration", &opts(300), |held| async move {
            let _flag = DropFlag(flag);
            // Someone takes the lock over behind the holder's back; the
            // holder's next extension is refused.
            store.release(&held.lease()).await.unwrap();
            let rival = b.lock("migration").await.unwrap();
            std::future::pending::<()>().await;
            drop(rival);
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotHeld { .. }), "{err}");
    assert!(dropped.load(Ordering::SeqCst), "the work was dropped");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped at the loss, not at some timeout"
    );
}

#[tokio::test]
async fn with_lock_until_lost_returns_the_work_while_held() {
    let client = LockClient::new(Arc::new(MemoryBackend::new()));
    let out = client
        .with_lock_until_lost("short", &opts(30_000), |held| async move {
            held.fencing_token().get()
        })
        .await
        .unwrap();
    assert_eq!(out, 1);
    assert!(
        client.try_lock("short").await.unwrap().is_some(),
        "released"
    );
}

#[tokio::test]
async fn guard_extend_sets_a_new_ttl_now() {
    let (store, a, _) = two_clients(2_000);
    let name = LockName::new("long-job").unwrap();
    let guard = a.lock(&name).await.unwrap();
    let before = guard.lease().valid_until();
    guard.extend(Duration::from_secs(120)).await.unwrap();
    let lease = guard.lease();
    assert_eq!(lease.ttl(), Duration::from_secs(120));
    assert!(lease.valid_until() > before + Duration::from_secs(100));
    let status = store.status(&name).await.unwrap();
    assert!(
        status
            .expires_in
            .is_some_and(|d| d > Duration::from_secs(100)),
        "the backend holds it for the new ttl: {status:?}"
    );
    assert!(!guard.is_lost());

    // Extending a lease someone took away marks the guard lost.
    store.release(&guard.lease()).await.unwrap();
    let err = guard.extend(Duration::from_secs(120)).await.unwrap_err();
    assert!(err.is_not_held(), "{err}");
    assert_eq!(guard.state(), GuardState::Lost(LostReason::Rejected));
}

#[test]
fn a_lease_whose_guard_cannot_be_built_is_released() {
    let store = MemoryBackend::new();
    let client = LockClient::new(Arc::new(store.clone()));
    let o = opts(30_000);
    // Outside a tokio runtime the guard's background extension cannot run,
    // so wrapping the freshly taken lease in a guard fails.
    let err = futures::executor::block_on(client.try_lock_with("orphan", &o)).unwrap_err();
    assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");

    // The lease was given back at once: another client takes the lock now,
    // long before the 30 s ttl.
    let name = LockName::new("orphan").unwrap();
    let other: Arc<dyn DistributedLock> = Arc::new(store.clone());
    let lease = futures::executor::block_on(other.acquire(&name, &o))
        .unwrap()
        .expect("the failed guard's lease was released");
    // (Control: a lease nobody released does keep the lock.)
    assert!(futures::executor::block_on(other.acquire(&name, &o))
        .unwrap()
        .is_none());
    futures::executor::block_on(other.release(&lease)).unwrap();
}
