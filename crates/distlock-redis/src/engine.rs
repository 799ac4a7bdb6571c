//! The algorithm shared by the single-instance backend and Redlock: a single
//! instance is a quorum of one.
//!
//! Reads top to bottom as the lock: acquire (one attempt, then the wait),
//! extend, release, status.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::waiting::{notified_acquire, Attempt};
use distlock_core::{
    AcquireOptions, FencingToken, Lease, LockError, LockName, LockStatus, OwnerToken, Result, Wait,
};
use futures::future::join_all;
use redis::Script;

use crate::config::RedisConfig;
use crate::instance::{CallError, Instance};
use crate::keys::LockKeys;
use crate::notify::{Notifier, Subscription};

struct Scripts {
    acquire: Script,
    fair_acquire: Script,
    abandon: Script,
    raise_fence: Script,
    extend: Script,
    release: Script,
    status: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            acquire: Script::new(include_str!("scripts/acquire.lua")),
            fair_acquire: Script::new(include_str!("scripts/fair_acquire.lua")),
            abandon: Script::new(include_str!("scripts/abandon.lua")),
            raise_fence: Script::new(include_str!("scripts/raise_fence.lua")),
            extend: Script::new(include_str!("scripts/extend.lua")),
            release: Script::new(include_str!("scripts/release.lua")),
            status: Script::new(include_str!("scripts/status.lua")),
        }
    }
}

/// The lock over one or more independent instances.
pub(crate) struct Engine {
    pub(crate) backend: &'static str,
    pub(crate) config: RedisConfig,
    pub(crate) instances: Vec<Arc<Instance>>,
    notifier: Notifier,
    scripts: Scripts,
    quorum: usize,
    /// Single instance with the waiters' queue.
    pub(crate) fair: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .field("quorum", &self.quorum)
            .field("notifier", &self.notifier)
            .finish()
    }
}

/// Clock drift allowance: 1% of the ttl plus 2 ms.
pub(crate) fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// What one instance answered to an acquire attempt.
enum Vote {
    Granted(u64),
    Held(Option<Duration>),
    Failed(CallError),
}

/// Releases what an acquire may have left behind when its future is dropped
/// or gives up after an instance did not answer: the owner token is released
/// in the background on every instance.
struct PendingAcquire {
    engine: Arc<Engine>,
    keys: LockKeys,
    owner: OwnerToken,
    ttl: Duration,
    maybe_held: AtomicBool,
    /// The last attempt got some instances but not a quorum: pause a random
    /// moment instead of waiting for a release message.
    split_vote: AtomicBool,
    /// Fair mode: we may have an entry in the waiters' queue.
    queued: AtomicBool,
    /// Fair mode: the start of the latest attempt that found the lock held,
    /// and the fencing counter it saw. A hand-over carrying a higher token
    /// happened after that attempt ran on the server, so after its start: the
    /// handed-over lease is valid from there (conservatively).
    last_held: Mutex<Option<(Instant, u64)>>,
    armed: bool,
}

