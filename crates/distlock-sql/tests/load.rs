//! Both strategies under load, on every database: one client with 64
//! acquisitions in flight is served without `Unavailable` (a busy pool is
//! waited for, within the caller's wait); clients contending for one name
//! are served in turn where waiters poll (the queue of waiters); on
//! PostgreSQL a release wakes one waiter, who passes the wake on; clients
//! taking names new to the table all at once are served (no deadlock
//! reaches them); and one
//! client keeps 10 000 locks alive for a long hold, extending them in
//! batches (table) or keeping its sessions alive (session; the session
//! strategy's own load cases are in `tests/session.rs`).
//!
//! Tries queued on one session are each bounded from when they are sent.
//!
//! The hold test is named `faults_…`: it keeps the servers busy for tens
//! of seconds and needs its watchdog undisturbed, so it runs in the serial
//! phase. `DISTLOCK_HOLD_SECS` sets how long it holds (default 20 s).
// Some helpers serve only the tests of some database features.
#![allow(dead_code)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, Backoff, DistributedLock, Lease, LockClient, LockError, LockName, Mode, Wait,
};
use distlock_sql::SqlBackend;
use futures::StreamExt;

use common::connect;

/// Acquisitions one client keeps in flight.
const IN_FLIGHT: usize = 64;

fn name(test: &str, what: &str) -> LockName {
    LockName::new(format!("load/{test}/{}/{what}", common::unique())).unwrap()
}

/// Whether `e` says the database (or the pool) did not answer.
fn unavailable(e: &LockError) -> bool {
    matches!(e, LockError::Unavailable { .. })
}

/// 64 acquisitions in flight from one client on default settings (a pool
/// of 4): first on 64 names, then on one name, each waiting its turn. All
/// are served, none fails with `Unavailable`.
async fn many_acquisitions_in_flight_are_served(what: &str, url: &str) {
    let client = LockClient::new(Arc::new(connect(what, url).await));
    let distinct = futures::future::join_all((0..IN_FLIGHT).map(|i| {
        let client = &client;
        async move {
            let guard = client.lock(name("distinct", &i.to_string())).await?;
            guard.release().await
        }
    }))
    .await;
    for (i, outcome) in distinct.into_iter().enumerate() {
        if let Err(e) = outcome {
            assert!(!unavailable(&e), "{what}: acquisition {i} of 64 names: {e}");
            panic!("{what}: acquisition {i} of 64 names failed: {e}");
        }
    }

    let shared = name("shared", "one");
    let served = futures::future::join_all((0..IN_FLIGHT).map(|_| {
        let (client, shared) = (&client, shared.clone());
        async move {
            let guard = client.lock(shared).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            guard.release().await
        }
    }))
    .await;
    for (i, outcome) in served.into_iter().enumerate() {
        if let Err(e) = outcome {
            panic!("{what}: acquisition {i} of 64 on one name failed: {e}");
        }
    }
}

/// One acquisition of the contention test: who, when it asked, when it
/// was granted.
#[derive(Clone, Copy, Debug)]
struct Turn {
    client: usize,
    asked: Instant,
    granted: Instant,
}

impl Turn {
    fn wait(&self) -> Duration {
        self.granted - self.asked
    }
}

/// What a contention run measured.
#[derive(Debug)]
struct Fairness {
    /// The longest wait.
    longest: Duration,
    /// The mean wait.
    mean: Duration,
    /// The most acquisitions that asked after one and were granted before
    /// it.
    overtaken: usize,
    /// Grants per second.
    rate: f64,
}

impl Fairness {
    fn of(turns: &[Turn], took: Duration) -> Fairness {
        let total: Duration = turns.iter().map(Turn::wait).sum();
        let overtaken = turns
            .iter()
            .map(|t| {
                turns
                    .iter()
                    .filter(|o| o.client != t.client && o.asked > t.asked && o.granted < t.granted)
                    .count()
            })
            .max()
            .unwrap_or(0);
        Fairness {
            longest: turns.iter().map(Turn::wait).max().unwrap_or_default(),
            mean: total / u32::try_from(turns.len().max(1)).unwrap_or(u32::MAX),
            overtaken,
            rate: turns.len() as f64 / took.as_secs_f64(),
        }
    }

    /// The longest wait over the mean.
    fn spread(&self) -> f64 {
        self.longest.as_secs_f64() / self.mean.as_secs_f64().max(1e-6)
    }
}

/// How each contending client takes the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taking {
    /// The backend's own waiting.
    Waiting,
    /// Tries once in a loop with the default backoff: what polling did
    /// before waiters queued (the purpose-broken way).
    Barging,
}

