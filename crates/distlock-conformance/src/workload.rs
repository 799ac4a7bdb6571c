//! The contention workload: many clients taking turns on one lock, every
//! hold recorded in a [`History`] for the checker.
//!
//! Two ways to run it:
//!
//! - [`Contention::run`]: each client holds the lock a fixed number of
//!   times, then the run ends (the conformance case, and fault tests that
//!   run a workload *through* a fault).
//! - [`Contention::start`]: the clients take turns until
//!   [`Running::finish`]; meanwhile the test injects faults and waits for
//!   progress with [`Running::wait_for_holds`].
//!
//! By default any failure panics with a message naming the context and the
//! client (`[mutual_exclusion_under_contention] client 4 …`), as a
//! conformance case wants. [`Contention::tolerating_faults`] instead counts
//! failed acquires and releases, paces the retries, and reports the counts
//! in the [`Outcome`], as a fault test wants while servers are down.
//!
//! ```no_run
//! # async fn demo(clients: Vec<std::sync::Arc<dyn distlock_core::DistributedLock>>) {
//! use std::time::Duration;
//! use distlock_conformance::workload::Contention;
//! use distlock_core::LockName;
//!
//! let name = LockName::new("faults/contended").unwrap();
//! let outcome = Contention::new(name).with_context("two-down").run(clients, 25).await;
//! if let Err(e) = outcome.history.check() {
//!     panic!("{e}");
//! }
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, Lease, LockName, Wait};
use tokio::task::JoinHandle;

use crate::history::{History, Hold};

/// How many failure messages an [`Outcome`] keeps (and prints).
const KEPT_ERRORS: usize = 10;

/// How many times a tolerant run retries a release that failed for a
/// reason other than `NotHeld`: a lock left behind would stall the others
/// until its ttl.
const RELEASE_ATTEMPTS: usize = 20;

/// The workload's settings; see the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct Contention {
    name: LockName,
    options: AcquireOptions,
    hold: Duration,
    context: String,
    fault_pause: Option<Duration>,
}

impl Contention {
    /// Contention on `name`: a 30 s ttl, each acquire waiting up to 60 s, a
    /// hold that spans one scheduling point, failures panic.
    pub fn new(name: LockName) -> Self {
        Contention {
            name,
            options: AcquireOptions::new(Duration::from_secs(30))
                .with_wait(Wait::For(Duration::from_secs(60))),
            hold: Duration::ZERO,
            context: "contention".to_string(),
            fault_pause: None,
        }
    }

    /// The options of every acquire (ttl, wait, backoff).
    pub fn with_options(mut self, options: AcquireOptions) -> Self {
        self.options = options;
        self
    }

    /// How long each hold lasts; zero (the default) holds across one
    /// `yield_now`, enough for overlaps to show.
    pub fn with_hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// What panic messages start with, in brackets: the case or test name.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Counts failed acquires (errors, and waits that ran out) and failed
    /// releases instead of panicking; after an error a client pauses for
    /// `pause` before it tries again, and a release that failed for a
    /// reason other than `NotHeld` is retried (up to 20 times).
    pub fn tolerating_faults(mut self, pause: Duration) -> Self {
        self.fault_pause = Some(pause);
        self
    }

    /// Runs until each client held the lock `rounds` times; one task per
    /// client.
    ///
    /// # Panics
    ///
    /// Unless tolerating faults: on the first failed acquire or release,
    /// with a message naming the context and the client.
    pub async fn run(self, clients: Vec<Arc<dyn DistributedLock>>, rounds: usize) -> Outcome {
        self.spawn(clients, Some(rounds)).finish().await
    }

    /// Starts the clients taking turns until [`Running::finish`].
    ///
    /// Must be called inside a tokio runtime (it spawns one task per client).
    pub fn start(self, clients: Vec<Arc<dyn DistributedLock>>) -> Running {
        self.spawn(clients, None)
    }

    fn spawn(self, clients: Vec<Arc<dyn DistributedLock>>, rounds: Option<usize>) -> Running {
        let shared = Arc::new(Shared::new(self, clients.len()));
        let tasks = clients
            .into_iter()
            .enumerate()
            .map(|(id, client)| {
                let worker = Worker {
                    id,
                    client,
                    shared: shared.clone(),
                };
                tokio::spawn(worker.turns(rounds))
            })
            .collect();
        Running { shared, tasks }
    }
}