impl Drop for PendingAcquire {
    fn drop(&mut self) {
        let queued = self.queued.load(Ordering::SeqCst);
        if !self.armed || !(self.maybe_held.load(Ordering::SeqCst) || queued) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = self.engine.clone();
        let keys = self.keys.clone();
        let owner = self.owner;
        let ttl = self.ttl;
        runtime.spawn(async move {
            if engine.fair {
                let _ = engine.abandon(&keys, owner, ttl).await;
            } else {
                let all: Vec<usize> = (0..engine.instances.len()).collect();
                let _ = engine.release_on(&all, &keys, owner, ttl).await;
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub(crate) fn new(backend: &'static str, config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let instances = config
            .instances
            .iter()
            .map(Instance::new)
            .collect::<Result<Vec<_>>>()?;
        let quorum = instances.len() / 2 + 1;
        let fair = !config.redlock && config.fair;
        Ok(Engine {
            fair,
            backend,
            notifier: Notifier::new(&instances),
            config,
            instances,
            scripts: Scripts::new(),
            quorum,
        })
    }

    fn single(&self) -> bool {
        !self.config.redlock
    }

    /// The bound on one call to one instance: the request timeout for a single
    /// instance; for Redlock `ttl / 10` clamped to the configured bounds, far
    /// below the ttl so a dead instance cannot eat the validity.
    pub(crate) fn instance_timeout(&self, ttl: Duration) -> Duration {
        if self.single() {
            self.config.request_timeout
        } else {
            (ttl / 10).clamp(
                self.config.min_instance_timeout,
                self.config.max_instance_timeout,
            )
        }
    }

    fn keys(&self, name: &LockName) -> LockKeys {
        LockKeys::new(&self.config.prefix, name)
    }

    /// Checks reachability and credentials of every instance (one PING each,
    /// in parallel). A single instance must answer; for Redlock, instances
    /// that are down are tolerated, refused credentials are not.
    pub(crate) async fn check(&self) -> Result<()> {
        let timeout = self.config.request_timeout;
        let ping = redis::cmd("PING");
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.query::<String>(&ping, timeout)),
        )
        .await;
        for (instance, answer) in self.instances.iter().zip(answers) {
            match answer {
                Ok(_) => {}
                Err(e @ CallError::Auth(_)) => {
                    return Err(self.call_error(&instance.label, "connecting to", &e));
                }
                Err(e) if self.single() => {
                    return Err(self.call_error(&instance.label, "connecting to", &e));
                }
                Err(e) => {
                    tracing::warn!(instance = %instance.label, error = %e, "distlock.redis.instance_down");
                }
            }
        }
        Ok(())
    }

    fn call_error(&self, label: &str, doing: &str, e: &CallError) -> LockError {
        let context = format!("{doing} {label}: {}", e.describe());
        if e.is_unreachable() {
            LockError::unavailable(self.backend, context)
        } else {
            LockError::backend(self.backend, context.clone(), context)
        }
    }

    /// The error for a quorum that could not be reached because instances
    /// failed (rather than because the lock is held).
    fn quorum_error(&self, doing: &str, failures: &[(usize, &CallError)]) -> LockError {
        if self.single() {
            if let Some((i, e)) = failures.first() {
                return self.call_error(&self.instances[*i].label, doing, e);
            }
            return LockError::unavailable(self.backend, format!("{doing}: no answer"));
        }
        let detail = failures
            .iter()
            .map(|(i, e)| format!("{}: {}", self.instances[*i].label, e.describe()))
            .collect::<Vec<_>>()
            .join("; ");
        LockError::unavailable(
            self.backend,
            format!(
                "{doing}: {} of {} instances failed, a quorum of {} is out of reach ({detail})",
                failures.len(),
                self.instances.len(),
                self.quorum
            ),
        )
    }

    // ------------------------------------------------------------------
    // Acquire
    // ------------------------------------------------------------------

    /// Acquire: one attempt, then wait for a release notification (or the
    /// holder's remaining ttl) and attempt again, until the caller's wait ends.
    ///
    /// Round trips: one per attempt (all instances in parallel), plus one
    /// more in parallel for Redlock when the fencing counters of a majority
    /// disagree, plus one SUBSCRIBE (per instance, in parallel) before the
    /// first wait unless the channel is still subscribed. In fair mode a lock
    /// handed over by a release costs no round trip at all.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        name: &LockName,
        options: &AcquireOptions,
    ) -> Result<Option<Lease>> {
        let keys = self.keys(name);
        let mut pending = PendingAcquire {
            engine: self.clone(),
            keys: keys.clone(),
            owner: OwnerToken::random(),
            ttl: options.ttl,
            maybe_held: AtomicBool::new(false),
            split_vote: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            last_held: Mutex::new(None),
            armed: true,
        };
        let waits = options.wait != Wait::NoWait;
        let subscription: Mutex<Option<Subscription>> = Mutex::new(None);
        // Fair mode: the fencing token of a lock a release handed to us.
        let handed: Mutex<Option<u64>> = Mutex::new(None);
        let mut polling = options.backoff.delays();
        let timeout = self.instance_timeout(options.ttl);
        let needed = self.instances.len() - self.quorum + 1;
        let (pending_ref, subscription_ref, handed_ref) = (&pending, &subscription, &handed);

        let result = notified_acquire(
            options,
            || async move {
                // Handed over by a release: the lock is ours without a round
                // trip (if the conservative validity is still ample; if not,
                // the attempt below re-grants it to us as its holder).
                let grant = lock(handed_ref).take();
                if let Some(lease) = grant.and_then(|f| self.handed_lease(name, pending_ref, f)) {
                    return Ok(Attempt::Acquired(lease));
                }
                // A channel still subscribed from an earlier wait of this
                // client costs nothing to join: register before the attempt.
                if waits
                    && !is_some(subscription_ref)
                    && self
                        .notifier
                        .is_subscribed(&pending_ref.keys.channel, needed)
                {
                    let sub = self
                        .notifier
                        .subscribe(
                            &pending_ref.keys.channel,
                            pending_ref.owner.to_hex(),
                            needed,
                            timeout,
                        )
                        .await;
                    *lock(subscription_ref) = Some(sub);
                }
                let first = self.attempt(name, pending_ref, waits).await?;
                if !waits || matches!(first, Attempt::Acquired(_)) || is_some(subscription_ref) {
                    return Ok(first);
                }
                // Subscribe before the attempt that precedes the first wait, so a
                // release between that attempt and the wait is not missed.
                let sub = self
                    .notifier
                    .subscribe(
                        &pending_ref.keys.channel,
                        pending_ref.owner.to_hex(),
                        needed,
                        timeout,
                    )
                    .await;
                *lock(subscription_ref) = Some(sub);
                self.attempt(name, pending_ref, waits).await
            },
            |bound| {
                let poll = polling.next_delay();
                // Fair mode: wake in time to refresh our queue entry.
                let bound = if self.fair {
                    bound.min(self.config.queue_entry_ttl / 3)
                } else {
                    bound
                };
                async move {
                    if pending_ref.split_vote.load(Ordering::SeqCst) {
                        tokio::time::sleep(bound).await;
                        return;
                    }
                    let taken = lock(subscription_ref).take();
                    match taken {
                        Some(mut sub) => {
                            if let Some(fence) = sub.wait(bound, poll).await {
                                *lock(handed_ref) = Some(fence);
                            }
                            *lock(subscription_ref) = Some(sub);
                        }
                        None => tokio::time::sleep(bound.min(poll)).await,
                    }
                }
            },
        )
        .await;
        if matches!(result, Ok(Some(_))) {
            pending.armed = false;
        }
        result
    }

    /// One acquire attempt on every instance in parallel.
    ///
    /// Single instance: one round trip (the acquire script: SET NX PX + INCR).
    /// Redlock: one round trip to all instances; the lock is ours when a
    /// quorum granted it and validity remains. The fencing token is the
    /// highest counter among the granting instances; when fewer than a quorum
    /// of them already hold that value, a second round trip writes it to the
    /// granting instances (only while still held there) and needs a quorum of
    /// them. Any two majorities intersect, so the next holder's counters
    /// start above it. On failure, partial holds are released at once (one
    /// more round trip).
    async fn attempt(
        &self,
        name: &LockName,
        pending: &PendingAcquire,
        waits: bool,
    ) -> Result<Attempt> {
        let ttl = pending.ttl;
        let timeout = self.instance_timeout(ttl);
        let owner_hex = pending.owner.to_hex();
        let keys = &pending.keys;
        let start = Instant::now();
        pending.maybe_held.store(true, Ordering::SeqCst);

        let invocation = if self.fair {
            // Fair mode: only the oldest live waiter may take a free lock; a
            // caller that waits joins (or refreshes its place in) the queue.
            if waits {
                pending.queued.store(true, Ordering::SeqCst);
            }
            let mut invocation = self.scripts.fair_acquire.prepare_invoke();
            invocation
                .key(&keys.lock)
                .key(&keys.fence)
                .key(&keys.queue)
                .key(&keys.waiters)
                .arg(&owner_hex)
                .arg(ttl_millis(ttl))
                .arg(if waits { "1" } else { "0" })
                .arg(ttl_millis(self.config.queue_entry_ttl));
            invocation
        } else {
            let mut invocation = self.scripts.acquire.prepare_invoke();
            invocation
                .key(&keys.lock)
                .key(&keys.fence)
                .arg(&owner_hex)
                .arg(ttl_millis(ttl));
            invocation
        };
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<Vec<i64>>(&invocation, timeout)),
        )
        .await;
        let votes: Vec<Vote> = answers
            .into_iter()
            .map(|a| match a {
                Err(e) => Vote::Failed(e),
                Ok(reply) => match reply.as_slice() {
                    [1, counter, ..] => Vote::Granted(u64::try_from(*counter).unwrap_or(0)),
                    [_, pttl, rest @ ..] => {
                        if let (true, Some(counter)) = (self.fair, rest.first()) {
                            let seen = u64::try_from(*counter).unwrap_or(0);
                            *lock(&pending.last_held) = Some((start, seen));
                        }
                        Vote::Held(u64::try_from(*pttl).ok().map(Duration::from_millis))
                    }
                    _ => Vote::Failed(CallError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Parse,
                        "unexpected reply from the acquire script",
                    )))),
                },
            })
            .collect();

        let granted: Vec<(usize, u64)> = votes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Vote::Granted(c) => Some((i, *c)),
                _ => None,
            })
            .collect();

        if granted.len() >= self.quorum {
            let token = granted.iter().map(|(_, c)| *c).max().unwrap_or(0);
            let at_token = granted.iter().filter(|(_, c)| *c == token).count();
            let mut recorded = at_token >= self.quorum;
            if !recorded {
                let mut raise = self.scripts.raise_fence.prepare_invoke();
                raise
                    .key(&keys.lock)
                    .key(&keys.fence)
                    .arg(&owner_hex)
                    .arg(token);
                let raised = join_all(
                    granted
                        .iter()
                        .map(|(i, _)| self.instances[*i].invoke::<i64>(&raise, timeout)),
                )
                .await;
                recorded = raised.iter().filter(|r| matches!(r, Ok(1))).count() >= self.quorum;
            }
            let elapsed = start.elapsed();
            let validity = ttl
                .checked_sub(elapsed + drift(ttl))
                .filter(|v| !v.is_zero());
            if let (true, Some(_)) = (recorded, validity) {
                let valid_until = start + ttl - drift(ttl);
                tracing::debug!(lock = %name, fencing = token, backend = self.backend, "distlock.acquired");
                let lease = Lease::new(
                    self.backend,
                    name.clone(),
                    pending.owner,
                    FencingToken(token),
                    ttl,
                    valid_until,
                )
                .with_data(keys.lock.clone());
                return Ok(Attempt::Acquired(lease));
            }
        }

        // Not acquired: give back what we got (and what may have landed on an
        // instance that did not answer), then report why.
        let to_release: Vec<usize> = votes
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Vote::Held(_)))
            .map(|(i, _)| i)
            .collect();
        if !to_release.is_empty() {
            let clean = self
                .release_on(&to_release, keys, pending.owner, ttl)
                .await
                .iter()
                .all(Result::is_ok);
            if clean {
                pending.maybe_held.store(false, Ordering::SeqCst);
            }
        } else {
            pending.maybe_held.store(false, Ordering::SeqCst);
        }

        let mut failures = Vec::new();
        let mut remaining: Option<Duration> = None;
        let mut held = 0;
        let split_vote = !granted.is_empty();
        for (i, vote) in votes.into_iter().enumerate() {
            match vote {
                Vote::Failed(e) => failures.push((i, e)),
                Vote::Held(pttl) => {
                    held += 1;
                    if let Some(p) = pttl {
                        remaining = Some(remaining.map_or(p, |r| r.max(p)));
                    }
                }
                Vote::Granted(_) => {}
            }
        }
        if failures.len() > self.instances.len() - self.quorum
            || failures
                .iter()
                .any(|(_, e)| matches!(e, CallError::Auth(_)))
        {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("acquiring `{name}`"), &failures));
        }
        pending
            .split_vote
            .store(split_vote || held == 0, Ordering::SeqCst);
        if split_vote || held == 0 {
            // A split vote between contenders (or validity spent): retry after
            // a short random pause so contenders do not collide again.
            let pause = Duration::from_millis(1 + u64::from(rand_u8() % 10));
            return Ok(Attempt::Held {
                remaining: Some(pause),
            });
        }
        tracing::trace!(lock = %name, backend = self.backend, "distlock.busy");
        Ok(Attempt::Held { remaining })
    }

    /// Fair mode: the lease for a lock a release handed to us (no round
    /// trip). Its validity counts from when we joined the queue, which is
    /// before the hand-over; `None` when that leaves less than half the ttl.
    fn handed_lease(&self, name: &LockName, pending: &PendingAcquire, fence: u64) -> Option<Lease> {
        let (since, seen) = (*lock(&pending.last_held))?;
        if fence <= seen {
            return None; // a hand-over from before our last look: not ours now
        }
        let ttl = pending.ttl;
        let valid_until = since + ttl - drift(ttl);
        if valid_until <= Instant::now() + ttl / 2 {
            return None;
        }
        tracing::debug!(lock = %name, fencing = fence, backend = self.backend, "distlock.handed_over");
        Some(
            Lease::new(
                self.backend,
                name.clone(),
                pending.owner,
                FencingToken(fence),
                ttl,
                valid_until,
            )
            .with_data(pending.keys.lock.clone()),
        )
    }

    // ------------------------------------------------------------------
    // Extend
    // ------------------------------------------------------------------

    /// Extends many leases: one extend-script call per instance carrying
    /// every lease (one round trip, all instances in parallel). A lease is
    /// extended when a quorum extended it and validity remains; `NotHeld`
    /// when so many instances refused that a quorum is impossible.
    pub(crate) async fn extend_many(&self, leases: &[(Lease, Duration)]) -> Vec<Result<Lease>> {
        if leases.is_empty() {
            return Vec::new();
        }
        let max_ttl = leases.iter().map(|(_, t)| *t).max().unwrap_or_default();
        let min_ttl = leases.iter().map(|(_, t)| *t).min().unwrap_or_default();
        let timeout = self.instance_timeout(min_ttl.min(max_ttl));
        let mut invocation = self.scripts.extend.prepare_invoke();
        for (lease, ttl) in leases {
            invocation
                .key(self.keys(lease.name()).lock)
                .arg(lease.owner().to_hex())
                .arg(ttl_millis(*ttl));
        }
        let start = Instant::now();
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<Vec<i64>>(&invocation, timeout)),
        )
        .await;
        let elapsed = start.elapsed();
        leases
            .iter()
            .enumerate()
            .map(|(k, (lease, ttl))| {
                let (mut ok, mut refused) = (0, 0);
                let mut failures = Vec::new();
                for (i, answer) in answers.iter().enumerate() {
                    match answer {
                        Ok(v) if v.get(k) == Some(&1) => ok += 1,
                        Ok(_) => refused += 1,
                        Err(e) => failures.push((i, e)),
                    }
                }
                if ok >= self.quorum && *ttl > elapsed + drift(*ttl) {
                    tracing::debug!(lock = %lease.name(), backend = self.backend, "distlock.extended");
                    return Ok(lease.renewed(*ttl, start + *ttl - drift(*ttl)));
                }
                if refused > self.instances.len() - self.quorum || ok >= self.quorum {
                    tracing::warn!(lock = %lease.name(), backend = self.backend, "distlock.redis.extend_refused");
                    return Err(LockError::not_held(lease.name().as_str()));
                }
                Err(self.quorum_error(&format!("extending `{}`", lease.name()), &failures))
            })
            .collect()
    }

    // ------------------------------------------------------------------
    // Release
    // ------------------------------------------------------------------

    /// Runs the release script on the given instances in parallel (one round
    /// trip): compare owner, DEL, PUBLISH on the release channel (naming the
    /// next waiter in fair mode, everyone otherwise).
    async fn release_on(
        &self,
        indexes: &[usize],
        keys: &LockKeys,
        owner: OwnerToken,
        ttl: Duration,
    ) -> Vec<std::result::Result<i64, CallError>> {
        let timeout = self.instance_timeout(ttl);
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.channel)
            .key(&keys.queue)
            .key(&keys.waiters)
            .key(&keys.fence)
            .arg(owner.to_hex());
        join_all(
            indexes
                .iter()
                .map(|i| self.instances[*i].invoke::<i64>(&invocation, timeout)),
        )
        .await
    }

    /// Fair mode: leaves the queue and releases whatever this owner holds (one
    /// round trip); wakes the next waiter when we were first in line.
    async fn abandon(
        &self,
        keys: &LockKeys,
        owner: OwnerToken,
        ttl: Duration,
    ) -> std::result::Result<i64, CallError> {
        let mut invocation = self.scripts.abandon.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.channel)
            .key(&keys.queue)
            .key(&keys.waiters)
            .key(&keys.fence)
            .arg(owner.to_hex());
        self.instances[0]
            .invoke::<i64>(&invocation, self.instance_timeout(ttl))
            .await
    }

    /// Release: one round trip (all instances in parallel). `NotHeld` when no
    /// instance held the lock for this owner.
    pub(crate) async fn release(&self, lease: &Lease) -> Result<()> {
        let keys = self.keys(lease.name());
        let all: Vec<usize> = (0..self.instances.len()).collect();
        let answers = self
            .release_on(&all, &keys, lease.owner(), lease.ttl())
            .await;
        let released = answers.iter().filter(|a| matches!(a, Ok(1))).count();
        let refused = answers.iter().filter(|a| matches!(a, Ok(0))).count();
        if released > 0 {
            tracing::debug!(lock = %lease.name(), backend = self.backend, "distlock.released");
            return Ok(());
        }
        if refused > self.instances.len() - self.quorum {
            return Err(LockError::not_held(lease.name().as_str()));
        }
        let failures: Vec<(usize, &CallError)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().err().map(|e| (i, e)))
            .collect();
        Err(self.quorum_error(&format!("releasing `{}`", lease.name()), &failures))
    }

    // ------------------------------------------------------------------
    // Status
    // ------------------------------------------------------------------

    /// Status: one round trip (all instances in parallel). Held when a quorum
    /// reports a holder; `expires_in` is how long until fewer than a quorum
    /// do; the fencing token is the highest counter seen.
    pub(crate) async fn status(&self, name: &LockName) -> Result<LockStatus> {
        let keys = self.keys(name);
        let timeout = self.instance_timeout(Duration::from_secs(10));
        let mut invocation = self.scripts.status.prepare_invoke();
        invocation.key(&keys.lock).key(&keys.fence).key(&keys.queue);
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<(i64, i64, i64)>(&invocation, timeout)),
        )
        .await;
        let mut waiters = 0usize;
        let mut pttls = Vec::new();
        let mut fence = 0u64;
        let mut answered = 0;
        let mut failures = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok((pttl, counter, queued)) => {
                    answered += 1;
                    waiters = waiters.max(usize::try_from(queued).unwrap_or(0));
                    fence = fence.max(u64::try_from(counter).unwrap_or(0));
                    if pttl != -2 {
                        pttls.push(pttl);
                    }
                }
                Err(e) => failures.push((i, e)),
            }
        }
        if answered < self.quorum {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("reading the status of `{name}`"), &failures));
        }
        pttls.sort_unstable_by(|a, b| b.cmp(a));
        let held = pttls.len() >= self.quorum;
        let expires_in = if held {
            u64::try_from(pttls[self.quorum - 1])
                .ok()
                .map(Duration::from_millis)
        } else {
            None
        };
        Ok(LockStatus::new(
            held,
            (fence > 0).then_some(FencingToken(fence)),
            expires_in,
            self.fair.then_some(waiters),
        ))
    }
}

fn is_some(m: &Mutex<Option<Subscription>>) -> bool {
    lock(m).is_some()
}

fn rand_u8() -> u8 {
    OwnerToken::random().as_bytes()[0]
}