/// `clients` backends take one name `rounds` times each, releasing at once.
async fn contend(what: &str, url: &str, clients: usize, rounds: usize, taking: Taking) -> Fairness {
    let backends = futures::future::join_all((0..clients).map(|_| connect(what, url))).await;
    let lock = name("contention", &format!("{taking:?}"));
    let turns = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let runs = backends.into_iter().enumerate().map(|(client, backend)| {
        let (lock, turns) = (lock.clone(), Arc::clone(&turns));
        tokio::spawn(async move {
            for _ in 0..rounds {
                let asked = Instant::now();
                let lease = take_turn(&backend, &lock, taking).await;
                let granted = Instant::now();
                backend.release(&lease).await.expect("release");
                turns.lock().unwrap().push(Turn {
                    client,
                    asked,
                    granted,
                });
            }
        })
    });
    for run in futures::future::join_all(runs).await {
        run.expect("a contending client failed");
    }
    let took = started.elapsed();
    let turns = turns.lock().unwrap().clone();
    assert_eq!(turns.len(), clients * rounds);
    Fairness::of(&turns, took)
}

async fn take_turn(backend: &SqlBackend, lock: &LockName, taking: Taking) -> Lease {
    let ttl = Duration::from_secs(30);
    match taking {
        Taking::Waiting => {
            let o = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(60)));
            backend
                .acquire(lock, &o)
                .await
                .expect("acquire")
                .expect("acquired within the wait")
        }
        Taking::Barging => {
            let mut delays = Backoff::default().delays();
            loop {
                let got = backend.acquire(lock, &AcquireOptions::try_once(ttl)).await;
                if let Some(lease) = got.expect("acquire") {
                    return lease;
                }
                tokio::time::sleep(delays.next_delay()).await;
            }
        }
    }
}

/// Clients that contend for one name with zero hold are served in turn
/// (the queue of waiters): the longest wait stays within ten times the
/// mean wait, and no acquisition is overtaken by many that asked after
/// it. Barging clients (trying once in a loop, as polling did) are
/// caught: the client that just released takes the lock again and again
/// while the others wait.
async fn contending_clients_are_served_in_turn(what: &str, url: &str) {
    const CLIENTS: usize = 8;
    const SPREAD: f64 = 10.0;
    let fair = contend(what, url, CLIENTS, 40, Taking::Waiting).await;
    println!(
        "{what}: {CLIENTS} clients, zero hold: longest wait {:?}, mean {:?} ({:.1}x), overtaken by at most {} later acquisitions, {:.0} grants/s",
        fair.longest,
        fair.mean,
        fair.spread(),
        fair.overtaken,
        fair.rate
    );
    assert!(
        fair.spread() <= SPREAD,
        "{what}: the longest wait is {:.1} times the mean: {fair:?}",
        fair.spread()
    );
    // In turn: overtaken only by acquisitions that took their places while
    // this one's first statements were on their way.
    let overtaken = 3 * (CLIENTS - 1);
    assert!(
        fair.overtaken <= overtaken,
        "{what}: an acquisition was overtaken by {} that asked after it: {fair:?}",
        fair.overtaken
    );
    let barging = contend(what, url, CLIENTS, 40, Taking::Barging).await;
    println!("{what}: barging clients: {barging:?}");
    assert!(
        barging.spread() > SPREAD,
        "{what}: the check misses clients that barge in: {barging:?}"
    );
}

/// Clients that each take a semaphore permit, a read lock and a mutex on
/// names of their own, all at once and on names new to the database, are
/// all served: their grants touch neighbouring rows of the same tables
/// (on MySQL/MariaDB, gap locks meet in deadlocks that the database breaks
/// by failing one statement), and none of that reaches the caller. On a
/// table of its own, empty at the first round: the grants then all meet in
/// one gap.
async fn clients_at_once_on_new_names_are_served(what: &str, url: &str) {
    let url = &own_table(url, "new_names");
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 12;
    let backends = futures::future::join_all((0..CLIENTS).map(|_| connect(what, url))).await;
    let ttl = Duration::from_secs(30);
    let waiting = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(20)));
    let modes = [Mode::Permit { limit: 3 }, Mode::Shared, Mode::Exclusive];
    for round in 0..ROUNDS {
        let mode = modes[round % modes.len()];
        let outcomes = futures::future::join_all(backends.iter().enumerate().map(|(i, b)| {
            let lock = name("new-names", &format!("{round}-{i}"));
            let waiting = &waiting;
            async move {
                let lease = b.acquire_as(&lock, mode, waiting).await?;
                let lease = lease.expect("a name of its own is free");
                b.release(&lease).await
            }
        }))
        .await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            if let Err(e) = outcome {
                panic!("{what}: client {i} of {CLIENTS}, {mode:?} on a new name: {e}");
            }
        }
    }
    if let Some(backend) = backends.first() {
        common::drop_tables(backend).await;
    }
}

