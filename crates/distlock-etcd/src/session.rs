//! The client's one etcd lease and the task that keeps it alive.
//!
//! Every lock a backend client holds is a key attached to the same etcd
//! lease, so keep-alive traffic is one small message every `lease_ttl / 3`
//! however many locks are held. A [`LeaseGen`] is one granted lease; when it
//! is lost, the next acquire grants a new one.
//!
//! Liveness is judged on the local monotonic clock, conservatively: a
//! keep-alive sent at instant `t` and answered with `ttl` proves the lease
//! lives on the server until at least `t + ttl` (the server restarted the
//! countdown after `t`). `alive_until` is that bound minus a small drift
//! allowance. While keep-alives go unanswered the lease is `Suspended`; once
//! `alive_until` passes it is `Lost` — no later than the server could expire
//! it, so a lock is reported lost before anyone else can take it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use distlock_core::{LockError, Result};
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::BACKEND;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Short critical sections that cannot leave data half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The allowance for clock-rate differences between this host and the
/// servers: 1 % of the ttl plus 10 ms.
pub(crate) fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(10)
}

/// One granted etcd lease and what is known about it.
pub(crate) struct LeaseGen {
    id: i64,
    liveness: watch::Sender<distlock_core::Liveness>,
    alive_until: Mutex<Instant>,
}

impl LeaseGen {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Until when the lease certainly lives on the server (local clock).
    pub(crate) fn alive_until(&self) -> Instant {
        *lock(&self.alive_until)
    }

    pub(crate) fn is_lost(&self) -> bool {
        matches!(*self.liveness.borrow(), distlock_core::Liveness::Lost(_))
    }

    /// True when the lease is not lost and has `margin` left to live.
    pub(crate) fn usable(&self, margin: Duration) -> bool {
        !self.is_lost() && self.alive_until() > Instant::now() + margin
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<distlock_core::Liveness> {
        self.liveness.subscribe()
    }

    fn renewed(&self, alive_until: Instant) {
        {
            let mut a = lock(&self.alive_until);
            if alive_until > *a {
                *a = alive_until;
            }
        }
        self.liveness.send_if_modified(|l| {
            let changed = *l == distlock_core::Liveness::Suspended;
            if changed {
                *l = distlock_core::Liveness::Live;
            }
            changed
        });
    }

    fn suspended(&self) {
        self.liveness.send_if_modified(|l| {
            let changed = *l == distlock_core::Liveness::Live;
            if changed {
                *l = distlock_core::Liveness::Suspended;
            }
            changed
        });
    }

    /// Marks the lease lost (once); true if this call did it.
    fn lost(&self, why: &str) -> bool {
        self.liveness.send_if_modified(|l| {
            if matches!(l, distlock_core::Liveness::Lost(_)) {
                false
            } else {
                *l = distlock_core::Liveness::Lost(why.to_string());
                true
            }
        })
    }
}

/// The lease bookkeeping of one backend client.
pub(crate) struct Session {
    cluster: Arc<Cluster>,
    lease_ttl: Duration,
    current: Mutex<Option<Arc<LeaseGen>>>,
    /// Every lease of this client still kept alive (the current one, and an
    /// older one that was replaced while its keep-alives failed).
    live: Mutex<HashMap<i64, Arc<LeaseGen>>>,
    /// Ids of this client's leases that were lost (for `liveness` lookups).
    lost_ids: Mutex<HashSet<i64>>,
    /// Serialises grants so concurrent acquires share one new lease.
    granting: tokio::sync::Mutex<()>,
    /// Dropped with the session: tells keep-alive tasks to revoke and stop.
    shutdown: watch::Sender<()>,
}

impl Session {
    pub(crate) fn new(cluster: Arc<Cluster>, lease_ttl: Duration) -> Arc<Self> {
        let (shutdown, _) = watch::channel(());
        Arc::new(Session {
            cluster,
            lease_ttl,
            current: Mutex::new(None),
            live: Mutex::new(HashMap::new()),
            lost_ids: Mutex::new(HashSet::new()),
            granting: tokio::sync::Mutex::new(()),
            shutdown,
        })
    }

