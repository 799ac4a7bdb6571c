//! Redis Cluster under faults, on private clusters of the test's own (so
//! the shared cluster the suite uses is never disturbed):
//!
//! - a grant the promoted replica never saw (the replica stopped and its
//!   link cut, the primary killed, the replica taking over): lost without `replicas=`, so
//!   a second holder is granted while the first still holds, and refused
//!   with `replicas=1`; fencing tokens rise across it either way, where the
//!   counter-only backend's go back;
//! - the primary of a contended lock's slot killed, the cluster failing
//!   over on its own: contention resumes on the new primary, tokens keep
//!   rising, and with `replicas=1` no two holds overlap (the figures are
//!   printed: `--nocapture`);
//! - the lock's slot resharded to another primary while one client holds a
//!   lock there and others contend for another: MOVED/ASK/TRYAGAIN are
//!   followed, the holder keeps extending, nothing overlaps.

mod private_redis;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, OwnerToken, Wait};
use distlock_redis::{RedisBackend, RedisConfig};
use private_redis::cluster::{cluster_cmd, conn, PrivateCluster};

const PREFIX: &str = "faults-cluster:";

fn name(case: &str) -> LockName {
    LockName::new(format!("cluster/{case}/{}", OwnerToken::random().to_hex())).unwrap()
}

/// A client of `url`: as shipped, or (`counter_only`) issuing tokens from
/// the counter alone.
async fn client(url: &str, counter_only: bool) -> Arc<dyn DistributedLock> {
    let config = RedisConfig::from_url(url).unwrap();
    let backend = if counter_only {
        RedisBackend::from_config_counter_only_tokens(config).await
    } else {
        RedisBackend::from_config(config).await
    };
    Arc::new(backend.unwrap_or_else(|e| panic!("cannot reach the private cluster {url}: {e}")))
}

/// Waits until every write made on `nodes[primary]` so far reached its
/// replica: a probe written and `WAIT`ed for on one connection
/// (replication keeps order).
async fn replicated(cluster: &PrivateCluster, primary: usize, key: &str) {
    let mut c = conn(&cluster.nodes[primary].addr()).await;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("probe")
        .query_async(&mut c)
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica did not catch up");
}

/// What happened to a grant the promoted replica never saw.
#[derive(Debug)]
struct Takeover {
    /// The first holder's grant: `None` when it was refused.
    first: Option<u64>,
    /// The token of a grant made (and replicated) before.
    earlier: u64,
    /// The second holder's token, after the takeover.
    second: u64,
    /// The second holder was granted while the first one's lease was
    /// still valid.
    overlapped: bool,
}

