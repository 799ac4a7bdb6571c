//! Backends that break the contract on purpose, and the harness that runs
//! a case against them.
//!
//! Each broken backend is a `LockBackend` wrapping the (correct) memory
//! backend, delegating to its `LockBackend` methods, and breaks exactly one
//! promise; the matching case must fail against it — with a message that
//! names the case and the broken claim — and pass against the unbroken
//! control. A promise kept above the backend (the order of a multi-name
//! lock) is broken by a `DistributedLock` wrapper instead
//! ([`caller_order`]).

pub mod caller_order;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_conformance::Harness;
use distlock_core::sync::lock;
use distlock_core::waiting::{poll_acquire, Attempt};
use distlock_core::{
    async_trait, AcquireOptions, AcquireRequest, Capabilities, ChangeNotices, DistributedLock,
    FencingToken, Grant, Lease, LockBackend, LockError, LockName, LockStatus, Mode, OwnerToken,
    Renewal, Result, Wait,
};
use distlock_memory::MemoryBackend;

/// How a wrapper breaks the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// None: the control group.
    Nothing,
    /// Every client gets its own store, so everyone acquires everything.
    LetsTwoHoldersIn,
    /// Fencing tokens count down instead of up.
    FencingGoesBackwards,
    /// The whole acquire (wait included) runs in a detached task that lives
    /// on after cancellation and takes the lock later.
    IgnoresCancellation,
    /// Claims `fifo`, but the newest waiter goes first.
    ServesNewestWaiterFirst,
    /// Polls with attempts that each run as their own task: an acquire
    /// cancelled mid-attempt drops only the task's handle, and the attempt
    /// takes the lock for nobody.
    LeaksCancelledAttempts,
    /// Renews a lease that expired while nobody took the lock since, by
    /// taking the lock again for the same owner.
    RevivesExpiredLeases,
    /// Tries once, whatever the wait.
    IgnoresWait,
    /// A semaphore of n permits lets n + 1 holders in.
    AdmitsOneMorePermit,
    /// Readers are kept apart from writers: a reader gets in beside a writer.
    LetsReaderBesideWriter,
    /// Claims `at_least`, but a release before the minimum frees at once.
    IgnoresAtLeast,
    /// Claims `watch`, but its change notices never come.
    SilentWatch,
    /// Dates each grant from the start of its wait, so a lock granted after
    /// a wait longer than the ttl comes already expired.
    DatesGrantsFromTheWait,
}

/// State the clients of one broken service share.
#[derive(Debug, Default)]
struct Shared {
    /// Waiters per name, oldest first (for `ServesNewestWaiterFirst`).
    waiters: Mutex<HashMap<LockName, Vec<u64>>>,
    next_ticket: std::sync::atomic::AtomicU64,
    /// Owners that released (so only expired leases are revived).
    released: Mutex<HashSet<OwnerToken>>,
    /// Where `LetsReaderBesideWriter` keeps its readers.
    readers: MemoryBackend,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryBackend,
    how: Breakage,
    shared: Arc<Shared>,
}

/// The same request, trying once.
fn once(request: &AcquireRequest) -> AcquireRequest {
    let mut once = request.clone();
    once.options = once.options.with_wait(Wait::NoWait);
    once
}

/// How long the leaky backend's attempt is "on the wire", each way.
const HALF_ROUND_TRIP: Duration = Duration::from_millis(1);

/// A place among the waiters of `ServesNewestWaiterFirst`; leaves on drop.
struct Ticket {
    shared: Arc<Shared>,
    name: LockName,
    id: u64,
}

impl Ticket {
    fn take(shared: &Arc<Shared>, name: &LockName) -> Ticket {
        let id = shared
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&shared.waiters)
            .entry(name.clone())
            .or_default()
            .push(id);
        Ticket {
            shared: shared.clone(),
            name: name.clone(),
            id,
        }
    }

    fn is_newest(&self) -> bool {
        lock(&self.shared.waiters)
            .get(&self.name)
            .and_then(|w| w.last())
            == Some(&self.id)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(w) = lock(&self.shared.waiters).get_mut(&self.name) {
            w.retain(|id| *id != self.id);
        }
    }
}

