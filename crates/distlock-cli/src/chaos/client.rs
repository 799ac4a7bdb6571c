//! One chaos client (`distlock chaos-client`, started by the runner): takes
//! the lock again and again, and while holding it writes to the fenced
//! store twice — at once, and again at the end of its hold *without*
//! checking the lock first, as a process that paused between its check and
//! its write would. It reports each step on its standard output (see
//! [`events`](super::events)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock::fenced::{FenceError, FencedStore, SqlStore};
use distlock::sql::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use distlock::sql::sqlx::{self, Sqlite};
use distlock::{AcquireOptions, FencingToken, LockClient, LockGuard, LockName, Wait};
use rand::Rng;

use super::events::wall_ns;

/// The resource every client writes.
pub const RESOURCE: &str = "chaos";

/// How a chaos client runs.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub url: String,
    pub name: String,
    pub ttl: Duration,
    pub hold_max: Duration,
    pub store: std::path::PathBuf,
    /// Take no lock at all (tokens from a local counter): a client the
    /// runner's checks must catch.
    pub unlocked: bool,
}

/// A command that starts a client: this same executable, which dies with
/// the runner.
pub fn command() -> Result<tokio::process::Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(exe);
    die_with_runner(&mut command);
    Ok(command)
}

/// Makes the client that `command` starts die with the runner that starts
/// it: the kernel sends the client SIGKILL when the runner's thread ends, so
/// a runner killed mid-run leaves no client behind, not even one stopped by
/// a pause (SIGKILL ends a stopped process too).
#[cfg(target_os = "linux")]
fn die_with_runner(command: &mut tokio::process::Command) {
    let runner = std::process::id();
    // SAFETY: the closure runs in the forked child before it execs, and
    // calls only async-signal-safe functions (prctl, getppid); it does not
    // allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The runner may have ended before the call above took effect.
            if u32::try_from(libc::getppid()).ok() != Some(runner) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere clients outlive a killed runner.
#[cfg(not(target_os = "linux"))]
fn die_with_runner(_command: &mut tokio::process::Command) {}

/// Opens the fenced store: a SQLite file the runner's clients share.
pub async fn open_store(path: &std::path::Path) -> Result<SqlStore<Sqlite>, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open the store {}: {e}", path.display()))?;
    let store = SqlStore::new(pool);
    store.create_table().await.map_err(|e| e.to_string())?;
    for statement in WRITE_LOG {
        sqlx::query(&statement.replace("{table}", store.table()))
            .execute(store.pool())
            .await
            .map_err(|e| format!("cannot prepare the store's write log: {e}"))?;
    }
    Ok(store)
}

/// Every write the store accepts, in the order it committed them: each
/// client writes its token as the value.
const WRITE_LOG: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS chaos_writes \
     (seq INTEGER PRIMARY KEY AUTOINCREMENT, token INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS chaos_inserted AFTER INSERT ON \"{table}\" BEGIN \
     INSERT INTO chaos_writes (token) VALUES (COALESCE(NEW.counter, CAST(CAST(NEW.value AS TEXT) AS INTEGER))); END",
    "CREATE TRIGGER IF NOT EXISTS chaos_updated AFTER UPDATE ON \"{table}\" BEGIN \
     INSERT INTO chaos_writes (token) VALUES (COALESCE(NEW.counter, CAST(CAST(NEW.value AS TEXT) AS INTEGER))); END",
];

