//! The lock algorithm: queue keys ordered by create revision, one lease per
//! client, waiting on the predecessor's deletion.
//!
//! Layout: a lock `name` is the key range `<prefix>/<escaped name>/`; each
//! acquire puts one key `<prefix>/<escaped name>/<lease id hex>-<random hex>`
//! attached to the client's lease, holding the owner token. The key with the
//! lowest create revision holds the lock; its create revision is the fencing
//! token.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlock_core::{
    percent_encode, validate_ttl, AcquireOptions, Capabilities, DistributedLock, FencingToken,
    Lease, Liveness, LockError, LockName, LockStatus, OwnerToken, Result, Wait,
};
use etcd_client::{
    Compare, CompareOp, ConnectOptions, EventType, GetOptions, GetResponse, KeyValue, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchFilterType, WatchOptions,
};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::config::EtcdConfig;
use crate::session::{drift, LeaseGen, Session};
use crate::BACKEND;

/// Longest escaped-name segment of a key; longer names are shortened with a
/// hash by [`LockName::key_within`].
const MAX_NAME_SEGMENT: usize = 512;

/// How many times one acquire grants a fresh lease after its lease was lost
/// while it waited, before it reports the error.
const MAX_LEASE_RETRIES: u32 = 3;

/// Most sub-transactions in one `extend_many` request (etcd's default
/// `--max-txn-ops` is 128).
const EXTEND_BATCH: usize = 100;

/// Attempts at deleting a key (cleanup, release) when the cluster fails.
const CLEANUP_ATTEMPTS: u32 = 3;

/// A distributed lock service on an etcd cluster.
///
/// Cheap to clone: clones share one connection and one etcd lease. Dropping
/// the last clone revokes the lease, which frees every lock it still held.
#[derive(Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Arc<Cluster>,
    session: Arc<Session>,
    config: EtcdConfig,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("url", &self.inner.config.display_url())
            .field("lease_ttl", &self.inner.config.lease_ttl())
            .field(
                "lease",
                &self
                    .inner
                    .session
                    .current()
                    .map(|g| format!("{:x}", g.id())),
            )
            .finish()
    }
}