/// What a finished run saw.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// Every hold, for [`History::check`].
    pub history: History,
    /// Holds in total.
    pub holds: usize,
    /// Holds per client, by client index.
    pub holds_per_client: Vec<usize>,
    /// Acquires whose wait ran out without the lock.
    pub not_acquired: usize,
    /// Acquires that failed with an error.
    pub acquire_errors: usize,
    /// Failed release attempts (each retry counts).
    pub release_errors: usize,
    /// The first few failure messages, with the client that saw each.
    pub errors: Vec<String>,
}

impl Outcome {
    /// Failed acquires and releases together.
    pub fn failures(&self) -> usize {
        self.not_acquired + self.acquire_errors + self.release_errors
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds {:?}, {} waits ran out, {} acquire errors, {} release errors",
            self.holds,
            self.holds_per_client,
            self.not_acquired,
            self.acquire_errors,
            self.release_errors
        )
    }
}

/// A run in progress; see [`Contention::start`].
#[must_use = "the clients keep contending until `finish` is awaited"]
pub struct Running {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("context", &self.shared.settings.context)
            .field("holds", &self.holds())
            .finish_non_exhaustive()
    }
}

/// A run that made too little progress; see [`Running::wait_for_holds`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stalled {
    /// How many more holds were awaited.
    pub wanted: usize,
    /// How many happened.
    pub got: usize,
    /// How long the wait was.
    pub within: Duration,
    /// Failed acquires and releases so far.
    pub failures: usize,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "only {} of {} holds within {:?} ({} failed acquires or releases so far)",
            self.got, self.wanted, self.within, self.failures
        )
    }
}

impl std::error::Error for Stalled {}

impl Running {
    /// Holds so far, over all clients.
    pub fn holds(&self) -> usize {
        self.shared.holds.load(Ordering::SeqCst)
    }

    /// Waits until `more` holds happened after this call, or `within`
    /// passed (then `Err`, for the caller to describe the situation and
    /// fail).
    pub async fn wait_for_holds(&self, more: usize, within: Duration) -> Result<(), Stalled> {
        let base = self.holds();
        let target = base + more;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Subscribe before reading, so a hold in between is not missed.
            let progressed = self.shared.progress.notified();
            if self.holds() >= target {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                let got = self.holds().saturating_sub(base);
                if got >= more {
                    return Ok(());
                }
                return Err(Stalled {
                    wanted: more,
                    got,
                    within,
                    failures: self.shared.failures(),
                });
            }
        }
    }

    /// Stops the clients after their current turn and reports the run.
    ///
    /// # Panics
    ///
    /// With a client's own panic message, if one panicked.
    pub async fn finish(self) -> Outcome {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut tasks = self.tasks.into_iter();
        while let Some(task) = tasks.next() {
            let Err(e) = task.await else { continue };
            // One client failed: stop the others before reporting it.
            for other in tasks {
                other.abort();
            }
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!(
                "[{}] a client task was cancelled",
                self.shared.settings.context
            );
        }
        self.shared.outcome()
    }
}

/// State shared by the workers of one run.
struct Shared {
    settings: Contention,
    history: History,
    stop: AtomicBool,
    holds: AtomicUsize,
    holds_per_client: Vec<AtomicUsize>,
    not_acquired: AtomicUsize,
    acquire_errors: AtomicUsize,
    release_errors: AtomicUsize,
    errors: Mutex<Vec<String>>,
    progress: tokio::sync::Notify,
}

impl Shared {
    fn new(settings: Contention, clients: usize) -> Self {
        Shared {
            settings,
            history: History::new(),
            stop: AtomicBool::new(false),
            holds: AtomicUsize::new(0),
            holds_per_client: (0..clients).map(|_| AtomicUsize::new(0)).collect(),
            not_acquired: AtomicUsize::new(0),
            acquire_errors: AtomicUsize::new(0),
            release_errors: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
            progress: tokio::sync::Notify::new(),
        }
    }

    fn failures(&self) -> usize {
        self.not_acquired.load(Ordering::SeqCst)
            + self.acquire_errors.load(Ordering::SeqCst)
            + self.release_errors.load(Ordering::SeqCst)
    }

    /// Keeps (and prints) one of the first few failure messages.
    fn note(&self, message: String) {
        let mut errors = distlock_core::sync::lock(&self.errors);
        if errors.len() < KEPT_ERRORS {
            eprintln!("[{}] {message}", self.settings.context);
            errors.push(message);
        }
    }

