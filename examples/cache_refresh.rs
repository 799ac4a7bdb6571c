//! A cached value refreshed under a write lock while readers in several
//! processes read it under read locks: readers share, the refresher is alone,
//! and nobody ever sees half a refresh.
//!
//! ```text
//! cargo run --release --example cache_refresh
//! cargo run --release --example cache_refresh -- --url redis://127.0.0.1:16379
//! cargo run --release --example cache_refresh -- --workers 3 --readers 6 --reads 40
//! ```
//!
//! The cache entry is two files written one after the other, a rendered
//! report and its version tag (as an HTTP cache keeps a body and its ETag),
//! so a refresh is two writes with time between them. The refresher (this
//! process) rewrites both under `write_lock`, again and again, while
//! `--workers` reader processes (default 2) each run `--readers` readers
//! (default 4) that read the entry `--reads` times each (default 25) under
//! `read_lock`, checking that the report and its tag carry the same version.
//! Every hold is reported (when it was asked for, granted and released, and
//! its fencing token), and the refresher checks that:
//!
//! - no reader ever saw a report and a tag of different versions,
//! - readers held the lock together (they share it; it is no mutex),
//! - the refresher never held it at the same moment as any reader,
//! - refreshes happened while the readers read (they saw several versions),
//! - every grant got its own fencing token, and (on backends with fencing)
//!   a grant asked for after another was granted got a greater one,
//!
//! and exits non-zero otherwise.
//!
//! The lock backend is `--url` (or `--backend`, as in the other examples),
//! by default the Redis instance in `DISTLOCK_REDIS_URL` if set, else a
//! SQLite file in the temporary directory; it must serve reader-writer locks
//! (`Capabilities::shared`). A backend inside one process (`memory://`) runs
//! the readers as tasks of this process instead. The reader processes are
//! this same executable, started with the hidden `--worker` argument.

#[path = "support/holds.rs"]
mod holds;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use distlock::{AcquireOptions, LockClient, Wait};
use holds::{fencing_problem, holds_in, most_at_once, run_workers, wall_ns, Hold, Kind};
use support::{flags, Result};

/// How long a hold lives unless extended (the guard extends it while held).
const TTL: Duration = Duration::from_secs(10);
/// How long a reader or the refresher waits for its turn.
const WAIT: Duration = Duration::from_secs(30);
/// The time between a refresh's two writes.
const BETWEEN_WRITES: Duration = Duration::from_millis(10);
/// The time between a read's two reads.
const BETWEEN_READS: Duration = Duration::from_millis(3);
/// The refresher's pause between refreshes.
const REFRESH_EVERY: Duration = Duration::from_millis(60);

/// What the refresher tells each reader process.
#[derive(Clone, Debug)]
struct Settings {
    url: String,
    /// The lock's name, unique to this run.
    name: String,
    /// The directory that holds the cache entry.
    cache: PathBuf,
    workers: usize,
    readers: usize,
    reads: usize,
}

