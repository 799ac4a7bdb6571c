//! A waiter that dies in the table strategy's queue (MySQL/MariaDB,
//! SQLite) holds the others up for its waiter-liveness window, never for
//! the holder's ttl.
//!
//! A child process queues for a held name (ttl [`TTL`]) and is SIGKILLed
//! while a client of this process waits behind it; then the holder
//! releases. The dead child's place is first in line: the waiter behind
//! gets the name once that place has lived its window ([`WINDOW`]), well
//! within [`WITHIN`]. Places that outlive their waiters (broken on purpose)
//! hold the line up for an hour, and the case says so.

#![cfg(all(feature = "sqlite", feature = "mysql"))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_conformance::child::{panic_message, report, ChildProcess};
use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_sql::{SqlBackend, SqlConfig};
use sqlx::{Connection, MySqlConnection, Row, SqliteConnection};

/// Turns this test binary into the dying waiter: `<url>|<name>`.
const CHILD_ENV: &str = "DISTLOCK_SQL_DYING_WAITER";
/// The child is about to queue.
const QUEUEING: &str = "DISTLOCK-CHILD-QUEUEING";
const WINDOW: Duration = Duration::from_millis(300);
/// The holder's ttl: far longer than the wait the case allows.
const TTL: Duration = Duration::from_secs(60);
/// Until when after the release the waiter behind must have the name.
const WITHIN: Duration = Duration::from_secs(10);
const CASE: &str = "[a_dead_sql_waiter_holds_the_line_for_its_window]";

/// One database, run by the test named `test`.
struct Scenario {
    test: &'static str,
    /// The database's URL, with `strategy=table` where it needs saying.
    url: String,
    broken: bool,
}

impl Scenario {
    async fn run(self) {
        match std::env::var(CHILD_ENV) {
            Ok(spec) => child(&spec).await,
            Err(_) => self.parent().await,
        }
    }

    fn config(&self, table: &str) -> SqlConfig {
        let url = common::with_params(&self.url, &format!("table={table}"));
        let config = SqlConfig::from_url(&url).unwrap();
        let config = config.with_waiter_timeout(WINDOW).unwrap();
        match self.broken {
            true => config.with_dead_waiters_kept_broken_on_purpose(),
            false => config,
        }
    }

    async fn parent(self) {
        let table = format!("w{}", common::unique().replace('-', "_"));
        let name = LockName::new("dying/waiter").unwrap();
        let holder = Arc::new(SqlBackend::from_config(self.config(&table)).await.unwrap());
        let behind: Arc<dyn DistributedLock> =
            Arc::new(SqlBackend::from_config(self.config(&table)).await.unwrap());
        let held = holder
            .acquire(&name, &opts(Wait::NoWait))
            .await
            .unwrap()
            .expect("the name is free");
        let spec = format!("{}|{table}|{}", self.url, u8::from(self.broken));
        let mut dying = ChildProcess::spawn(
            "a_dead_sql_waiter_holds_the_line_for_its_window",
            self.test,
            &[(CHILD_ENV, spec.as_str())],
            false,
        );
        let _ = dying.mark(QUEUEING).await;
        let places = Places::new(&self.url, &table).await;
        places.until(1).await;
        let next = {
            let (behind, name) = (behind.clone(), name.clone());
            tokio::spawn(async move { behind.acquire(&name, &opts(Wait::Forever)).await })
        };
        places.until(2).await;
        dying.kill().await;
        holder.release(&held).await.unwrap();
        let released = Instant::now();
        let got = match tokio::time::timeout_at((released + WITHIN).into(), next).await {
            Ok(Ok(Ok(Some(lease)))) => lease,
            Ok(other) => panic!("{CASE} the waiter behind the dead one failed: {other:?}"),
            Err(_) => panic!(
                "{CASE} the waiter behind a dead one did not get the name within {WITHIN:?} of \
                 the release (the holder's ttl was {TTL:?}, the window {WINDOW:?})"
            ),
        };
        println!(
            "{CASE} the waiter behind got the name {:?} after the release",
            released.elapsed()
        );
        behind.release(&got).await.unwrap();
        common::drop_tables(&holder).await;
    }
}

/// The queue places of a test's own table, read with a plain connection.
struct Places {
    url: String,
    table: String,
}

impl Places {
    async fn new(url: &str, table: &str) -> Self {
        Places {
            url: url.split('?').next().unwrap_or(url).to_string(),
            table: table.to_string(),
        }
    }

    /// How many queue places the table holds.
    async fn count(&self) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM {}_holders WHERE kind = 'q'",
            self.table
        );
        match self.url.starts_with("sqlite:") {
            true => {
                let mut conn = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(&sql).fetch_one(&mut conn).await.unwrap().get(0)
            }
            false => {
                let mut conn = MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query(&sql).fetch_one(&mut conn).await.unwrap().get(0)
            }
        }
    }

    /// Polls (nothing on these databases can wake a reader) until the
    /// table holds `count` queue places.
    async fn until(&self, count: i64) {
        let bound = Instant::now() + WITHIN;
        while self.count().await < count {
            assert!(
                Instant::now() < bound,
                "{CASE} {count} waiters never queued"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn opts(wait: Wait) -> AcquireOptions {
    AcquireOptions::new(TTL).with_wait(wait)
}

/// The dying waiter: queues for the held name and waits until killed.
async fn child(spec: &str) {
    let mut parts = spec.split('|');
    let (url, table, broken) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next() == Some("1"),
    );
    let scenario = Scenario {
        test: "",
        url: url.to_string(),
        broken,
    };
    let client = SqlBackend::from_config(scenario.config(table))
        .await
        .unwrap();
    let name = LockName::new("dying/waiter").unwrap();
    report(QUEUEING, "");
    let got = client.acquire(&name, &opts(Wait::Forever)).await;
    panic!("the dying waiter was never meant to get the name: {got:?}");
}

#[tokio::test]
async fn a_dead_waiter_holds_the_sqlite_queue_up_for_its_window() {
    let file = common::SqliteFile::new("dying-waiter");
    let test = "a_dead_waiter_holds_the_sqlite_queue_up_for_its_window";
    let url = match std::env::var(CHILD_ENV) {
        Ok(_) => String::new(),
        Err(_) => file.url.clone(),
    };
    Scenario {
        test,
        url,
        broken: false,
    }
    .run()
    .await;
}

#[tokio::test]
async fn a_dead_waiter_holds_the_mysql_table_queue_up_for_its_window() {
    let test = "a_dead_waiter_holds_the_mysql_table_queue_up_for_its_window";
    let url = common::mysql_table_url();
    Scenario {
        test,
        url,
        broken: false,
    }
    .run()
    .await;
}

#[tokio::test]
async fn places_that_outlive_their_waiters_are_caught_holding_the_line() {
    if std::env::var(CHILD_ENV).is_ok() {
        return Scenario {
            test: "",
            url: String::new(),
            broken: true,
        }
        .run()
        .await;
    }
    let file = common::SqliteFile::new("dying-waiter-broken");
    let scenario = Scenario {
        test: "places_that_outlive_their_waiters_are_caught_holding_the_line",
        url: file.url.clone(),
        broken: true,
    };
    let message = match tokio::spawn(scenario.run()).await {
        Ok(()) => panic!("places that outlive their waiters passed the case"),
        Err(e) => panic_message(e),
    };
    assert!(
        message.contains(CASE) && message.contains("did not get the name"),
        "the case failed, but not for the dead waiter: {message}"
    );
}