impl Broken {
    /// The store a lease or request of `mode` lives in.
    fn store_for(&self, mode: Mode) -> &MemoryBackend {
        match (self.how, mode) {
            (Breakage::LetsReaderBesideWriter, Mode::Shared) => &self.shared.readers,
            _ => &self.inner,
        }
    }

    /// Newest waiter first: each waiter polls, but only the newest may try.
    async fn grant_newest_first(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        if let Some(grant) = self.inner.grant(&once(request)).await? {
            return Ok(Some(grant));
        }
        let deadline = request.options.wait.deadline(Instant::now());
        let ticket = Ticket::take(&self.shared, &request.name);
        loop {
            if ticket.is_newest() {
                if let Some(grant) = self.inner.grant(&once(request)).await? {
                    return Ok(Some(grant));
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Polls with attempts that run as detached tasks.
    async fn grant_leaky(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        poll_acquire(&request.options, || {
            let (inner, once) = (self.inner.clone(), once(request));
            // The bug: dropping this future drops only the handle.
            let attempt = tokio::spawn(async move {
                tokio::time::sleep(HALF_ROUND_TRIP).await;
                let got = inner.grant(&once).await;
                tokio::time::sleep(HALF_ROUND_TRIP).await;
                got
            });
            async move {
                match attempt.await {
                    Ok(Ok(Some(grant))) => Ok(Attempt::Acquired(grant)),
                    Ok(Ok(None)) => Ok(Attempt::Held { remaining: None }),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(LockError::unavailable("memory", e.to_string())),
                }
            }
        })
        .await
    }

    /// Renews; an expired lease nobody took since is taken again.
    async fn renew_reviving(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        let refused = match self.inner.renew(lease, ttl).await {
            Err(e) if e.is_not_held() => e,
            other => return other,
        };
        let status = self.inner.inspect(lease.name()).await?;
        let untouched = !status.held && status.fencing_token == Some(lease.fencing_token());
        if !untouched || lock(&self.shared.released).contains(&lease.owner()) {
            return Err(refused);
        }
        let mut again = AcquireRequest::new(lease.name().clone(), AcquireOptions::try_once(ttl));
        again.owner = lease.owner();
        match self.inner.grant(&again).await? {
            Some(grant) => Ok(Renewal::sent_at(grant.sent)),
            None => Err(refused),
        }
    }
}

#[async_trait]
impl LockBackend for Broken {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn claims(&self) -> Capabilities {
        let mut claims = self.inner.claims();
        if self.how == Breakage::LeaksCancelledAttempts {
            // It polls: no queue, no notification (the one breakage stays
            // the only one).
            claims.fifo = false;
            claims.wait_notification = false;
        }
        claims
    }

    async fn grant(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        match self.how {
            Breakage::IgnoresCancellation => {
                let (inner, request) = (self.inner.clone(), request.clone());
                tokio::spawn(async move { inner.grant(&request).await })
                    .await
                    .map_err(|e| LockError::unavailable("memory", e.to_string()))?
            }
            Breakage::FencingGoesBackwards => {
                let grant = self.inner.grant(request).await?;
                Ok(grant.map(|g| Grant {
                    fencing: FencingToken(1_000_000 - g.fencing.get()),
                    ..g
                }))
            }
            Breakage::ServesNewestWaiterFirst => self.grant_newest_first(request).await,
            Breakage::LeaksCancelledAttempts => self.grant_leaky(request).await,
            Breakage::IgnoresWait => self.inner.grant(&once(request)).await,
            Breakage::DatesGrantsFromTheWait => {
                let began = std::time::Instant::now();
                let grant = self.inner.grant(request).await?;
                Ok(grant.map(|g| Grant { sent: began, ..g }))
            }
            Breakage::AdmitsOneMorePermit => match request.mode {
                Mode::Permit { limit } => {
                    let more = request.clone().with_mode(Mode::Permit { limit: limit + 1 });
                    self.inner.grant(&more).await
                }
                _ => self.inner.grant(request).await,
            },
            _ => self.store_for(request.mode).grant(request).await,
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        match self.how {
            Breakage::RevivesExpiredLeases => self.renew_reviving(lease, ttl).await,
            _ => self.store_for(lease.mode()).renew(lease, ttl).await,
        }
    }

    async fn renew_batch(&self, batch: &[(Lease, Duration)]) -> Vec<Result<Renewal>> {
        match self.how {
            Breakage::RevivesExpiredLeases => {
                let renewals = batch.iter().map(|(l, ttl)| self.renew_reviving(l, *ttl));
                futures::future::join_all(renewals).await
            }
            Breakage::LetsReaderBesideWriter => {
                let renewals = batch
                    .iter()
                    .map(|(l, ttl)| self.store_for(l.mode()).renew(l, *ttl));
                futures::future::join_all(renewals).await
            }
            _ => self.inner.renew_batch(batch).await,
        }
    }

    async fn revoke(&self, lease: &Lease) -> Result<()> {
        self.store_for(lease.mode()).revoke(lease).await?;
        lock(&self.shared.released).insert(lease.owner());
        Ok(())
    }

    async fn release_after(&self, lease: &Lease, hold: Duration) -> Result<()> {
        match self.how {
            Breakage::IgnoresAtLeast => self.revoke(lease).await,
            _ => {
                self.store_for(lease.mode())
                    .release_after(lease, hold)
                    .await
            }
        }
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        match self.how {
            Breakage::SilentWatch => Ok(Some(Box::pin(futures::stream::pending()))),
            _ => self.inner.watch(name).await,
        }
    }

    async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let s = self.inner.inspect(name).await?;
        // Report the queue this wrapper keeps, not the inner one.
        let waiters = match self.how {
            Breakage::ServesNewestWaiterFirst => {
                Some(lock(&self.shared.waiters).get(name).map_or(0, Vec::len))
            }
            Breakage::LeaksCancelledAttempts => None,
            _ => s.waiters,
        };
        Ok(LockStatus::new(s.held, s.fencing_token, s.expires_in, waiters).with_holder(s.holder))
    }
}

pub struct BrokenHarness {
    store: MemoryBackend,
    how: Breakage,
    shared: Arc<Shared>,
}

impl BrokenHarness {
    /// Clients of one new service broken in `how`.
    pub fn new(how: Breakage) -> Self {
        BrokenHarness {
            store: MemoryBackend::new(),
            how,
            shared: Arc::default(),
        }
    }
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
            shared: self.shared.clone(),
        })
    }
}

/// The text of a panic payload.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_string(), |s| s.to_string()),
    }
}