impl EtcdBackend {
    /// Connects to the cluster a URL names (see the crate docs for the
    /// syntax) and grants this client's etcd lease.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for a malformed URL or rejected credentials;
    /// `Unavailable`/`Backend` when the cluster cannot be reached within the
    /// connect timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing behind but
    /// possibly a granted lease that expires after its ttl.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::with_config(EtcdConfig::from_url(url)?).await
    }

    /// Connects with explicit settings; see [`connect`](Self::connect).
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](Self::connect).
    pub async fn with_config(config: EtcdConfig) -> Result<Self> {
        config.validate()?;
        let shown = config.display_url();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout())
            // etcd sends GOAWAY to clients that ping more often than every 5 s.
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3))
            .with_keep_alive_while_idle(false)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        if let (Some(user), Some(password)) = (config.user(), config.password()) {
            options = options.with_user(user, password);
        }
        if config.tls() {
            let mut tls = etcd_client::TlsOptions::new();
            match config.ca() {
                Some(ca) => {
                    let pem = std::fs::read(ca).map_err(|e| {
                        LockError::invalid_config(format!(
                            "cannot read the CA certificate {} for `{shown}`: {e}",
                            ca.display()
                        ))
                    })?;
                    tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
                }
                None => tls = tls.with_native_roots(),
            }
            options = options.with_tls(tls);
        }
        let cluster = Arc::new(Cluster::new(
            config.endpoint_urls(),
            options,
            config.connect_timeout(),
            config.request_timeout(),
            shown.clone(),
            config.user().map(str::to_string),
        ));
        let session = Session::new(cluster.clone(), config.lease_ttl());
        // Grant the lease now: proves the cluster answers and the credentials
        // are good, and makes the first acquire one round trip.
        let connect_bound = config.connect_timeout() * 2 + config.request_timeout();
        tokio::time::timeout(connect_bound, session.lease())
            .await
            .map_err(|_| {
                LockError::unavailable(
                    BACKEND,
                    format!("no answer from `{shown}` within {connect_bound:?}"),
                )
            })??;
        // Check access to the key space now, so missing credentials or
        // permissions are a clear error at connect rather than at the first
        // acquire (etcd 3.4 grants leases to anyone).
        let range = format!("{}/", config.prefix());
        let probe = GetOptions::new().with_prefix().with_count_only();
        let checked = cluster
            .read("checking access to the key prefix", |mut c| {
                let (range, probe) = (range.clone(), probe.clone());
                async move { c.get(range, Some(probe)).await }
            })
            .await;
        if let Err(LockError::Backend { source, .. }) = &checked {
            let why = source.to_string();
            if why.contains("permission denied") || why.contains("user name is empty") {
                return Err(LockError::invalid_config(format!(
                    "etcd refused access to the keys under `{range}` at `{shown}` ({}): give the user read-write permission on that prefix",
                    if config.user().is_some() { "permission denied" } else { "no credentials given" }
                )));
            }
        }
        checked?;
        Ok(EtcdBackend {
            inner: Arc::new(Inner {
                cluster,
                session,
                config,
            }),
        })
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The id of the etcd lease new locks attach to, if one is live.
    pub fn lease_id(&self) -> Option<i64> {
        self.inner.session.current().map(|g| g.id())
    }

    /// The key range `<prefix>/<escaped name>/` of a lock name.
    fn name_dir(&self, name: &LockName) -> String {
        let segment = name.key_within(MAX_NAME_SEGMENT, percent_encode);
        format!("{}/{segment}/", self.inner.config.prefix())
    }

    fn queue_key(dir: &str, gen: &LeaseGen) -> String {
        let suffix: u64 = rand::random();
        format!("{dir}{:016x}-{suffix:016x}", gen.id())
    }

    fn lease_for(
        &self,
        name: &LockName,
        owner: OwnerToken,
        fence: i64,
        start: Instant,
        ttl: Duration,
        key: String,
    ) -> Lease {
        Lease::new(
            BACKEND,
            name.clone(),
            owner,
            FencingToken(u64::try_from(fence).unwrap_or(0)),
            ttl,
            valid_until(start, ttl),
        )
        .with_data(key)
    }

    /// Sends a transaction that may create our queue key. It runs inline;
    /// if the caller's future is dropped before the answer arrives, the
    /// request in flight moves to a background task that deletes the key once
    /// the transaction has landed, so a cancelled acquire never leaves a key
    /// behind (a delete sent at once could overtake the put).
    async fn txn_creating(&self, txn: Txn, key: &str) -> Result<TxnResponse> {
        let cluster = self.inner.cluster.clone();
        let request: InFlightTxn = Box::pin(async move {
            cluster
                .call("acquire transaction", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await
        });
        let mut in_flight = CreatingTxn {
            request: Some(request),
            cluster: self.inner.cluster.clone(),
            key: key.to_string(),
        };
        in_flight.finish().await
    }

    /// Tries once without queueing: creates our key only if no key exists
    /// under the name.
    ///
    /// Round trips: one (Txn: compare "no key in the range", then put).
    async fn try_once(
        &self,
        name: &LockName,
        options: &AcquireOptions,
        dir: &str,
        gen: &Arc<LeaseGen>,
    ) -> Result<Option<Lease>> {
        let owner = OwnerToken::random();
        let key = Self::queue_key(dir, gen);
        let txn = Txn::new()
            .when([Compare::create_revision(dir, CompareOp::Equal, 0).with_prefix()])
            .and_then([TxnOp::put(
                key.as_str(),
                owner.to_hex(),
                Some(PutOptions::new().with_lease(gen.id())),
            )]);
        let start = Instant::now();
        let mut cleanup = KeyCleanup::new(&self.inner.cluster, &key);
        let resp = self.txn_creating(txn, &key).await?;
        if !resp.succeeded() {
            cleanup.disarm();
            return Ok(None);
        }
        let fence = header_revision(&resp)?;
        if !gen.usable(Duration::ZERO) {
            // Granted on a lease whose life we can no longer vouch for.
            self.delete_key(&key).await;
            cleanup.disarm();
            return Err(LockError::unavailable(
                BACKEND,
                "the client's etcd lease lapsed while acquiring",
            ));
        }
        cleanup.disarm();
        tracing::debug!(lock = %name, fencing = fence, "distlock.etcd.acquired");
        Ok(Some(self.lease_for(
            name,
            owner,
            fence,
            start,
            options.ttl,
            key,
        )))
    }

    /// Queues our key and returns (our create revision, predecessor key,
    /// revision of the read).
    ///
    /// Round trips: one (Txn: put our key with the lease, then read the two
    /// newest keys under the name — ours and the one just before it).
    async fn enqueue(
        &self,
        dir: &str,
        key: &str,
        owner: OwnerToken,
        gen: &LeaseGen,
    ) -> Result<(i64, Option<String>, i64)> {
        let newest_two = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(2)
            .with_keys_only();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(
                    key,
                    owner.to_hex(),
                    Some(PutOptions::new().with_lease(gen.id())),
                ),
                TxnOp::get(dir, Some(newest_two)),
            ]);
        let resp = self.txn_creating(txn, key).await?;
        if !resp.succeeded() {
            return Err(LockError::backend(
                BACKEND,
                "queue key already existed",
                "random queue key collision",
            ));
        }
        let revision = header_revision(&resp)?;
        let kvs = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            })
            .map(|mut g| g.take_kvs())
            .unwrap_or_default();
        let (mine, predecessor) = split_queue(&kvs, key);
        Ok((mine.unwrap_or(revision), predecessor, revision))
    }

    /// After a predecessor went away: is our key still there, and who is
    /// just before it now?
    ///
    /// The read is serializable (answered by the member without a quorum
    /// round): it may lag, but keys created before ours are only ever
    /// deleted, never created, so a member that shows our key and no older
    /// one shows the truth about "no predecessor", now and forever after.
    /// A lagging answer can only make us wait longer.
    ///
    /// Round trips: one (Range over the name, created at or before us, newest
    /// two).
    async fn recheck(&self, dir: &str, key: &str, mine: i64) -> Result<Recheck> {
        let options = GetOptions::new()
            .with_serializable()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_max_create_revision(mine)
            .with_limit(2)
            .with_keys_only();
        let resp = self
            .inner
            .cluster
            .read("queue read", |mut c| {
                let options = options.clone();
                async move { c.get(dir, Some(options)).await }
            })
            .await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let (found, predecessor) = split_queue(resp.kvs(), key);
        if found != Some(mine) {
            return Ok(Recheck::Gone);
        }
        Ok(match predecessor {
            None => Recheck::First,
            Some(p) => Recheck::Behind(p, revision),
        })
    }

    /// Waits until `predecessor` is deleted (after `read_revision`, the
    /// revision of the read that found it), the deadline passes, or our
    /// lease is lost.
    ///
    /// The watch must be *synced* in etcd's terms: a watch whose start
    /// revision is already in the past is served by a catch-up loop that runs
    /// every 100 ms, which would add up to 100 ms to the handoff. Starting it
    /// at `read_revision + 1` is synced only while nobody wrote since our
    /// read, which under contention is rarely true. So the watch starts at
    /// the member's current revision (always synced), and the created
    /// response says which: `watch_revision`. If others wrote since our read,
    /// the predecessor may have gone in between: one serializable read at
    /// exactly `watch_revision`, on the same member, closes that gap.
    ///
    /// Round trips: one to open the watch (plus one local read when the
    /// revision moved since our read), then none until the event.
    async fn wait_for_delete(
        &self,
        predecessor: &str,
        read_revision: i64,
        deadline: Option<Instant>,
        lease: &mut watch::Receiver<Liveness>,
    ) -> WaitOutcome {
        let request_timeout = self.inner.cluster.request_timeout();
        let waiting = async {
            let Ok((i, client)) = self.inner.cluster.pick().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return WaitOutcome::Recheck;
            };
            let endpoint_failed = || async {
                self.inner.cluster.failed(i);
                tokio::time::sleep(Duration::from_millis(50)).await;
                WaitOutcome::Recheck
            };
            let options = WatchOptions::new().with_filters([WatchFilterType::NoPut]);
            let mut watcher = client.watch_client();
            let opening = async {
                let mut stream = watcher.watch(predecessor, Some(options)).await?;
                let created = stream.message().await?;
                Ok::<_, etcd_client::Error>((stream, created))
            };
            let (mut stream, created) = match tokio::time::timeout(request_timeout, opening).await {
                Ok(Ok((stream, Some(created)))) if created.created() => (stream, created),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "distlock.etcd.watch_failed");
                    return endpoint_failed().await;
                }
                _ => return endpoint_failed().await,
            };
            let watch_revision = created.header().map(|h| h.revision()).unwrap_or(0);
            if watch_revision != read_revision {
                // Writes happened between our read and the watch: is the
                // predecessor still there at the revision the watch starts
                // after? (Same member, so it has that revision.)
                let mut kv = client.kv_client();
                let at = GetOptions::new()
                    .with_revision(watch_revision)
                    .with_serializable()
                    .with_count_only();
                match tokio::time::timeout(request_timeout, kv.get(predecessor, Some(at))).await {
                    Ok(Ok(r)) if r.count() > 0 => {}
                    _ => return WaitOutcome::Recheck,
                }
            }
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp
                            .events()
                            .iter()
                            .any(|e| e.event_type() == EventType::Delete)
                            || resp.canceled()
                        {
                            return WaitOutcome::Recheck;
                        }
                    }
                    Ok(None) | Err(_) => return endpoint_failed().await,
                }
            }
        };
        let lease_lost = async {
            loop {
                if matches!(*lease.borrow_and_update(), Liveness::Lost(_)) {
                    return;
                }
                if lease.changed().await.is_err() {
                    return;
                }
            }
        };
        let deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = waiting => outcome,
            _ = lease_lost => WaitOutcome::LeaseLost,
            _ = deadline => WaitOutcome::Deadline,
        }
    }

    /// Deletes a key, ignoring errors (the lease removes it at worst).
    ///
    /// Round trips: one (DeleteRange).
    async fn delete_key(&self, key: &str) {
        delete_in(&self.inner.cluster, key.to_string()).await;
    }

    /// One transaction through the active endpoint.
    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.inner
            .cluster
            .call(what, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
    }

    /// One compare-only transaction (retried on the next endpoint after a
    /// transport failure: it changes nothing).
    async fn txn_read(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.inner
            .cluster
            .read(what, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
    }

    /// Checks that `lease` belongs to this backend and its key to its name;
    /// returns the key.
    fn key_of<'a>(&self, lease: &'a Lease) -> Result<&'a str> {
        lease.check_backend(BACKEND)?;
        let key = lease.data();
        if !key.starts_with(&self.name_dir(lease.name())) {
            return Err(LockError::InvalidLease {
                reason: "the lease's etcd key does not belong to its lock name under this prefix"
                    .into(),
            });
        }
        Ok(key)
    }

    fn held_compares(key: &str, lease: &Lease) -> Vec<Compare> {
        let fence = i64::try_from(lease.fencing_token().get()).unwrap_or(i64::MAX);
        vec![
            Compare::create_revision(key, CompareOp::Equal, fence),
            Compare::value(key, CompareOp::Equal, lease.owner().to_hex()),
        ]
    }

    /// Refuses leases whose etcd lease this client already knows is lost.
    fn check_not_lost(&self, lease: &Lease) -> Result<()> {
        if let Some(id) = lease_id_of(lease.data()) {
            if self.inner.session.was_lost(id) {
                return Err(LockError::not_held(lease.name().as_str()));
            }
        }
        Ok(())
    }
}