    /// The lease to attach new keys to: the current one if it is alive with
    /// at least a tenth of its ttl left, else a newly granted one.
    ///
    /// Round trips: none, or one (LeaseGrant) when a new lease is needed.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Arc<LeaseGen>> {
        let margin = self.lease_ttl / 10;
        if let Some(g) = self.current() {
            if g.usable(margin) {
                return Ok(g);
            }
        }
        let _granting = self.granting.lock().await;
        if let Some(g) = self.current() {
            if g.usable(margin) {
                return Ok(g);
            }
            // Alive but about to lapse (keep-alives failing): do not attach new
            // locks to it; it is reported lost by its keeper when it lapses.
        }
        let sent = Instant::now();
        let ttl_secs = i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        let granted = self
            .cluster
            .call("granting the client's etcd lease", |mut c| async move {
                c.lease_grant(ttl_secs, None).await
            })
            .await?;
        if !granted.error().is_empty() {
            return Err(LockError::unavailable(
                BACKEND,
                format!("etcd refused to grant a lease: {}", granted.error()),
            ));
        }
        let ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(0));
        let (liveness, _) = watch::channel(distlock_core::Liveness::Live);
        let gen = Arc::new(LeaseGen {
            id: granted.id(),
            liveness,
            alive_until: Mutex::new(sent + ttl.saturating_sub(drift(ttl))),
        });
        tracing::debug!(lease = %format!("{:x}", gen.id), ttl_s = ttl.as_secs(), "distlock.etcd.lease_granted");
        // A previous lease that was about to lapse keeps its keeper: its locks
        // stay valid if its keep-alives recover, and are reported lost if not.
        lock(&self.live).insert(gen.id, gen.clone());
        *lock(&self.current) = Some(gen.clone());
        tokio::spawn(keep_alive(
            Arc::downgrade(self),
            self.cluster.clone(),
            gen.clone(),
            ttl.max(Duration::from_secs(1)),
            self.shutdown.subscribe(),
        ));
        Ok(gen)
    }

    pub(crate) fn current(&self) -> Option<Arc<LeaseGen>> {
        lock(&self.current).clone()
    }

    /// The live lease with this id, if it is one of this client's.
    pub(crate) fn known(&self, id: i64) -> Option<Arc<LeaseGen>> {
        lock(&self.live).get(&id).cloned()
    }

    /// Whether `id` is one of this client's leases that was lost.
    pub(crate) fn was_lost(&self, id: i64) -> bool {
        lock(&self.lost_ids).contains(&id)
    }

    /// Records a lost lease and revokes it in the background (it may still
    /// live on the server: revoking frees its keys at once for others).
    fn forget(&self, gen: &LeaseGen) {
        lock(&self.lost_ids).insert(gen.id);
        lock(&self.live).remove(&gen.id);
        {
            let mut cur = lock(&self.current);
            if cur.as_ref().map(|g| g.id) == Some(gen.id) {
                *cur = None;
            }
        }
        let (cluster, id) = (self.cluster.clone(), gen.id);
        tokio::spawn(async move {
            let _ = cluster
                .call("revoking a lost lease", |mut c| async move {
                    c.lease_revoke(id).await
                })
                .await;
        });
    }

    /// Marks `gen` lost because the server refused a request on it.
    pub(crate) fn lease_gone(&self, gen: &LeaseGen, why: &str) {
        if gen.lost(why) {
            tracing::warn!(lease = %format!("{:x}", gen.id), reason = why, "distlock.etcd.lease_lost");
            self.forget(gen);
        }
    }
}