/// The tokens of the writes the store accepted, in commit order.
pub async fn accepted_writes(store: &SqlStore<Sqlite>) -> Result<Vec<u64>, String> {
    let tokens: Vec<i64> = sqlx::query_scalar("SELECT token FROM chaos_writes ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .map_err(|e| format!("cannot read the store's write log: {e}"))?;
    Ok(tokens
        .into_iter()
        .map(|t| u64::try_from(t).unwrap_or(0))
        .collect())
}

/// Runs until killed; returns only when it cannot start.
pub async fn run(settings: ClientSettings) -> Result<(), String> {
    let name = LockName::new(settings.name.as_str()).map_err(|e| e.to_string())?;
    let backend = distlock::connect(&settings.url)
        .await
        .map_err(|e| e.to_string())?;
    let options = AcquireOptions::new(settings.ttl).with_wait(Wait::For(Duration::from_secs(10)));
    let client = LockClient::with_defaults(backend, options);
    let store = open_store(&settings.store).await?;
    if settings.unlocked {
        return unlocked(&store, settings.hold_max).await;
    }
    loop {
        match client.lock_with(&name, &options).await {
            Ok(guard) => hold(&store, guard, settings.hold_max).await,
            Err(e) => {
                println!("err {} {}", wall_ns(), e.to_string().replace('\n', " "));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One hold: report, write, wait, write again, give back. A hold whose
/// validity passed meanwhile (a pause, a partition) must have been reported
/// lost by its guard: that is waited for (the guard's watchdog marks it at
/// once) and reported.
async fn hold(store: &SqlStore<Sqlite>, guard: LockGuard, hold_max: Duration) {
    let token = guard.fencing_token();
    println!("acq {} {}", token.0, wall_ns());
    // When the guard said the lock was lost: the holder stops trusting it
    // then (a session backend's lease may still be "valid" by its ttl).
    let lost_at = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let (lost, lost_at) = (guard.lost(), lost_at.clone());
        tokio::spawn(async move {
            lost.await;
            lost_at.store(wall_ns(), Ordering::SeqCst);
        })
    };
    write(store, token).await;
    let hold = rand::thread_rng().gen_range(Duration::ZERO..=hold_max);
    tokio::time::sleep(hold).await;
    // No check of the guard here: a late write must be refused by the store.
    write(store, token).await;
    let until = held_until(&guard);
    if Instant::now() >= guard.lease().valid_until() {
        match tokio::time::timeout(LOST_SIGNAL_BOUND, guard.lost()).await {
            Ok(_) => println!("lost {} {}", token.0, wall_ns()),
            Err(_) => println!("unnoticed {} {}", token.0, wall_ns()),
        }
    } else if guard.is_lost() {
        println!("lost {} {}", token.0, wall_ns());
    }
    // (A lost guard's watcher has run by now: is_lost and lost() above
    // resolve only after the state changed, which the watcher also awaits.)
    tokio::task::yield_now().await;
    watcher.abort();
    println!(
        "rel {} {}",
        token.0,
        until.min(lost_at.load(Ordering::SeqCst))
    );
    let _ = guard.release().await;
}

/// Holds without a lock, again and again, as [`hold`] reports them.
async fn unlocked(store: &SqlStore<Sqlite>, hold_max: Duration) -> Result<(), String> {
    for token in 1.. {
        let token = FencingToken(token);
        println!("acq {} {}", token.0, wall_ns());
        write(store, token).await;
        let hold = rand::thread_rng().gen_range(Duration::ZERO..=hold_max);
        tokio::time::sleep(hold).await;
        write(store, token).await;
        println!("rel {} {}", token.0, wall_ns());
    }
    Ok(())
}

/// How long a guard whose validity has passed may take to report the loss.
const LOST_SIGNAL_BOUND: Duration = Duration::from_secs(1);

/// The end of the hold as others may see it: now, or the lease's validity
/// if that passed already (a paused holder).
fn held_until(guard: &LockGuard) -> u64 {
    let now = wall_ns();
    let valid = guard.lease().valid_until();
    match Instant::now().checked_duration_since(valid) {
        Some(past) => now.saturating_sub(u64::try_from(past.as_nanos()).unwrap_or(u64::MAX)),
        None => now,
    }
}

/// One fenced write of the hold's token.
async fn write(store: &SqlStore<Sqlite>, token: FencingToken) {
    let outcome = match store
        .set(RESOURCE, token, token.0.to_string().as_bytes())
        .await
    {
        Ok(_) => "ok",
        Err(FenceError::Stale(_)) => "refused",
        Err(e) => {
            println!("storeerr {} {e}", wall_ns());
            return;
        }
    };
    println!("write {} {outcome} {}", token.0, wall_ns());
}
