//! The paused holder, end to end, on every store: a child process holds a
//! real lock (Redis backend, 1 s ttl), passes its check that it holds it,
//! and is stopped (`kill -STOP`) before it writes. This process takes the
//! lock once the child's lease has run out — which is what makes the pause
//! outlast the ttl — and writes with its newer token. The child is
//! resumed (`kill -CONT`) and writes with its old token: the store refuses
//! it, naming both tokens, and keeps this process's value. The child's
//! guard also reports the loss.
//!
//! Every step waits for an event (a line from the child, the lock being
//! granted), never for a sleep.
#![cfg(all(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql"
))]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use distlock_core::{AcquireOptions, LockClient, Wait};
use distlock_fenced::{FenceError, FencedStore, Record};
use distlock_redis::RedisBackend;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Marks the child's report lines (libtest may print on the same line).
const MARK: &str = "PAUSED-HOLDER:";
/// Set in the child: which store, which lock, which resource.
const CHILD_STORE: &str = "DISTLOCK_FENCED_CHILD_STORE";
const CHILD_NAME: &str = "DISTLOCK_FENCED_CHILD_NAME";
/// The child's lease.
const TTL: Duration = Duration::from_secs(1);
/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(30);
const STALE_VALUE: &[u8] = b"written by the paused holder";
const NEW_VALUE: &[u8] = b"written by the next holder";

/// The stores the scenario runs on.
#[derive(Clone, Copy, Debug)]
enum Store {
    Redis,
    Sqlite,
    Postgres,
    Mysql,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Redis => "redis",
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
            Store::Mysql => "mysql",
        }
    }

    fn parse(name: &str) -> Store {
        [Store::Redis, Store::Sqlite, Store::Postgres, Store::Mysql]
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("unknown store {name:?}"))
    }

    async fn open(self) -> Arc<dyn FencedStore> {
        match self {
            Store::Redis => Arc::new(common::redis_store().await),
            Store::Sqlite => Arc::new(common::sqlite_store().await),
            Store::Postgres => Arc::new(common::postgres_store().await),
            Store::Mysql => Arc::new(common::mysql_store().await),
        }
    }
}

/// A lock client on the first Redis instance, its keys under `prefix`,
/// taking leases of `ttl`.
async fn lock_client(prefix: &str, ttl: Duration) -> LockClient {
    let url = format!("{}?prefix={prefix}", common::redis_url());
    let backend = RedisBackend::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the Redis lock at {url}: {e}"));
    let options = AcquireOptions::new(ttl).with_wait(Wait::For(STEP));
    LockClient::with_defaults(Arc::new(backend), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_write_is_refused_by_redis() {
    paused_holder_write_is_refused(Store::Redis, "paused_holder_write_is_refused_by_redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_write_is_refused_by_sqlite() {
    paused_holder_write_is_refused(Store::Sqlite, "paused_holder_write_is_refused_by_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_write_is_refused_by_postgres() {
    paused_holder_write_is_refused(
        Store::Postgres,
        "paused_holder_write_is_refused_by_postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_holder_write_is_refused_by_mysql() {
    paused_holder_write_is_refused(Store::Mysql, "paused_holder_write_is_refused_by_mysql").await;
}

/// The scenario; `test` is the calling test's name, which the child runs.
async fn paused_holder_write_is_refused(store: Store, test: &str) {
    if let Ok(name) = std::env::var(CHILD_NAME) {
        return child(name).await;
    }
    let name = common::unique(&format!("paused-{}", store.name()));
    let fenced = store.open().await;
    let client = lock_client(&name, Duration::from_secs(10)).await;

    let mut child = spawn_child(test, store, &name);
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let child_token: u64 = event(&mut lines, "checked").await.parse().unwrap();
    signal(&child, "-STOP");

    // Granted only once the stopped child's lease has run out.
    let guard = client.lock(name.as_str()).await.unwrap();
    let token = guard.fencing_token();
    assert!(token.get() > child_token, "{token} after {child_token}");
    fenced.set(&name, token, NEW_VALUE).await.unwrap();

    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"write\n").await.unwrap();
    stdin.flush().await.unwrap();
    signal(&child, "-CONT");

    let refused = event(&mut lines, "refused").await;
    assert_eq!(
        refused,
        format!("{child_token} {}", token.get()),
        "the child reported"
    );
    assert_eq!(event(&mut lines, "lost").await, "true", "the child's guard");
    let status = tokio::time::timeout(STEP, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the child ended with {status}");

    let expected = Record {
        value: NEW_VALUE.to_vec(),
        token,
    };
    assert_eq!(fenced.read(&name).await.unwrap(), Some(expected));
    guard.release().await.unwrap();
}

/// Runs this test binary again, only `test`, as the child holder.
fn spawn_child(test: &str, store: Store, name: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_STORE, store.name())
        .env(CHILD_NAME, name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the child holder: {e}"))
}

/// Sends `kill <signal>` to the child.
fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the child is running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill {signal}: {e}"));
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

/// The rest of the child's next `<MARK> <what> …` line.
async fn event(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> String {
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Some((_, report)) = line.split_once(MARK) else {
                continue;
            };
            let report = report.trim();
            if let Some(rest) = report.strip_prefix(what) {
                return rest.trim().to_string();
            }
            panic!("expected the child to report `{what}`, it reported `{report}`");
        }
        panic!("the child ended before reporting `{what}`")
    };
    tokio::time::timeout(STEP, read)
        .await
        .unwrap_or_else(|_| panic!("the child did not report `{what}` within {STEP:?}"))
}

/// Prints one report line for the parent, on a line of its own.
fn report(line: &str) {
    use std::io::Write;
    println!("\n{MARK} {line}");
    let _ = std::io::stdout().flush();
}

/// The child: take the lock, check it, wait for the word to write (the
/// parent stops this process meanwhile), write with its token, report.
async fn child(name: String) {
    let store = Store::parse(&std::env::var(CHILD_STORE).unwrap());
    let fenced = store.open().await;
    let client = lock_client(&name, TTL).await;
    let guard = client.lock(name.as_str()).await.unwrap();
    assert!(!guard.is_lost(), "the lock is held: the check passes");
    report(&format!("checked {}", guard.fencing_token()));

    // The slow step between the check and the write.
    let word = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(word.trim(), "write");

    match fenced.set(&name, guard.fencing_token(), STALE_VALUE).await {
        Err(FenceError::Stale(stale)) => {
            report(&format!("refused {} {}", stale.offered, stale.recorded))
        }
        Ok(()) => report("written"),
        Err(e) => report(&format!("failed {e}")),
    }
    let lost = tokio::time::timeout(STEP, guard.lost()).await.is_ok();
    report(&format!("lost {lost}"));
}
