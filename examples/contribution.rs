//! The contribution scenario: several worker processes, each handling queue
//! messages concurrently, all adding contributions to one shared total.
//!
//! ```text
//! cargo run --release --example contribution
//! cargo run --release --example contribution -- --backend postgres://user:pw@host/db
//! cargo run --release --features redis --example contribution -- --store redis://127.0.0.1:6379
//! cargo run --release --example contribution -- --workers 4 --handlers 8 --messages 250
//! ```
//!
//! Every message means "add `amount` to the total". A handler applies it the
//! way most code does: read the total, do a little async work, write the
//! total plus the amount. With several handlers per process and several
//! processes (a scaled-out consumer), two handlers read the same total and
//! one of the two contributions vanishes: a lost update. An in-process mutex
//! cannot help across processes; a distributed lock can.
//!
//! The example runs the scenario twice: once without a lock, once with
//! every read-modify-write inside `LockClient::with_lock`. The total lives
//! in a fenced store (`distlock::fenced`): by default a table in a SQLite
//! file (`target/contribution.db`, next to the SQLite lock table), or, with
//! `--store redis://…`, a key in Redis — the seed scenario's "contribution
//! amount in the Redis cache", locked by that same Redis unless `--backend`
//! names another lock. The locked writes carry the lock's fencing token and
//! the store refuses a write whose token is lower than the highest it has
//! recorded, so even a handler that stalled past its lease could not
//! overwrite a newer total; the example counts such refusals. It prints
//! what each run lost and exits non-zero if the locked run lost anything.
//!
//! The worker processes are this same executable, started with the hidden
//! `--worker` argument.

#[path = "support/mod.rs"]
mod support;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock::fenced::sqlx::Sqlite;
#[cfg(feature = "redis")]
use distlock::fenced::RedisStore;
use distlock::fenced::{FencedStore, SqlStore};
use distlock::{AcquireOptions, FencingToken, LockClient, Wait};

use support::Result;

/// The lock every handler takes around its read-modify-write, and the name
/// of the total in the store: one lock name per fenced resource.
const LOCK_NAME: &str = "contribution-total";

/// What the unlocked handlers write with: no lock, no token. The store
/// accepts it while nothing higher is recorded — a fence protects nothing
/// unless a lock hands out the tokens.
const NO_TOKEN: FencingToken = FencingToken(0);

