//! The client's one etcd lease and the task that keeps it alive.
//!
//! Every lock a backend client holds is a key attached to the same etcd
//! lease, so keep-alive traffic is one small message every
//! `session_timeout / 3` however many locks are held. A [`LeaseGen`] is one
//! granted lease; when it is lost, the next acquire grants a new one.
//!
//! A second [`Session`] of each backend client keeps its *waiter lease*
//! the same way: the keys of acquires still waiting in line live on it
//! until they claim their turn (ttl: the waiter-liveness window, rounded up
//! to whole seconds and raised by etcd to its minimum), so a waiter that
//! died frees its place within that ttl even when no live client passes
//! over it. It is granted at the first acquire that queues.
//!
//! Liveness is judged on the local monotonic clock, conservatively: a
//! keep-alive sent at instant `t` and answered with `ttl` proves the lease
//! lives on the server until at least `t + ttl` (the server restarted the
//! countdown after `t`). `alive_until` is that bound less the drift
//! allowance of [`distlock_core::validity`]. While keep-alives go
//! unanswered the lease is `Suspended`; once `alive_until` passes it is
//! `Lost` — no later than the server could expire it, so a lock is reported
//! lost before anyone else can take it.

mod keep_alive;
pub(crate) mod lease;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use distlock_core::sync::lock;
use distlock_core::{Liveness, LockError, Result};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::errors::BACKEND;
use crate::keys::lease_id_of;
use keep_alive::{keep_alive, Ended};
pub(crate) use lease::LeaseGen;

/// The lease bookkeeping of one backend client.
pub(crate) struct Session {
    cluster: Arc<Cluster>,
    session_timeout: Duration,
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
    /// A session that grants leases of `session_timeout` on `cluster`.
    pub(crate) fn new(cluster: Arc<Cluster>, session_timeout: Duration) -> Arc<Self> {
        let (shutdown, _) = watch::channel(());
        Arc::new(Session {
            cluster,
            session_timeout,
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
        if let Some(g) = self.current_usable() {
            return Ok(g);
        }
        let _granting = self.granting.lock().await;
        // A current lease that is alive but about to lapse (keep-alives
        // failing) gets no new locks; its keeper reports it lost if it lapses.
        if let Some(g) = self.current_usable() {
            return Ok(g);
        }
        let (gen, ttl) = self.grant().await?;
        // A previous lease that was about to lapse keeps its keeper: its locks
        // stay valid if its keep-alives recover, and are reported lost if not.
        lock(&self.live).insert(gen.id(), gen.clone());
        *lock(&self.current) = Some(gen.clone());
        self.keep(gen.clone(), ttl);
        Ok(gen)
    }

    /// The current lease, if it has at least a tenth of the session timeout
    /// left to live.
    fn current_usable(&self) -> Option<Arc<LeaseGen>> {
        self.current()
            .filter(|g| g.usable(self.session_timeout / 10))
    }

    /// Asks the cluster for a new lease; returns it and the ttl granted.
    ///
    /// Round trips: one (LeaseGrant).
    async fn grant(&self) -> Result<(Arc<LeaseGen>, Duration)> {
        let sent = Instant::now();
        let ttl_secs = i64::try_from(self.session_timeout.as_secs()).unwrap_or(i64::MAX);
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
        let gen = Arc::new(LeaseGen::granted(granted.id(), sent, ttl));
        tracing::debug!(lease = %format!("{:x}", gen.id()), ttl_s = ttl.as_secs(), "distlock.etcd.lease_granted");
        Ok((gen, ttl.max(Duration::from_secs(1))))
    }

    /// Starts the task that keeps `gen` alive, and acts on how it ends.
    fn keep(self: &Arc<Self>, gen: Arc<LeaseGen>, ttl: Duration) {
        let session: Weak<Session> = Arc::downgrade(self);
        let cluster = self.cluster.clone();
        let shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            match keep_alive(cluster.clone(), gen.clone(), ttl, shutdown).await {
                Ended::Lost(why) => match session.upgrade() {
                    Some(session) => session.lease_gone(&gen, &why),
                    None => {
                        gen.lost(&why);
                    }
                },
                Ended::Shutdown => revoke_on_shutdown(&cluster, &gen).await,
            }
        });
    }

    /// The lease new keys attach to, if one was granted and not lost.
    pub(crate) fn current(&self) -> Option<Arc<LeaseGen>> {
        lock(&self.current).clone()
    }

    /// The live lease with this id, if it is one of this client's.
    fn known(&self, id: i64) -> Option<Arc<LeaseGen>> {
        lock(&self.live).get(&id).cloned()
    }

    /// Whether `id` is one of this client's leases that was lost.
    fn was_lost(&self, id: i64) -> bool {
        lock(&self.lost_ids).contains(&id)
    }

    /// The liveness of the etcd lease a queue key is attached to, if it is
    /// one of this client's leases (live, or known to be lost).
    pub(crate) fn liveness_of(&self, key: &str) -> Option<watch::Receiver<Liveness>> {
        let id = lease_id_of(key)?;
        if let Some(gen) = self.known(id) {
            return Some(gen.subscribe());
        }
        if self.was_lost(id) {
            let (_, rx) = watch::channel(Liveness::Lost("the etcd lease was lost".into()));
            return Some(rx);
        }
        None
    }

    /// The live lease of this client a queue key is attached to, if any.
    pub(crate) fn lease_of_key(&self, key: &str) -> Option<Arc<LeaseGen>> {
        self.known(lease_id_of(key)?)
    }

    /// Whether the etcd lease a queue key is attached to is one of this
    /// client's that was lost.
    pub(crate) fn lost_key(&self, key: &str) -> bool {
        lease_id_of(key).is_some_and(|id| self.was_lost(id))
    }

    /// Marks `gen` lost (because the server refused a request on it, or its
    /// keep-alives lapsed), forgets it and revokes it in the background.
    pub(crate) fn lease_gone(&self, gen: &LeaseGen, why: &str) {
        if gen.lost(why) {
            tracing::warn!(lease = %format!("{:x}", gen.id()), reason = why, "distlock.etcd.lease_lost");
            self.forget(gen);
        }
    }

    /// Records a lost lease and revokes it in the background (it may still
    /// live on the server: revoking frees its keys at once for others).
    ///
    /// Round trips: one (LeaseRevoke), in the background.
    fn forget(&self, gen: &LeaseGen) {
        lock(&self.lost_ids).insert(gen.id());
        lock(&self.live).remove(&gen.id());
        {
            let mut cur = lock(&self.current);
            if cur.as_ref().map(|g| g.id()) == Some(gen.id()) {
                *cur = None;
            }
        }
        let (cluster, id) = (self.cluster.clone(), gen.id());
        tokio::spawn(async move {
            let _ = cluster
                .call("revoking a lost lease", |mut c| async move {
                    c.lease_revoke(id).await
                })
                .await;
        });
    }
}

/// The backend client was dropped: gives its locks back now rather than at
/// the lease's expiry.
///
/// Round trips: one (LeaseRevoke), bounded by one second.
async fn revoke_on_shutdown(cluster: &Cluster, gen: &LeaseGen) {
    gen.lost("the backend client was dropped");
    let id = gen.id();
    let revoke = cluster.call("revoking the lease", |mut c| async move {
        c.lease_revoke(id).await
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
}