enum Recheck {
    /// Our key is the oldest: we hold the lock.
    First,
    /// Still waiting behind this key; the read was at this revision.
    Behind(String, i64),
    /// Our key is gone (its lease expired or it was deleted).
    Gone,
}

enum WaitOutcome {
    Recheck,
    LeaseLost,
    Deadline,
}

/// From the newest keys under a name (create revision descending, ours among
/// them): our create revision and the key just before ours.
fn split_queue(kvs: &[KeyValue], key: &str) -> (Option<i64>, Option<String>) {
    let Some(pos) = kvs.iter().position(|kv| kv.key() == key.as_bytes()) else {
        return (None, None);
    };
    let mine = kvs[pos].create_revision();
    let predecessor = kvs
        .iter()
        .skip(pos + 1)
        .find(|kv| kv.create_revision() < mine)
        .and_then(|kv| kv.key_str().ok().map(str::to_string));
    (Some(mine), predecessor)
}

fn header_revision(resp: &TxnResponse) -> Result<i64> {
    resp.header().map(|h| h.revision()).ok_or_else(|| {
        LockError::backend(BACKEND, "transaction answer", "response without a header")
    })
}

fn valid_until(start: Instant, ttl: Duration) -> Instant {
    start + ttl.saturating_sub(drift(ttl))
}