    fn outcome(&self) -> Outcome {
        Outcome {
            history: self.history.clone(),
            holds: self.holds.load(Ordering::SeqCst),
            holds_per_client: self
                .holds_per_client
                .iter()
                .map(|n| n.load(Ordering::SeqCst))
                .collect(),
            not_acquired: self.not_acquired.load(Ordering::SeqCst),
            acquire_errors: self.acquire_errors.load(Ordering::SeqCst),
            release_errors: self.release_errors.load(Ordering::SeqCst),
            errors: distlock_core::sync::lock(&self.errors).clone(),
        }
    }
}

/// One client's loop.
struct Worker {
    id: usize,
    client: Arc<dyn DistributedLock>,
    shared: Arc<Shared>,
}

impl Worker {
    /// Takes turns until `rounds` holds (or, without a count, until stopped).
    async fn turns(self, rounds: Option<usize>) {
        let mut held = 0;
        while rounds.map_or(!self.shared.stop.load(Ordering::SeqCst), |r| held < r) {
            if let Some(lease) = self.acquire().await {
                self.hold(&lease).await;
                self.release(&lease).await;
                held += 1;
            }
        }
    }

    /// One acquire; `None` after a failure a tolerant run survives.
    async fn acquire(&self) -> Option<Lease> {
        let settings = &self.shared.settings;
        let started = Instant::now();
        match self.client.acquire(&settings.name, &settings.options).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => {
                let why = self.not_acquired_message(started.elapsed());
                if settings.fault_pause.is_none() {
                    panic!("[{}] {why}", settings.context);
                }
                self.shared.not_acquired.fetch_add(1, Ordering::SeqCst);
                self.shared.note(why);
                None
            }
            Err(e) => {
                let why = format!("client {} acquire failed: {e}", self.id);
                let Some(pause) = settings.fault_pause else {
                    panic!("[{}] {why}", settings.context);
                };
                self.shared.acquire_errors.fetch_add(1, Ordering::SeqCst);
                self.shared.note(why);
                tokio::time::sleep(pause).await;
                None
            }
        }
    }

    /// Why an acquire came back without the lock: a starved client, or a
    /// backend that returned before the wait ended.
    fn not_acquired_message(&self, took: Duration) -> String {
        let wait = self.shared.settings.options.wait;
        let waited_out = wait
            .as_duration()
            .is_none_or(|w| took + Duration::from_millis(5) >= w);
        if waited_out {
            format!(
                "client {} starved: no turn within its wait of {wait:?} while the others took {} turns",
                self.id,
                self.shared.holds.load(Ordering::SeqCst)
            )
        } else {
            format!(
                "client {}: an acquire with a wait of {wait:?} came back without the lock after only {took:?}: the backend does not honour `Wait`",
                self.id
            )
        }
    }

    /// Holds the lock and records the hold: from when the acquire returned
    /// to just before the release is sent, an interval inside the real hold.
    async fn hold(&self, lease: &Lease) {
        let start = Instant::now();
        if self.shared.settings.hold.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.shared.settings.hold).await;
        }
        let end = Instant::now();
        self.shared.history.record(Hold {
            client: self.id,
            fencing: lease.fencing_token().get(),
            start,
            end,
        });
        self.shared.holds.fetch_add(1, Ordering::SeqCst);
        self.shared.holds_per_client[self.id].fetch_add(1, Ordering::SeqCst);
        self.shared.progress.notify_waiters();
    }

    /// Releases; a tolerant run retries failures other than `NotHeld`.
    async fn release(&self, lease: &Lease) {
        let settings = &self.shared.settings;
        for _ in 0..RELEASE_ATTEMPTS {
            let Err(e) = self.client.release(lease).await else {
                return;
            };
            let why = format!("client {} release failed: {e}", self.id);
            let Some(pause) = settings.fault_pause else {
                panic!("[{}] {why}", settings.context);
            };
            self.shared.release_errors.fetch_add(1, Ordering::SeqCst);
            self.shared.note(why);
            if e.is_not_held() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_says_how_far_it_got() {
        let s = Stalled {
            wanted: 40,
            got: 3,
            within: Duration::from_secs(5),
            failures: 7,
        };
        assert_eq!(
            s.to_string(),
            "only 3 of 40 holds within 5s (7 failed acquires or releases so far)"
        );
    }
}