/// What the parent tells each worker process.
#[derive(Clone, Debug)]
struct Settings {
    /// The lock backend URL.
    backend: String,
    /// Where the shared total lives: a SQLite file (`PATH` or
    /// `sqlite://PATH`) or a Redis server (`redis://…`).
    store: String,
    /// Worker processes.
    workers: usize,
    /// Concurrent handlers per worker.
    handlers: usize,
    /// Messages per worker.
    messages: usize,
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("contribution: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = runtime.block_on(async {
        let (settings, worker) = parse_args(&args)?;
        match worker {
            // A worker process: handle this worker's messages and exit.
            Some((id, locked)) => run_worker(&settings, id, locked).await.map(|()| true),
            // The parent: run the scenario twice and compare.
            None => run_scenario(&settings).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("contribution: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `--backend URL --workers W --handlers C --messages M` and the
/// hidden `--worker ID --locked true|false` of worker processes.
fn parse_args(args: &[String]) -> Result<(Settings, Option<(usize, bool)>)> {
    // The workspace root, so the default file lands in its `target/`.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let default_store = root.join("target").join("contribution.db");
    let mut settings = Settings {
        backend: format!("sqlite://{}", default_store.display()),
        store: default_store.display().to_string(),
        workers: 4,
        handlers: 8,
        messages: 250,
    };
    let mut worker_id = None;
    let mut locked = false;
    let mut backend_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--backend" => {
                settings.backend = value()?;
                backend_given = true;
            }
            "--store" => settings.store = value()?,
            "--workers" => settings.workers = value()?.parse()?,
            "--handlers" => settings.handlers = value()?.parse()?,
            "--messages" => settings.messages = value()?.parse()?,
            "--worker" => worker_id = Some(value()?.parse()?),
            "--locked" => locked = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: contribution [--backend URL] [--store PATH|redis://…] [--workers W] [--handlers C] [--messages M]\n\
                     defaults: --backend {} --store {} --workers 4 --handlers 8 --messages 250\n\
                     (with --store redis://… and no --backend, the lock is in that Redis too)",
                    settings.backend, settings.store
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    if settings.workers == 0 || settings.handlers == 0 {
        return Err("--workers and --handlers must be at least 1".into());
    }
    // The seed scenario: the total in Redis, locked by the same Redis.
    if is_redis(&settings.store) && !backend_given {
        settings.backend = settings.store.clone();
    }
    Ok((settings, worker_id.map(|id| (id, locked))))
}

/// The amount of message `n` of worker `worker`: varied, deterministic, so
/// the parent knows the exact expected total.
fn amount(worker: usize, n: usize) -> i64 {
    1 + ((worker * 7919 + n * 104_729) % 100) as i64
}

fn expected_total(s: &Settings) -> i64 {
    (0..s.workers)
        .flat_map(|w| (0..s.messages).map(move |n| amount(w, n)))
        .sum()
}

// ---------------------------------------------------------------------------
// The parent: reset the total, start the workers, compare.
// ---------------------------------------------------------------------------

async fn run_scenario(s: &Settings) -> Result<bool> {
    let expected = expected_total(s);
    println!(
        "contribution: {} worker processes × {} concurrent handlers, {} messages per worker; lock backend {}; total in {}",
        s.workers,
        s.handlers,
        s.messages,
        distlock::redact_url(&s.backend),
        distlock::redact_url(&s.store)
    );
    // Fail early, with a clear message, if the backend URL is wrong.
    let backend = distlock::connect(&s.backend).await?;
    if !backend.capabilities().cross_process {
        println!(
            "note: this backend lives inside one process; the worker processes \
             cannot share it, so the locked run will lose updates too"
        );
    }
    drop(backend);
    let store = Store::open(&s.store).await?;

    let mut got = [0i64; 2];
    for (i, locked) in [false, true].into_iter().enumerate() {
        store.reset().await?;
        let start = Instant::now();
        let rejected = run_workers(s, locked).await?;
        let total = read_total(store.fenced()).await?;
        got[i] = total;
        let lost = expected - total;
        println!(
            "{:<13} expected {expected}, got {total}: lost {lost} ({:.1}%) in {:.1?}{}",
            if locked {
                "with lock:"
            } else {
                "without lock:"
            },
            100.0 * lost as f64 / expected as f64,
            start.elapsed(),
            if locked {
                format!("; stale writes refused by the fencing check: {rejected}")
            } else {
                String::new()
            }
        );
    }
    // The summary line scripts look for.
    println!("with lock: expected {expected}, got {}", got[1]);
    Ok(got[1] == expected)
}

/// Starts the worker processes for one run and waits for all of them;
/// returns the number of writes the fencing check refused.
async fn run_workers(s: &Settings, locked: bool) -> Result<u64> {
    let args = (0..s.workers)
        .map(|id| {
            vec![
                "--worker".into(),
                id.to_string(),
                "--locked".into(),
                locked.to_string(),
                "--backend".into(),
                s.backend.clone(),
                "--store".into(),
                s.store.clone(),
                "--handlers".into(),
                s.handlers.to_string(),
                "--messages".into(),
                s.messages.to_string(),
            ]
        })
        .collect();
    let mut rejected = 0;
    // Each worker prints `rejected <n>` as its last line.
    for out in support::run_self(args).await? {
        if let Some(n) = support::last_value(&out, "rejected ") {
            rejected += n.parse::<u64>()?;
        }
    }
    Ok(rejected)
}

// ---------------------------------------------------------------------------
// A worker: C handlers draining this worker's M messages.
// ---------------------------------------------------------------------------

async fn run_worker(s: &Settings, worker: usize, locked: bool) -> Result<()> {
    let store = Store::open(&s.store).await?;
    // Locked runs: one lock client per process, as an application would
    // have. A 10 s ttl is plenty for one read-modify-write (the client
    // extends it in the background anyway); wait up to a minute for a turn.
    let client = if locked {
        let backend = distlock::connect(&s.backend).await?;
        let options = AcquireOptions::new(Duration::from_secs(10))
            .with_wait(Wait::For(Duration::from_secs(60)));
        Some(LockClient::with_defaults(backend, options))
    } else {
        None
    };
    // The "queue": the next message number to take.
    let next = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let mut handlers = Vec::new();
    for _ in 0..s.handlers {
        let (store, client, next, rejected) = (
            store.clone(),
            client.clone(),
            next.clone(),
            rejected.clone(),
        );
        let messages = s.messages;
        handlers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= messages {
                    return Ok::<(), Box<dyn Error + Send + Sync>>(());
                }
                let amount = amount(worker, n);
                match &client {
                    None => add_unlocked(store.fenced(), amount).await?,
                    Some(client) => {
                        // The whole read-modify-write happens while holding
                        // the lock; the fencing token goes with the write.
                        let accepted = client
                            .with_lock(LOCK_NAME, |held| {
                                let store = store.clone();
                                async move {
                                    add_fenced(store.fenced(), amount, held.fencing_token()).await
                                }
                            })
                            .await??;
                        if !accepted {
                            rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    for h in handlers {
        h.await??;
    }
    println!("rejected {}", rejected.load(Ordering::Relaxed));
    Ok(())
}

// ---------------------------------------------------------------------------
// The store: the total, kept by a fenced store (`distlock::fenced`) that
// records the highest fencing token it accepted.
// ---------------------------------------------------------------------------

fn is_redis(store: &str) -> bool {
    store.starts_with("redis://") || store.starts_with("rediss://")
}

/// Where the total lives.
#[derive(Clone)]
enum Store {
    /// A table in a SQLite file.
    Sqlite(SqlStore<Sqlite>),
    /// A key in Redis.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl Store {
    /// Opens the store `spec` names: `redis://…` or a SQLite file.
    async fn open(spec: &str) -> Result<Store> {
        if is_redis(spec) {
            #[cfg(feature = "redis")]
            return Ok(Store::Redis(RedisStore::connect(spec).await?));
            #[cfg(not(feature = "redis"))]
            return Err(format!(
                "--store {} needs the `redis` feature (cargo run --features redis --example contribution …)",
                distlock::redact_url(spec)
            )
            .into());
        }
        let path = spec.strip_prefix("sqlite://").unwrap_or(spec);
        let store = SqlStore::new(support::open_sqlite(Path::new(path)).await?);
        store.create_table().await?;
        Ok(Store::Sqlite(store))
    }

    fn fenced(&self) -> &dyn FencedStore {
        match self {
            Store::Sqlite(store) => store,
            #[cfg(feature = "redis")]
            Store::Redis(store) => store,
        }
    }

    /// Forgets the total and its recorded token before a run (no worker
    /// is writing then).
    async fn reset(&self) -> Result<()> {
        match self {
            Store::Sqlite(store) => store.clear(LOCK_NAME).await?,
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.clear(LOCK_NAME).await?,
        }
        Ok(())
    }
}

/// The total (0 before the first write).
async fn read_total(store: &dyn FencedStore) -> Result<i64> {
    match store.read(LOCK_NAME).await? {
        None => Ok(0),
        Some(record) => record
            .counter()
            .ok_or_else(|| format!("the total holds {:?}, not a number", record.value).into()),
    }
}

/// The naive handler: read, await something, write back. Racy.
async fn add_unlocked(store: &dyn FencedStore, amount: i64) -> Result<()> {
    let total = read_total(store).await?;
    // The handler's "other work" (a call to another service, say): any await
    // lets another handler read the same total.
    tokio::task::yield_now().await;
    let total = (total + amount).to_string();
    store.set(LOCK_NAME, NO_TOKEN, total.as_bytes()).await?;
    Ok(())
}

/// The same handler under the lock, with the fencing token: the write only
/// lands if no holder with a newer token has written since. Returns whether
/// the write was accepted.
async fn add_fenced(store: &dyn FencedStore, amount: i64, token: FencingToken) -> Result<bool> {
    let total = read_total(store).await?;
    tokio::task::yield_now().await;
    let total = (total + amount).to_string();
    match store.set(LOCK_NAME, token, total.as_bytes()).await {
        Ok(()) => Ok(true),
        // A newer holder wrote first: this handler's lease ran out.
        Err(refused) if refused.is_stale() => Ok(false),
        Err(e) => Err(e.into()),
    }
}