/// The etcd lease id encoded in a queue key (`…/<lease hex>-<random hex>`).
fn lease_id_of(key: &str) -> Option<i64> {
    let last = key.rsplit('/').next()?;
    let (lease, _) = last.split_once('-')?;
    u64::from_str_radix(lease, 16).ok().map(|v| v as i64)
}

/// Deletes a key. A key left behind would block the lock for as long as this
/// client's lease lives, so a failed delete is retried (deleting is
/// idempotent) before giving up with a warning.
///
/// Round trips: one (DeleteRange), more only on failures.
async fn delete_in(cluster: &Cluster, key: String) {
    for attempt in 1..=CLEANUP_ATTEMPTS {
        let deleted = cluster
            .call("queue key cleanup", |mut c| {
                let key = key.clone();
                async move { c.delete(key, None).await }
            })
            .await;
        match deleted {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(key, attempt, error = %e, "distlock.etcd.cleanup_failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::warn!(
        key,
        "distlock.etcd.cleanup_gave_up: the key stays until the client's lease ends"
    );
}

type InFlightTxn = std::pin::Pin<Box<dyn std::future::Future<Output = Result<TxnResponse>> + Send>>;

/// A transaction that may create a queue key, polled by the acquire that
/// sent it; dropped before it finished, it completes in the background and
/// the key it created is deleted.
struct CreatingTxn {
    request: Option<InFlightTxn>,
    cluster: Arc<Cluster>,
    key: String,
}

impl CreatingTxn {
    async fn finish(&mut self) -> Result<TxnResponse> {
        let result = match self.request.as_mut() {
            Some(request) => request.await,
            None => Err(LockError::unavailable(
                BACKEND,
                "transaction already finished",
            )),
        };
        self.request = None;
        result
    }
}

impl Drop for CreatingTxn {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        let (cluster, key) = (self.cluster.clone(), std::mem::take(&mut self.key));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if request.await.is_ok() {
                    delete_in(&cluster, key).await;
                }
            });
        }
    }
}