/// Runs `case` against a backend broken in `how`; its panic message if it
/// failed.
pub async fn failure<F, Fut>(how: Breakage, case: F) -> Option<String>
where
    F: FnOnce(Arc<BrokenHarness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    failure_of(BrokenHarness::new(how), case).await
}

/// Runs `case` against `harness`; its panic message if it failed.
pub async fn failure_of<H, F, Fut>(harness: H, case: F) -> Option<String>
where
    H: Harness,
    F: FnOnce(Arc<H>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(case(Arc::new(harness))).await {
        Ok(()) => None,
        Err(e) if e.is_panic() => Some(panic_message(e.into_panic())),
        Err(e) => Some(format!("cancelled: {e}")),
    }
}

/// The control passes `case`; `how` fails it with a message containing
/// every one of `expected`.
pub async fn assert_caught<F, Fut>(how: Breakage, case: F, expected: &[&str])
where
    F: Fn(Arc<BrokenHarness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(message) = failure(Breakage::Nothing, &case).await {
        panic!("the control must pass, but: {message}");
    }
    let message = failure(how, &case).await;
    assert_failed_saying(&format!("{how:?}"), message, expected);
}

/// A broken backend (`what`) failed its case with a message containing
/// every one of `expected`.
pub fn assert_failed_saying(what: &str, message: Option<String>, expected: &[&str]) {
    let Some(message) = message else {
        panic!("the suite let a backend that {what} pass");
    };
    println!("{what} fails as it should: {message}");
    for part in expected {
        assert!(
            message.contains(part),
            "{what}: the failure should say {part:?}, but said: {message}"
        );
    }
}