/// Keeps one lease alive until it is lost or the session is dropped.
///
/// Every `ttl / 3` it sends a keep-alive on one stream and waits for the
/// answer. No answer within `ttl / 3`, or a broken stream: `Suspended`, and
/// a new stream is opened (on the next endpoint). `alive_until` passing, or
/// the server answering that the lease is gone: `Lost`.
async fn keep_alive(
    session: std::sync::Weak<Session>,
    cluster: Arc<Cluster>,
    gen: Arc<LeaseGen>,
    ttl: Duration,
    mut shutdown: watch::Receiver<()>,
) {
    const LAPSED: &str = "keep-alives failed for the whole lease ttl";
    let interval = ttl / 3;
    let id = gen.id;
    let outcome: Option<String> = 'outer: loop {
        if Instant::now() >= gen.alive_until() {
            break 'outer Some(LAPSED.to_string());
        }
        // Open a stream (its first keep-alive is sent and answered inside),
        // giving each endpoint at most one interval.
        let sent = Instant::now();
        let attempt_until = (sent + interval).min(gen.alive_until());
        let picked = std::sync::atomic::AtomicUsize::new(usize::MAX);
        let opening = async {
            let (i, client) = cluster.pick().await.map_err(|e| (None, e.to_string()))?;
            picked.store(i, std::sync::atomic::Ordering::SeqCst);
            client
                .lease_client()
                .keep_alive(id)
                .await
                .map(|pair| (i, pair))
                .map_err(|e| (Some(i), e.to_string()))
        };
        let opened = tokio::select! {
            _ = shutdown.changed() => break 'outer None,
            r = tokio::time::timeout_at(attempt_until.into(), opening) => r,
        };
        let (i, (mut keeper, mut stream)): (usize, (LeaseKeeper, LeaseKeepAliveStream)) =
            match opened {
                Ok(Ok(pair)) => pair,
                Ok(Err((_, e))) if e.contains("lease not found") => {
                    break 'outer Some("the server says the lease is gone".to_string())
                }
                Ok(Err((i, e))) => {
                    tracing::debug!(lease = %format!("{id:x}"), error = %e, "distlock.etcd.keepalive_failed");
                    if let Some(i) = i {
                        cluster.failed(i);
                    }
                    gen.suspended();
                    let pause = Instant::now() + Duration::from_millis(100).min(interval);
                    tokio::select! {
                        _ = shutdown.changed() => break 'outer None,
                        _ = tokio::time::sleep_until(pause.min(gen.alive_until()).into()) => {}
                    }
                    continue 'outer;
                }
                Err(_) => {
                    // No answer in time: try the next endpoint.
                    let i = picked.load(std::sync::atomic::Ordering::SeqCst);
                    if i != usize::MAX {
                        cluster.failed(i);
                    }
                    gen.suspended();
                    continue 'outer;
                }
            };
        gen.renewed(sent + ttl.saturating_sub(drift(ttl)));
        let mut last_sent = sent;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break 'outer None,
                _ = tokio::time::sleep_until((last_sent + interval).into()) => {}
            }
            if session.strong_count() == 0 {
                break 'outer None;
            }
            let sent = Instant::now();
            last_sent = sent;
            if keeper.keep_alive().await.is_err() {
                cluster.failed(i);
                gen.suspended();
                continue 'outer;
            }
            let answer_by = (sent + interval).min(gen.alive_until());
            let answer = tokio::select! {
                _ = shutdown.changed() => break 'outer None,
                r = tokio::time::timeout_at(answer_by.into(), stream.message()) => r,
            };
            match answer {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    let granted = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0));
                    gen.renewed(sent + granted.saturating_sub(drift(granted)));
                }
                Ok(Ok(Some(_))) => break 'outer Some("the server says the lease expired".into()),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    // Broken stream or no answer in time: reconnect, on the
                    // next endpoint.
                    cluster.failed(i);
                    gen.suspended();
                    continue 'outer;
                }
            }
        }
    };
    match outcome {
        Some(why) => {
            if let Some(session) = session.upgrade() {
                session.lease_gone(&gen, &why);
            } else {
                gen.lost(&why);
            }
        }
        None => {
            // The backend client was dropped: give its locks back now rather
            // than at the lease's expiry.
            gen.lost("the backend client was dropped");
            let revoke = cluster.call("revoking the lease", |mut c| async move {
                c.lease_revoke(id).await
            });
            let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
        }
    }
}
