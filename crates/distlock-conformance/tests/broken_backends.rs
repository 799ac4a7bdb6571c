//! The suite must fail backends that break the contract on purpose.
//!
//! Each broken backend wraps the (correct) memory backend and breaks one
//! promise; the matching case must panic against it, and pass against the
//! unbroken memory backend.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use distlock_conformance::{cases, Harness};
use distlock_core::{
    async_trait, AcquireOptions, Capabilities, DistributedLock, FencingToken, Lease, LockName,
    Result,
};
use distlock_memory::MemoryBackend;

/// How a wrapper breaks the contract.
#[derive(Clone, Copy, Debug)]
enum Breakage {
    /// None: the control group.
    Nothing,
    /// Every client gets its own store, so everyone acquires everything.
    LetsTwoHoldersIn,
    /// Fencing tokens count down instead of up.
    FencingGoesBackwards,
    /// Acquire runs in a detached task that lives on after cancellation.
    IgnoresCancellation,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryBackend,
    how: Breakage,
}

#[async_trait]
impl DistributedLock for Broken {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        match self.how {
            Breakage::IgnoresCancellation => {
                let (inner, name, options) = (self.inner.clone(), name.clone(), *options);
                tokio::spawn(async move { inner.acquire(&name, &options).await })
                    .await
                    .expect("detached acquire")
            }
            Breakage::FencingGoesBackwards => {
                let lease = self.inner.acquire(name, options).await?;
                Ok(lease.map(|l| {
                    Lease::new(
                        l.backend(),
                        l.name().clone(),
                        l.owner(),
                        FencingToken(1_000_000 - l.fencing_token().get()),
                        l.ttl(),
                        l.valid_until(),
                    )
                }))
            }
            _ => self.inner.acquire(name, options).await,
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.inner.extend(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.inner.release(lease).await
    }
}

struct BrokenHarness {
    store: MemoryBackend,
    how: Breakage,
}

#[async_trait]
impl Harness for BrokenHarness {
    async fn client(&self) -> Arc<dyn DistributedLock> {
        let inner = match self.how {
            Breakage::LetsTwoHoldersIn => MemoryBackend::new(),
            _ => self.store.clone(),
        };
        Arc::new(Broken {
            inner,
            how: self.how,
        })
    }
}

/// Runs `case` against a backend broken in `how`; true if the case failed.
async fn case_fails<F, Fut>(how: Breakage, case: F) -> bool
where
    F: FnOnce(Arc<BrokenHarness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let harness = Arc::new(BrokenHarness {
        store: MemoryBackend::new(),
        how,
    });
    tokio::spawn(case(harness)).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_two_holders_at_once() {
    let run =
        |h: Arc<BrokenHarness>| async move { cases::mutual_exclusion_under_contention(&*h).await };
    assert!(
        !case_fails(Breakage::Nothing, run).await,
        "control must pass"
    );
    assert!(case_fails(Breakage::LetsTwoHoldersIn, run).await);
    let run = |h: Arc<BrokenHarness>| async move { cases::try_acquire_fails_while_held(&*h).await };
    assert!(case_fails(Breakage::LetsTwoHoldersIn, run).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_fencing_going_backwards() {
    let run = |h: Arc<BrokenHarness>| async move { cases::fencing_tokens_increase(&*h).await };
    assert!(
        !case_fails(Breakage::Nothing, run).await,
        "control must pass"
    );
    assert!(case_fails(Breakage::FencingGoesBackwards, run).await);
    let run =
        |h: Arc<BrokenHarness>| async move { cases::mutual_exclusion_under_contention(&*h).await };
    assert!(case_fails(Breakage::FencingGoesBackwards, run).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_ignored_cancellation() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::cancelled_acquire_leaves_nothing_held(&*h).await
    };
    assert!(
        !case_fails(Breakage::Nothing, run).await,
        "control must pass"
    );
    assert!(case_fails(Breakage::IgnoresCancellation, run).await);
}