/// One primary (every slot) and its replica. The replica is stopped and
/// cut off, the first client acquires, the primary is killed, the replica takes over,
/// and a second client acquires.
async fn grant_unseen_by_the_promoted_replica(params: &str, counter_only: bool) -> Takeover {
    let mut cluster = PrivateCluster::start(1, 1).await;
    let url = cluster.url(&format!("prefix={PREFIX}&{params}"));
    let lock = name("takeover");
    let ttl = Duration::from_secs(30);
    let first_client = client(&url, counter_only).await;
    // The replica is in sync before anything is asked of it.
    replicated(&cluster, 0, "{probe}").await;
    let earlier = first_client
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free lock");
    first_client.release(&earlier).await.unwrap();
    replicated(&cluster, 0, "{probe}").await;

    // The replica stopped and its link cut (so nothing reaches it, not
    // even what a socket buffer would have kept for it).
    cluster.nodes[1].signal("STOP");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut conn(&cluster.nodes[0].addr()).await)
        .await
        .unwrap();
    let first = match first_client
        .acquire(&lock, &AcquireOptions::try_once(ttl))
        .await
    {
        Ok(Some(lease)) => Some(lease),
        Ok(None) => panic!("the lock is free"),
        Err(LockError::Unavailable { .. }) => None,
        Err(e) => panic!("unexpected error: {e}"),
    };
    cluster.nodes[0].kill();
    cluster.nodes[1].signal("CONT");
    let _: () = cluster_cmd(&cluster.nodes[1].addr(), &["FAILOVER", "TAKEOVER"])
        .await
        .unwrap();
    cluster
        .settle(|| async {
            let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE")
                .query_async(&mut conn(&cluster.nodes[1].addr()).await)
                .await;
            matches!(role.ok().and_then(|r| r.into_iter().next()),
                Some(redis::Value::BulkString(r)) if r == b"master")
        })
        .await;

    // The new primary has no replica: the second client does not ask for one.
    let second_url = cluster.url(&format!("prefix={PREFIX}"));
    let second_client = client(&second_url, counter_only).await;
    let second = second_client
        .acquire(
            &lock,
            &AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(10))),
        )
        .await
        .unwrap()
        .expect("granted after the takeover");
    let overlapped = first
        .as_ref()
        .is_some_and(|lease| lease.valid_until() > Instant::now());
    Takeover {
        first: first.map(|l| l.fencing_token().get()),
        earlier: earlier.fencing_token().get(),
        second: second.fencing_token().get(),
        overlapped,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cluster_a_grant_the_promoted_replica_never_saw_is_lost_without_replicas() {
    let t = grant_unseen_by_the_promoted_replica("", false).await;
    let first = t.first.expect("granted without waiting for replicas");
    assert!(
        t.overlapped,
        "the second client was not granted while the first held ({t:?}): the test cannot show what `replicas` is for"
    );
    assert!(
        t.second > first && first > t.earlier,
        "tokens did not rise across the takeover: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cluster_counter_only_tokens_go_back_across_a_takeover() {
    let t = grant_unseen_by_the_promoted_replica("", true).await;
    let first = t.first.expect("granted without waiting for replicas");
    assert!(
        t.second <= first,
        "counter-only tokens rose across the takeover: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cluster_with_replicas_a_grant_the_replica_did_not_acknowledge_is_refused() {
    let t = grant_unseen_by_the_promoted_replica("replicas=1&replica_timeout=300ms", false).await;
    assert_eq!(
        t.first, None,
        "granted though its replica never acknowledged it: {t:?}"
    );
    assert!(!t.overlapped && t.second > t.earlier, "{t:?}");
}

/// One grant as its holder saw it.
#[derive(Clone, Copy, Debug)]
struct Hold {
    token: u64,
    /// When the acquire was sent, and when it returned.
    asked: Instant,
    from: Instant,
    /// When the holder stopped counting on it: its release sent, or its
    /// validity's end.
    to: Instant,
}

/// What a run of contending clients saw.
#[derive(Default)]
struct Record {
    holds: Vec<Hold>,
    /// Calls that failed (`Unavailable` while the slot had no primary, a
    /// release of a hold that was lost).
    errors: usize,
}

impl Record {
    /// Pairs of holds that overlapped.
    fn overlaps(&self) -> usize {
        let mut holds = self.holds.clone();
        holds.sort_by_key(|h| h.from);
        holds
            .windows(2)
            .filter(|w| w[1].from < w[0].to.min(w[1].to))
            .count()
    }

    /// A grant whose token is not above the token of a hold that ended
    /// before the grant was asked for.
    fn token_went_back(&self) -> Option<(Hold, Hold)> {
        for later in &self.holds {
            for earlier in &self.holds {
                if earlier.to < later.asked && earlier.token >= later.token {
                    return Some((*earlier, *later));
                }
            }
        }
        None
    }

    /// The longest time between one hold's end and the next hold's start.
    fn longest_gap(&self) -> Duration {
        let mut holds = self.holds.clone();
        holds.sort_by_key(|h| h.from);
        holds
            .windows(2)
            .map(|w| w[1].from.saturating_duration_since(w[0].to))
            .max()
            .unwrap_or_default()
    }
}

/// `clients` clients contending for `lock` (each hold 2 ms, ttl 2 s) until
/// `stop` is set; every hold recorded in `record`.
fn contend(
    url: &str,
    lock: &LockName,
    clients: usize,
    record: &Arc<Mutex<Record>>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (url, lock, record, stop) =
                (url.to_string(), lock.clone(), record.clone(), stop.clone());
            tokio::spawn(async move {
                let c = client(&url, false).await;
                let options = AcquireOptions::new(Duration::from_secs(2))
                    .with_wait(Wait::For(Duration::from_secs(1)));
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let asked = Instant::now();
                    let lease = match c.acquire(&lock, &options).await {
                        Ok(Some(lease)) => lease,
                        Ok(None) => continue,
                        Err(_) => {
                            record.lock().unwrap().errors += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let from = Instant::now();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let to = Instant::now().min(lease.valid_until());
                    let released = c.release(&lease).await;
                    let mut r = record.lock().unwrap();
                    r.errors += usize::from(released.is_err());
                    r.holds.push(Hold {
                        token: lease.fencing_token().get(),
                        asked,
                        from,
                        to,
                    });
                }
            })
        })
        .collect()
}

/// Waits until `record` holds `more` holds beyond `from` (an event:
/// polled every 10 ms), at most `within`.
async fn holds_beyond(
    record: &Arc<Mutex<Record>>,
    from: usize,
    more: usize,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if record.lock().unwrap().holds.len() >= from + more {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Three primaries with two replicas each; four clients contend for one
/// lock; its slot's primary is killed and the cluster fails over by itself.
async fn primary_killed_under_contention(params: &str) -> Record {
    let mut cluster = PrivateCluster::start(3, 2).await;
    let url = cluster.url(&format!("prefix={PREFIX}&{params}"));
    let lock = name("contended-failover");
    let slot = cluster.slot_of(&format!("{{{PREFIX}{lock}}}:lock")).await;
    let primary = cluster.primary_of(slot, 0).await;
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = contend(&url, &lock, 4, &record, &stop);
    assert!(
        holds_beyond(&record, 0, 100, Duration::from_secs(30)).await,
        "no contention before the kill"
    );
    let killed_at = Instant::now();
    let before = record.lock().unwrap().holds.len();
    cluster.nodes[primary].kill();
    let resumed = holds_beyond(&record, before, 100, Duration::from_secs(60)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(resumed, "contention did not resume within 60 s of the kill");
    let record = Arc::try_unwrap(record).ok().unwrap().into_inner().unwrap();
    let first_after = record
        .holds
        .iter()
        .filter(|h| h.from > killed_at)
        .map(|h| h.from)
        .min()
        .unwrap_or(killed_at);
    println!(
        "{params:?}: {} holds, {} failed calls, longest gap {:?}, first grant {:?} after the kill, {} overlaps",
        record.holds.len(),
        record.errors,
        record.longest_gap(),
        first_after - killed_at,
        record.overlaps()
    );
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_cluster_primary_killed_under_contention_with_replicas() {
    let record = primary_killed_under_contention("replicas=1&replica_timeout=300ms").await;
    assert_eq!(record.overlaps(), 0, "holds overlapped across the failover");
    assert_eq!(record.token_went_back().map(|p| format!("{p:?}")), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_cluster_primary_killed_under_contention_tokens_rise() {
    let record = primary_killed_under_contention("").await;
    assert_eq!(record.token_went_back().map(|p| format!("{p:?}")), None);
}

/// The slot of a lock name's keys (`{<prefix><name>}`: CRC16/XMODEM of the
/// tag, as Redis Cluster computes it).
fn slot(lock: &LockName) -> u16 {
    let mut crc: u16 = 0;
    for b in format!("{PREFIX}{lock}").bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Moves `slot` from `nodes[from]` to `nodes[to]`, key by key, as
/// `redis-cli --cluster reshard` does.
async fn move_slot(cluster: &PrivateCluster, slot: u16, from: usize, to: usize) {
    let (source, target) = (cluster.nodes[from].addr(), cluster.nodes[to].addr());
    let (source_id, target_id) = (cluster.id(from).await, cluster.id(to).await);
    let s = slot.to_string();
    let _: () = cluster_cmd(&target, &["SETSLOT", &s, "IMPORTING", &source_id])
        .await
        .unwrap();
    let _: () = cluster_cmd(&source, &["SETSLOT", &s, "MIGRATING", &target_id])
        .await
        .unwrap();
    let port = cluster.nodes[to].port();
    loop {
        let keys: Vec<String> = cluster_cmd(&source, &["GETKEYSINSLOT", &s, "10"])
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        for key in keys {
            let _: redis::Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(port)
                .arg(&key)
                .arg(0)
                .arg(5000)
                .query_async(&mut conn(&source).await)
                .await
                .unwrap();
            // Leaves the clients time to meet the half-moved slot.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for node in [&target, &source] {
        let _: () = cluster_cmd(node, &["SETSLOT", &s, "NODE", &target_id])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_cluster_a_slot_resharded_while_locks_are_held() {
    let cluster = PrivateCluster::start(2, 0).await;
    let url = cluster.url(&format!("prefix={PREFIX}"));
    let contended = name("resharded");
    let target_slot = slot(&contended);
    let held = (0..)
        .map(|i| name(&format!("held-{i}")))
        .find(|n| slot(n) == target_slot)
        .expect("a name in the same slot");
    assert_eq!(
        cluster.slot_of(&format!("{{{PREFIX}{held}}}:lock")).await,
        target_slot
    );
    let from = cluster.primary_of(target_slot, 0).await;
    let to = 1 - from;

    let holder = client(&url, false).await;
    let ttl = Duration::from_secs(3);
    let mut lease = holder
        .acquire(&held, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free lock");
    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = contend(&url, &contended, 4, &record, &stop);
    assert!(holds_beyond(&record, 0, 50, Duration::from_secs(30)).await);

    let mover = tokio::spawn({
        let slot = target_slot;
        async move {
            move_slot(&cluster, slot, from, to).await;
            cluster
        }
    });
    while !mover.is_finished() {
        lease = holder
            .extend(&lease, ttl)
            .await
            .unwrap_or_else(|e| panic!("the holder could not extend during the move: {e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cluster = mover.await.unwrap();
    let moved = record.lock().unwrap().holds.len();
    assert!(
        holds_beyond(&record, moved, 50, Duration::from_secs(30)).await,
        "contention did not go on after the move"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    lease = holder.extend(&lease, ttl).await.unwrap();
    assert_eq!(
        cluster.primary_of(target_slot, to).await,
        to,
        "the slot did not move"
    );
    let mut on_target = conn(&cluster.nodes[to].addr()).await;
    let there: Option<String> = redis::cmd("GET")
        .arg(format!("{{{PREFIX}{held}}}:lock"))
        .query_async(&mut on_target)
        .await
        .unwrap();
    assert_eq!(
        there,
        Some(lease.owner().to_hex()),
        "the held lock is not on the new primary"
    );
    holder.release(&lease).await.unwrap();

    let record = Arc::try_unwrap(record).ok().unwrap().into_inner().unwrap();
    println!(
        "resharding: {} holds, {} failed calls, longest gap {:?}",
        record.holds.len(),
        record.errors,
        record.longest_gap()
    );
    assert_eq!(record.overlaps(), 0, "holds overlapped during the move");
    assert_eq!(record.token_went_back().map(|p| format!("{p:?}")), None);
}