/// One release wakes one waiter of a backend, and readers that get in
/// on a wake pass it on: three readers waiting (only notifications wake
/// them: their wait ends long after) behind a `holder` (a writer, or under
/// the session strategy a permit: readers wait for a writer in the
/// server's queue there) all get in promptly after its release, which
/// sends one notification.
async fn woken_readers_pass_the_wake_on(what: &str, url: &str, holder: Mode) {
    let (writer, readers) = (connect(what, url).await, connect(what, url).await);
    let lock = name("wake", "readers");
    let ttl = Duration::from_secs(60);
    let held = writer
        .acquire_as(&lock, holder, &AcquireOptions::try_once(ttl))
        .await
        .unwrap()
        .expect("free");
    let waiting = AcquireOptions::new(ttl).with_wait(Wait::For(Duration::from_secs(20)));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (readers, lock) = (readers.clone(), lock.clone());
            tokio::spawn(async move {
                let got = readers.acquire_as(&lock, Mode::Shared, &waiting).await;
                (Instant::now(), got)
            })
        })
        .collect();
    // No event tells that the readers wait: give them time to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let released = Instant::now();
    writer.release(&held).await.unwrap();
    for task in tasks {
        let (at, got) = task.await.unwrap();
        let lease = got.unwrap().expect("the reader got in");
        let after = at.saturating_duration_since(released);
        assert!(
            after < Duration::from_secs(3),
            "{what}: a reader got in {after:?} after the release"
        );
        readers.release(&lease).await.unwrap();
    }
}

/// Tries queued on one session (`sessions=1`), more of them than run
/// within the statement timeout one after the other: each is bounded from
/// when it is sent, not from when it was asked, so every one is answered
/// (none `Unavailable` for the wait behind its own client's statements).
async fn tries_queued_on_one_session_are_all_answered(what: &str, url: &str) {
    const TRIES: usize = 3_000;
    let url = common::with_params(url, "sessions=1&timeout=500ms&connect_timeout=10s");
    let backend = Arc::new(connect(what, &url).await);
    let options = AcquireOptions::try_once(Duration::from_secs(60));
    let started = Instant::now();
    let leases = futures::future::join_all((0..TRIES).map(|i| {
        let (backend, options) = (&backend, &options);
        async move {
            let lock = name("queued", &i.to_string());
            let asked = Instant::now();
            let lease = backend.acquire(&lock, options).await;
            (asked.elapsed(), lease)
        }
    }))
    .await;
    let took = started.elapsed();
    let mut held = Vec::with_capacity(TRIES);
    let mut longest = Duration::ZERO;
    for (i, (waited, lease)) in leases.into_iter().enumerate() {
        match lease {
            Ok(Some(lease)) => held.push(lease),
            Ok(None) => panic!("{what}: try {i} of {TRIES} refused a free name"),
            Err(e) => panic!("{what}: try {i} of {TRIES} after {waited:?}: {e}"),
        }
        longest = longest.max(waited);
    }
    println!("{what}: {TRIES} tries on one session in {took:?}, the longest {longest:?}");
    let given = futures::future::join_all(held.iter().map(|l| backend.release(l))).await;
    for (i, outcome) in given.into_iter().enumerate() {
        outcome.unwrap_or_else(|e| panic!("{what}: release {i} of {TRIES}: {e}"));
    }
}