/// Deletes a queue key in the background if dropped while armed: the
/// cancellation path of `acquire`.
struct KeyCleanup {
    armed: Option<(Arc<Cluster>, String)>,
}

impl KeyCleanup {
    fn new(cluster: &Arc<Cluster>, key: &str) -> Self {
        KeyCleanup {
            armed: Some((cluster.clone(), key.to_string())),
        }
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for KeyCleanup {
    fn drop(&mut self) {
        let Some((cluster, key)) = self.armed.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { delete_in(&cluster, key).await });
        }
    }
}

#[async_trait]
impl DistributedLock for EtcdBackend {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::builder()
            .fencing(true)
            .fifo(true)
            .wait_notification(true)
            .session_liveness(true)
            .ttl_expiry(false)
            .lease_handoff(true)
            .cross_process(true)
            .batch_extend(true)
            .min_ttl(Duration::from_millis(100))
            .build()
    }

    /// Round trips: with `Wait::NoWait`, one (a Txn that puts our key only if
    /// no key exists under the name). Otherwise one Txn to queue our key and
    /// read our predecessor (the lock is ours if there is none), then per
    /// predecessor: one to open a watch on it, and one Range when it goes.
    /// Giving up at the deadline costs one DeleteRange.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future deletes our queue key in the background (also a
    /// key whose creating transaction was still in flight, once it lands).
    async fn acquire(&self, name: &LockName, options: &AcquireOptions) -> Result<Option<Lease>> {
        options.validate(&self.capabilities())?;
        let dir = self.name_dir(name);
        let deadline = options.wait.deadline(Instant::now());
        if options.wait == Wait::NoWait {
            let gen = self.inner.session.lease().await?;
            return match self.try_once(name, options, &dir, &gen).await {
                Err(e) if is_lease_not_found(&e) => {
                    // Our lease expired on the server unnoticed: once more on a
                    // fresh one.
                    self.inner
                        .session
                        .lease_gone(&gen, "the server no longer knows the lease");
                    let gen = self.inner.session.lease().await?;
                    self.try_once(name, options, &dir, &gen).await
                }
                other => other,
            };
        }
        let mut retries = 0;
        'queue: loop {
            let gen = self.inner.session.lease().await?;
            let mut lease_state = gen.subscribe();
            let owner = OwnerToken::random();
            let key = Self::queue_key(&dir, &gen);
            let mut cleanup = KeyCleanup::new(&self.inner.cluster, &key);
            let mut start = Instant::now();
            let (mine, mut predecessor, mut revision) =
                match self.enqueue(&dir, &key, owner, &gen).await {
                    Ok(v) => v,
                    Err(e) if is_lease_not_found(&e) && retries < MAX_LEASE_RETRIES => {
                        retries += 1;
                        self.inner
                            .session
                            .lease_gone(&gen, "the server no longer knows the lease");
                        continue 'queue;
                    }
                    Err(e) => return Err(e),
                };
            tracing::debug!(lock = %name, key, revision = mine, "distlock.etcd.queued");
            loop {
                let Some(pred) = predecessor.take() else {
                    // Oldest key: ours. A lock is never handed out on a lease
                    // we cannot vouch for.
                    if !gen.usable(Duration::ZERO) {
                        self.delete_key(&key).await;
                        cleanup.disarm();
                        if retries < MAX_LEASE_RETRIES {
                            retries += 1;
                            continue 'queue;
                        }
                        return Err(LockError::unavailable(
                            BACKEND,
                            "the client's etcd lease lapsed while acquiring",
                        ));
                    }
                    cleanup.disarm();
                    tracing::debug!(lock = %name, fencing = mine, "distlock.etcd.acquired");
                    return Ok(Some(self.lease_for(
                        name,
                        owner,
                        mine,
                        start,
                        options.ttl,
                        key,
                    )));
                };
                match self
                    .wait_for_delete(&pred, revision, deadline, &mut lease_state)
                    .await
                {
                    WaitOutcome::Recheck => {}
                    WaitOutcome::Deadline => {
                        self.delete_key(&key).await;
                        cleanup.disarm();
                        return Ok(None);
                    }
                    WaitOutcome::LeaseLost => {
                        self.delete_key(&key).await;
                        cleanup.disarm();
                        if retries < MAX_LEASE_RETRIES {
                            retries += 1;
                            continue 'queue;
                        }
                        return Err(LockError::unavailable(
                            BACKEND,
                            "the client's etcd lease was lost while waiting",
                        ));
                    }
                }
                start = Instant::now();
                match self.recheck(&dir, &key, mine).await? {
                    Recheck::First => predecessor = None,
                    Recheck::Behind(p, r) => {
                        predecessor = Some(p);
                        revision = r;
                    }
                    Recheck::Gone => {
                        // Gone, or a lagging member has not seen it yet:
                        // delete it either way before queueing again.
                        self.delete_key(&key).await;
                        cleanup.disarm();
                        if retries < MAX_LEASE_RETRIES {
                            retries += 1;
                            continue 'queue;
                        }
                        return Err(LockError::unavailable(
                            BACKEND,
                            "our queue key vanished while waiting (lease expired)",
                        ));
                    }
                }
            }
        }
    }

    /// Round trips: one (Txn: compare create revision and owner token; the
    /// key existing proves its etcd lease alive on the server).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the transaction only reads.
    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let key = self.key_of(lease)?;
        validate_ttl(ttl, &self.capabilities())?;
        self.check_not_lost(lease)?;
        let start = Instant::now();
        let txn = Txn::new().when(Self::held_compares(key, lease));
        let resp = self.txn_read("extend", txn).await?;
        if !resp.succeeded() {
            tracing::warn!(lock = %lease.name(), "distlock.etcd.extend_refused");
            return Err(LockError::not_held(lease.name().as_str()));
        }
        tracing::debug!(lock = %lease.name(), "distlock.etcd.extended");
        Ok(lease.renewed(ttl, valid_until(start, ttl)))
    }

    /// Round trips: one per 100 leases (a Txn of sub-transactions, each
    /// comparing one key).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the transactions only read.
    async fn extend_many(&self, leases: &[Lease]) -> Vec<Result<Lease>> {
        let mut results: Vec<Option<Result<Lease>>> = Vec::with_capacity(leases.len());
        let mut pending = Vec::new();
        for (i, lease) in leases.iter().enumerate() {
            let checked = self.key_of(lease).and_then(|k| {
                validate_ttl(lease.ttl(), &self.capabilities())?;
                self.check_not_lost(lease)?;
                Ok(k.to_string())
            });
            match checked {
                Ok(key) => {
                    results.push(None);
                    pending.push((i, key));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        for chunk in pending.chunks(EXTEND_BATCH) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(i, key)| TxnOp::txn(Txn::new().when(Self::held_compares(key, &leases[*i]))))
                .collect();
            let start = Instant::now();
            let answer = self
                .txn_read("batched extend", Txn::new().and_then(ops))
                .await;
            match answer {
                Ok(resp) => {
                    let subs = resp.op_responses();
                    for (n, (i, _)) in chunk.iter().enumerate() {
                        let lease = &leases[*i];
                        let held =
                            matches!(subs.get(n), Some(TxnOpResponse::Txn(t)) if t.succeeded());
                        results[*i] = Some(if held {
                            Ok(lease.renewed(lease.ttl(), valid_until(start, lease.ttl())))
                        } else {
                            tracing::warn!(lock = %lease.name(), "distlock.etcd.extend_refused");
                            Err(LockError::not_held(lease.name().as_str()))
                        });
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, _) in chunk {
                        results[*i] = Some(Err(LockError::unavailable(BACKEND, msg.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(LockError::unavailable(BACKEND, "not attempted"))))
            .collect()
    }

    /// Round trips: one (Txn: compare create revision and owner token, then
    /// delete). The deletion wakes the next waiter's watch.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have deleted the key; if not, the
    /// lock stays held until released again or the client's lease ends.
    /// (A transient failure is retried up to three times: a key left behind
    /// would hold the lock for as long as this client lives.)
    async fn release(&self, lease: &Lease) -> Result<()> {
        let key = self.key_of(lease)?;
        let txn = Txn::new()
            .when(Self::held_compares(key, lease))
            .and_then([TxnOp::delete(key, None)]);
        // A failed attempt may still have deleted the key, so after a failure a
        // refused compare means "released" rather than "not held".
        let mut failed_before = false;
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match self.txn("release", txn.clone()).await {
                Ok(resp) => break resp,
                Err(e) if e.is_transient() && attempt < CLEANUP_ATTEMPTS => {
                    failed_before = true;
                    tracing::debug!(lock = %lease.name(), error = %e, "distlock.etcd.release_retry");
                }
                Err(e) => return Err(e),
            }
        };
        if !resp.succeeded() && !failed_before {
            return Err(LockError::not_held(lease.name().as_str()));
        }
        tracing::debug!(lock = %lease.name(), "distlock.etcd.released");
        Ok(())
    }

    fn liveness(&self, lease: &Lease) -> Option<watch::Receiver<Liveness>> {
        let id = lease_id_of(lease.data())?;
        if let Some(gen) = self.inner.session.known(id) {
            return Some(gen.subscribe());
        }
        if self.inner.session.was_lost(id) {
            let (_, rx) = watch::channel(Liveness::Lost("the etcd lease was lost".into()));
            return Some(rx);
        }
        None
    }

    /// Round trips: one (Range over the name, oldest first, limit 1, with
    /// the total count).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn status(&self, name: &LockName) -> Result<LockStatus> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1)
            .with_keys_only();
        let dir = self.name_dir(name);
        let resp: GetResponse = self
            .inner
            .cluster
            .read("status read", |mut c| {
                let (dir, options) = (dir.clone(), options.clone());
                async move { c.get(dir, Some(options)).await }
            })
            .await?;
        let count = usize::try_from(resp.count()).unwrap_or(0);
        let holder = resp.kvs().first().map(|kv| kv.create_revision());
        Ok(LockStatus::new(
            holder.is_some(),
            holder.map(|r| FencingToken(u64::try_from(r).unwrap_or(0))),
            None,
            Some(count.saturating_sub(1)),
        ))
    }
}

fn is_lease_not_found(e: &LockError) -> bool {
    match e {
        LockError::Backend { source, .. } => source.to_string().contains("lease not found"),
        _ => false,
    }
}
