//! Each floor's mutex, semaphore and reader-writer recipe against the test
//! servers (addresses from `scripts/services.sh env`, with its defaults): a
//! floor that admitted more holders than its recipe says would flatter
//! itself in the benchmark, and one that never let two holders overlap
//! would measure a mutex.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock::sync::lock;
use distlock::{LockName, Mode};

use super::{for_url, RawFloor};
use crate::workload::{Settings, Workload};

const CLIENTS: usize = 6;
const CYCLES: u64 = 12;

fn settings() -> Settings {
    Settings {
        duration: Duration::from_secs(1),
        clients: CLIENTS,
        hold: Duration::from_millis(5),
        names: 1,
        permits: 3,
        read_share: 0.75,
    }
}

/// Who holds the name now.
#[derive(Default)]
struct Tally {
    shared: usize,
    writers: usize,
}

impl Tally {
    fn enter(&mut self, mode: Mode) {
        match mode {
            Mode::Permit { limit } => {
                assert!(self.shared < limit as usize, "a permit beyond {limit}");
            }
            Mode::Shared => assert_eq!(self.writers, 0, "a reader beside the writer"),
            _ => assert_eq!(
                (self.shared, self.writers),
                (0, 0),
                "a writer beside holders"
            ),
        }
        if mode == Mode::Exclusive {
            self.writers += 1;
        } else {
            self.shared += 1;
        }
    }

    fn leave(&mut self, mode: Mode) {
        if mode == Mode::Exclusive {
            self.writers -= 1;
        } else {
            self.shared -= 1;
        }
    }
}

/// Runs `workload`'s modes on `floor` with [`CLIENTS`] clients of
/// [`CYCLES`] cycles each, checking the holders at every take (the tally
/// asserts that no holder is admitted beyond the recipe).
async fn run_checked(floor: &RawFloor, workload: Workload) {
    let name = LockName::new(format!("floor-test/{:x}", rand::random::<u64>())).unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let c = floor.contender(workload.primitive()).await.unwrap();
        let c = c.expect("a recipe for the workload");
        let (name, tally) = (name.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            for cycle in 0..CYCLES {
                let mode = workload.mode(settings(), client, cycle);
                c.take(&name, mode).await.unwrap();
                lock(&tally).enter(mode);
                tokio::time::sleep(settings().hold).await;
                lock(&tally).leave(mode);
                c.give_back(&name, mode).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// How long a take that the recipe must grant at once may wait before the
/// recipe counts as having refused it.
const AT_ONCE: Duration = Duration::from_secs(10);

/// Takes `mode` on a fresh name with `holders` contenders of `workload`'s
/// primitive, each while the ones before it hold: the recipe must admit
/// them all together. Panics naming `url` if one is not admitted.
async fn all_at_once(url: &str, floor: &RawFloor, workload: Workload, mode: Mode, holders: usize) {
    let name = LockName::new(format!("floor-test/{:x}", rand::random::<u64>())).unwrap();
    let mut held = Vec::new();
    for n in 0..holders {
        let c = floor.contender(workload.primitive()).await.unwrap();
        let c = c.expect("a recipe for the workload");
        tokio::time::timeout(AT_ONCE, c.take(&name, mode))
            .await
            .unwrap_or_else(|_| panic!("{url}: {mode:?} holder {n} not admitted beside {n} others"))
            .unwrap();
        held.push(c);
    }
    for c in held {
        c.give_back(&name, mode).await.unwrap();
    }
}

/// Checks the three recipes of the floor of `url`: its mutex never lets two
/// holders overlap, nor its permits and readers more than they may (the
/// tally asserts it at every take); its permits and readers are admitted
/// together, so it does not measure a mutex.
async fn check(url: &str) {
    let floor = for_url(url).await.unwrap().expect("a floor");
    run_checked(&floor, Workload::Contended).await;
    run_checked(&floor, Workload::Semaphore).await;
    run_checked(&floor, Workload::ReadWrite).await;
    let permits = Workload::Semaphore.mode(settings(), 0, 0);
    let limit = settings().permits as usize;
    all_at_once(url, &floor, Workload::Semaphore, permits, limit).await;
    all_at_once(url, &floor, Workload::ReadWrite, Mode::Shared, CLIENTS).await;
}

/// A setting from `scripts/services.sh env`, or its default there.
fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

#[tokio::test]
async fn the_memory_floor_admits_what_its_recipes_say() {
    check("memory://floor-test").await;
}

/// A recipe that admits one holder at a time (the mutex's, asked for two
/// writers together) fails the check.
#[tokio::test]
async fn a_recipe_that_admits_one_at_a_time_is_caught() {
    let floor = for_url("memory://floor-test")
        .await
        .unwrap()
        .expect("a floor");
    let two = async move {
        all_at_once("memory", &floor, Workload::Contended, Mode::Exclusive, 2).await;
    };
    let err = tokio::spawn(two)
        .await
        .expect_err("the second writer is not admitted");
    assert!(err.is_panic());
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_sqlite_floor_admits_what_its_recipes_say() {
    let dir = std::env::temp_dir().join(format!("distlock-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    check(&format!("sqlite://{}", dir.join("floor.db").display())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_floor_admits_what_its_recipes_say() {
    let default = "postgres://distlock:distlock-pw@127.0.0.1:15432/distlock";
    let url = env("DISTLOCK_POSTGRES_URL", default);
    check(&url).await;
    check(&format!("{url}?strategy=table")).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn the_mysql_floor_admits_what_its_recipes_say() {
    let default = "mysql://distlock:distlock-pw@127.0.0.1:13306/distlock";
    let url = env("DISTLOCK_MYSQL_URL", default);
    check(&url).await;
    check(&format!("{url}?strategy=table")).await;
}

#[cfg(feature = "redis")]
fn redis_hosts() -> Vec<String> {
    env(
        "DISTLOCK_REDIS_URLS",
        "redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381",
    )
    .split(',')
    .map(|u| u.trim_start_matches("redis://").to_string())
    .collect()
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redis_floor_admits_what_its_recipes_say() {
    check(&format!("redis://{}", redis_hosts()[0])).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redlock_floor_admits_what_its_recipes_say() {
    check(&format!("redlock://{}", redis_hosts().join(","))).await;
}

#[cfg(feature = "zookeeper")]
#[tokio::test]
async fn the_zookeeper_floor_admits_what_its_recipes_say() {
    let hosts = env(
        "DISTLOCK_ZK_HOSTS",
        "127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183",
    );
    check(&format!("zk://{hosts}")).await;
}

#[cfg(feature = "etcd")]
#[tokio::test]
async fn the_etcd_floor_admits_what_its_recipes_say() {
    let endpoints = env(
        "DISTLOCK_ETCD_ENDPOINTS",
        "http://127.0.0.1:12379,http://127.0.0.1:12381,http://127.0.0.1:12383",
    );
    let hosts: Vec<&str> = endpoints
        .split(',')
        .map(|e| e.trim_start_matches("http://"))
        .collect();
    check(&format!("etcd://{}", hosts.join(","))).await;
}