/// How long the hold test holds (`DISTLOCK_HOLD_SECS`, default 20).
fn hold_secs() -> u64 {
    std::env::var("DISTLOCK_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// One client holds 10 000 locks (ttl 3 s, extended in the background by
/// its watchdog, in batches) for `DISTLOCK_HOLD_SECS`: none is lost, and
/// the database still holds every one at the end. They are taken 64 at a
/// time, on default settings otherwise, in a table of the test's own
/// (dropped at the end: the locks then need no release).
async fn ten_thousand_locks_are_held_without_loss(what: &str, url: &str) {
    const LOCKS: usize = 10_000;
    let backend = connect(what, url).await;
    let client = LockClient::new(Arc::new(backend.clone()));
    let options = AcquireOptions::new(Duration::from_secs(3));
    let started = Instant::now();
    let guards: Vec<_> = futures::stream::iter(0..LOCKS)
        .map(|i| {
            let client = &client;
            async move {
                let lock = name("hold", &i.to_string());
                client
                    .lock_with(&lock, &options)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: lock {i} of {LOCKS}: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let took = started.elapsed();
    println!("{what}: {LOCKS} locks taken in {took:?}");

    let hold = Duration::from_secs(hold_secs());
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let lost = guards.iter().filter(|g| g.is_lost()).count();
        assert_eq!(
            lost, 0,
            "{what}: {lost} of {LOCKS} locks lost during the hold"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lost = guards.iter().filter(|g| g.is_lost()).count();
    assert_eq!(
        lost, 0,
        "{what}: {lost} of {LOCKS} locks lost after {hold:?}"
    );

    // The database agrees: every lease is still held (one statement).
    let leases: Vec<Lease> = guards.into_iter().map(|g| g.detach()).collect();
    let extended = backend.extend_many(&leases).await;
    let held = extended.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        held, LOCKS,
        "{what}: the database holds {held} of {LOCKS} after {hold:?}"
    );
    println!("{what}: {LOCKS} locks held for {hold:?}, none lost");
    common::drop_tables(&backend).await;
}

/// `url` with a table of its own for one test.
fn own_table(url: &str, test: &str) -> String {
    let table = format!("load_{test}_{}", common::unique().replace('-', "_"));
    common::with_params(url, &format!("table={table}"))
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::common::SqliteFile;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_acquisitions_in_flight_are_served() {
        let file = SqliteFile::new("load-in-flight");
        super::many_acquisitions_in_flight_are_served("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn clients_at_once_on_new_names_are_served() {
        let file = SqliteFile::new("load-new-names");
        super::clients_at_once_on_new_names_are_served("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contending_clients_are_served_in_turn() {
        let file = SqliteFile::new("load-contention");
        super::contending_clients_are_served_in_turn("sqlite", &file.url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn faults_ten_thousand_locks_are_held_without_loss() {
        let file = SqliteFile::new("load-hold");
        super::ten_thousand_locks_are_held_without_loss("sqlite", &file.url).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::common::postgres_table_url;
    use distlock_core::Mode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_acquisitions_in_flight_are_served() {
        super::many_acquisitions_in_flight_are_served("postgres", &postgres_table_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn clients_at_once_on_new_names_are_served() {
        let (table, session) = (postgres_table_url(), super::common::postgres_session_url());
        super::clients_at_once_on_new_names_are_served("postgres", &table).await;
        super::clients_at_once_on_new_names_are_served("postgres session", &session).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn woken_readers_pass_the_wake_on() {
        let url = postgres_table_url();
        super::woken_readers_pass_the_wake_on("postgres", &url, Mode::Exclusive).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn woken_readers_pass_the_wake_on_under_the_session_strategy() {
        let url = super::common::postgres_session_url();
        let permit = Mode::Permit { limit: 1 };
        super::woken_readers_pass_the_wake_on("postgres session", &url, permit).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn faults_ten_thousand_locks_are_held_without_loss() {
        let url = super::own_table(&postgres_table_url(), "hold");
        super::ten_thousand_locks_are_held_without_loss("postgres", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tries_queued_on_one_session_are_all_answered() {
        let url = super::common::postgres_session_url();
        super::tries_queued_on_one_session_are_all_answered("postgres session", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn faults_ten_thousand_session_locks_are_held_without_loss() {
        let url = super::own_table(&super::common::postgres_session_url(), "shold");
        super::ten_thousand_locks_are_held_without_loss("postgres session", &url).await;
    }
}

#[cfg(feature = "mysql")]
mod mariadb {
    use super::common::mysql_table_url;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_acquisitions_in_flight_are_served() {
        super::many_acquisitions_in_flight_are_served("mariadb", &mysql_table_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contending_clients_are_served_in_turn() {
        super::contending_clients_are_served_in_turn("mariadb", &mysql_table_url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn clients_at_once_on_new_names_are_served() {
        let (table, session) = (mysql_table_url(), super::common::mysql_session_url());
        super::clients_at_once_on_new_names_are_served("mariadb", &table).await;
        super::clients_at_once_on_new_names_are_served("mariadb session", &session).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn faults_ten_thousand_locks_are_held_without_loss() {
        let url = super::own_table(&mysql_table_url(), "hold");
        super::ten_thousand_locks_are_held_without_loss("mariadb", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tries_queued_on_one_session_are_all_answered() {
        let url = super::common::mysql_session_url();
        super::tries_queued_on_one_session_are_all_answered("mariadb session", &url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn faults_ten_thousand_session_locks_are_held_without_loss() {
        let url = super::own_table(&super::common::mysql_session_url(), "shold");
        super::ten_thousand_locks_are_held_without_loss("mariadb session", &url).await;
    }
}