impl Settings {
    /// The arguments that start reader process `worker` with these settings.
    fn worker_args(&self, worker: usize) -> Vec<String> {
        [
            ("--worker", worker.to_string()),
            ("--url", self.url.clone()),
            ("--name", self.name.clone()),
            ("--cache", self.cache.display().to_string()),
            ("--readers", self.readers.to_string()),
            ("--reads", self.reads.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }

    fn client_options() -> AcquireOptions {
        AcquireOptions::new(TTL).with_wait(Wait::For(WAIT))
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cache_refresh: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cache_refresh: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let known = [
        "--url",
        "--backend",
        "--workers",
        "--readers",
        "--reads",
        "--worker",
        "--name",
        "--cache",
    ];
    let f = flags(&args, &known)?;
    let number = |flag: &str, default: usize| -> Result<usize> {
        Ok(match f.get(flag) {
            Some(v) => v.parse().map_err(|e| format!("{flag} {v}: {e}"))?,
            None => default,
        })
    };
    let url = match f.get("--url").or_else(|| f.get("--backend")) {
        Some(url) => url.clone(),
        None => holds::default_url("cache-refresh-locks.db")?,
    };
    let run = format!("cache-refresh-{}", std::process::id());
    let cache = match f.get("--cache") {
        Some(dir) => PathBuf::from(dir),
        None => holds::temp_path(&run)?,
    };
    let settings = Settings {
        url,
        name: f
            .get("--name")
            .cloned()
            .unwrap_or_else(|| format!("examples/{run}")),
        cache,
        workers: number("--workers", 2)?,
        readers: number("--readers", 4)?,
        reads: number("--reads", 25)?,
    };
    if settings.workers == 0 || settings.readers == 0 || settings.reads == 0 {
        return Err("--workers, --readers and --reads must be at least 1".into());
    }
    match f.get("--worker") {
        // A reader process: read, report every hold and every torn read.
        Some(worker) => {
            for line in read_entries(settings, worker.parse()?).await? {
                println!("{line}");
            }
            Ok(true)
        }
        None => {
            let outcome = refresh_while_read(&settings).await;
            // The entry was this run's alone.
            if !f.contains_key("--cache") {
                let _ = std::fs::remove_dir_all(&settings.cache);
            }
            outcome
        }
    }
}

// ---------------------------------------------------------------------------
// The cache entry: a report and its version tag, two files.
// ---------------------------------------------------------------------------

fn report_path(cache: &Path) -> PathBuf {
    cache.join("report.txt")
}

fn tag_path(cache: &Path) -> PathBuf {
    cache.join("report.etag")
}

/// A refresh: the report first, then (a moment later) its tag.
async fn write_entry(cache: &Path, version: u64) -> Result<()> {
    let report = format!("version {version}\nrendered at {} ns\n", wall_ns());
    tokio::fs::write(report_path(cache), report).await?;
    tokio::time::sleep(BETWEEN_WRITES).await;
    tokio::fs::write(tag_path(cache), version.to_string()).await?;
    Ok(())
}

/// A read: the report's version and the tag's (`None` for a file caught
/// half-written).
async fn read_entry(cache: &Path) -> Result<(Option<u64>, Option<u64>)> {
    let report = tokio::fs::read_to_string(report_path(cache)).await?;
    tokio::time::sleep(BETWEEN_READS).await;
    let tag = tokio::fs::read_to_string(tag_path(cache)).await?;
    let report_version = report
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|v| v.parse().ok());
    Ok((report_version, tag.trim().parse().ok()))
}

// ---------------------------------------------------------------------------
// The refresher: start the readers, refresh until they are done, check.
// ---------------------------------------------------------------------------

async fn refresh_while_read(s: &Settings) -> Result<bool> {
    println!(
        "cache_refresh: {} reader processes × {} readers × {} reads, one refresher; backend {}",
        s.workers,
        s.readers,
        s.reads,
        distlock::redact_url(&s.url)
    );
    let backend = distlock::connect(&s.url).await?;
    let caps = backend.capabilities();
    if !caps.shared {
        return Err(format!(
            "the {} backend serves no reader-writer locks (Capabilities::shared is false); \
             pass --url with one that does (memory:// does, within one process)",
            backend.backend_name()
        )
        .into());
    }
    if !caps.cross_process {
        println!(
            "cache_refresh: note: the {} backend lives in this process; the readers run as its tasks",
            backend.backend_name()
        );
    }
    let client = LockClient::with_defaults(backend, Settings::client_options());
    std::fs::create_dir_all(&s.cache)?;
    write_entry(&s.cache, 0).await?;

    let args = (0..s.workers).map(|w| s.worker_args(w)).collect();
    let cross_process = caps.cross_process;
    let settings = s.clone();
    let readers = tokio::spawn(async move {
        run_workers(cross_process, args, |worker| {
            read_entries(settings.clone(), worker)
        })
        .await
    });
    let mut writes = Vec::new();
    let mut version = 0;
    while !readers.is_finished() {
        version += 1;
        writes.push(refresh(&client, s, version).await?.line());
        tokio::time::sleep(REFRESH_EVERY).await;
    }
    let mut lines = readers.await??;
    lines.extend(writes);
    check(s, &lines, caps.fencing)
}

/// One refresh under the write lock; returns its hold.
async fn refresh(client: &LockClient, s: &Settings, version: u64) -> Result<Hold> {
    let called = wall_ns();
    let guard = client.write_lock(s.name.as_str()).await?;
    let start = wall_ns();
    tokio::select! {
        written = write_entry(&s.cache, version) => written?,
        reason = guard.lost() => return Err(format!("the refresher lost the write lock: {reason}").into()),
    }
    let end = wall_ns();
    let token = guard.fencing_token().get();
    guard.release().await?;
    Ok(Hold {
        kind: Kind::Writer,
        worker: s.workers,
        called,
        start,
        end,
        token,
        value: version,
    })
}

/// Checks every hold and read the readers and the refresher reported.
fn check(s: &Settings, lines: &[String], fencing: bool) -> Result<bool> {
    let holds = holds_in(lines)?;
    let (reads, writes): (Vec<Hold>, Vec<Hold>) =
        holds.iter().copied().partition(|h| h.kind == Kind::Reader);
    let torn: Vec<&String> = lines.iter().filter(|l| l.starts_with("torn ")).collect();
    let readers_at_once = most_at_once(&reads);
    let beside_writer = writes
        .iter()
        .map(|w| reads.iter().filter(|r| r.overlaps(w)).count())
        .sum::<usize>();
    let versions: BTreeSet<u64> = reads.iter().map(|r| r.value).collect();
    let fencing = fencing_problem(&holds, fencing);
    let expected = s.workers * s.readers * s.reads;
    println!(
        "cache_refresh: {} of {expected} reads, {} refreshes; at most {readers_at_once} readers at once; \
         {} versions seen; torn reads: {}; reads beside a refresh: {beside_writer}; {} distinct fencing tokens",
        reads.len(),
        writes.len(),
        versions.len(),
        torn.len(),
        if fencing.is_none() { "all" } else { "NOT all" },
    );
    let mut ok = true;
    let mut fail = |broken: bool, what: String| {
        if broken {
            println!("cache_refresh: FAILED: {what}");
            ok = false;
        }
    };
    fail(
        reads.len() != expected,
        format!("{} reads reported, expected {expected}", reads.len()),
    );
    fail(
        !torn.is_empty(),
        format!(
            "{} reads saw half a refresh, the first: {}",
            torn.len(),
            torn.first().map_or("", |l| l.as_str())
        ),
    );
    fail(
        readers_at_once < 2,
        "never two readers at once: the read lock acted as a mutex".into(),
    );
    fail(
        beside_writer > 0,
        format!("{beside_writer} reads held the lock while the refresher held it"),
    );
    fail(
        versions.len() < 2,
        format!(
            "the readers saw {} version(s) over {} refreshes: the refresher did not run while they read",
            versions.len(),
            writes.len()
        ),
    );
    if let Some(problem) = fencing {
        fail(true, problem);
    }
    println!("cache refresh: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

// ---------------------------------------------------------------------------
// A reader process (or task group): `readers` readers, `reads` reads each.
// ---------------------------------------------------------------------------

/// Returns one `hold` line per read, and a `torn` line for each read whose
/// report and tag disagreed.
async fn read_entries(s: Settings, worker: usize) -> Result<Vec<String>> {
    let backend = distlock::connect(&s.url).await?;
    let client = LockClient::with_defaults(backend, Settings::client_options());
    let mut readers = Vec::new();
    for reader in 0..s.readers {
        let (client, s) = (client.clone(), s.clone());
        let task: tokio::task::JoinHandle<Result<Vec<String>>> = tokio::spawn(async move {
            let mut lines = Vec::new();
            for n in 0..s.reads {
                let called = wall_ns();
                let guard = client.read_lock(s.name.as_str()).await?;
                let start = wall_ns();
                let (report, tag) = tokio::select! {
                    read = read_entry(&s.cache) => read?,
                    reason = guard.lost() => return Err(format!("a reader lost its read lock: {reason}").into()),
                };
                let end = wall_ns();
                let token = guard.fencing_token().get();
                guard.release().await?;
                if report.is_none() || report != tag {
                    lines.push(format!(
                        "torn worker {worker} reader {reader}: report version {report:?}, tag {tag:?}"
                    ));
                }
                let hold = Hold {
                    kind: Kind::Reader,
                    worker,
                    called,
                    start,
                    end,
                    token,
                    value: report.unwrap_or(u64::MAX),
                };
                lines.push(hold.line());
                // The rest of the request the read served: 20–60 ms.
                let pause = 20 + ((worker * 31 + reader * 17 + n * 13) % 41) as u64;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Ok(lines)
        });
        readers.push(task);
    }
    let mut lines = Vec::new();
    for r in readers {
        lines.extend(r.await??);
    }
    Ok(lines)
}
