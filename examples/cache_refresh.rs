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
#[path = "support/workers.rs"]
mod workers;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use distlock::{AcquireOptions, LockClient, Wait};
use holds::{fencing_problem, hold_while, holds_in, most_at_once, wall_ns, Hold, Kind, Verdict};
use support::Result;
use workers::{join_lines, report, run_workers, Args, Example, Primitive, Run};

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

/// This example, for the plumbing the examples share.
const EXAMPLE: Example = Example {
    program: "cache_refresh",
    workers: "readers",
    needs: Primitive::ReaderWriter,
};

/// What the refresher tells each reader process.
#[derive(Clone, Debug)]
struct Settings {
    /// The backend, the lock's name and the reader processes.
    run: Run,
    /// The directory that holds the cache entry.
    cache: PathBuf,
    readers: usize,
    reads: usize,
}

impl Settings {
    /// The arguments that start reader process `worker` with these settings.
    fn worker_args(&self, worker: usize) -> Vec<String> {
        self.run.worker_args(
            worker,
            [
                ("--cache", self.cache.display().to_string()),
                ("--readers", self.readers.to_string()),
                ("--reads", self.reads.to_string()),
            ],
        )
    }

    fn client_options() -> AcquireOptions {
        AcquireOptions::new(TTL).with_wait(Wait::For(WAIT))
    }
}

fn main() -> ExitCode {
    support::run_main(EXAMPLE.program, main_async())
}

async fn main_async() -> Result<bool> {
    let args = Args::from_env(&[
        "--url",
        "--backend",
        "--workers",
        "--readers",
        "--reads",
        "--worker",
        "--name",
        "--cache",
    ])?;
    let id = format!("cache-refresh-{}", std::process::id());
    let run = args.run("cache-refresh-locks.db", || format!("examples/{id}"))?;
    let cache = match args.get("--cache") {
        Some(dir) => PathBuf::from(dir),
        None => workers::temp_path(&id)?,
    };
    let settings = Settings {
        run,
        cache,
        readers: args.number("--readers", 4)?,
        reads: args.number("--reads", 25)?,
    };
    if settings.run.workers == 0 || settings.readers == 0 || settings.reads == 0 {
        return Err("--workers, --readers and --reads must be at least 1".into());
    }
    match args.worker()? {
        // A reader process: read, report every hold and every torn read.
        Some(worker) => report(read_entries(settings, worker).await?),
        None => {
            let outcome = refresh_while_read(&settings).await;
            // The entry was this run's alone.
            if args.get("--cache").is_none() {
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
        s.run.workers,
        s.readers,
        s.reads,
        distlock::redact_url(&s.run.url)
    );
    let (backend, caps) = EXAMPLE.connect(&s.run.url).await?;
    let client = LockClient::with_defaults(backend, Settings::client_options());
    std::fs::create_dir_all(&s.cache)?;
    write_entry(&s.cache, 0).await?;

    let args = (0..s.run.workers).map(|w| s.worker_args(w)).collect();
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
    let held = hold_while(
        client.write_lock(s.run.name.as_str()),
        write_entry(&s.cache, version),
        "the refresher lost the write lock",
    )
    .await?;
    Ok(held.hold(Kind::Writer, s.run.workers, version))
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
    let expected = s.run.workers * s.readers * s.reads;
    println!(
        "cache_refresh: {} of {expected} reads, {} refreshes; at most {readers_at_once} readers at once; \
         {} versions seen; torn reads: {}; reads beside a refresh: {beside_writer}; {} distinct fencing tokens",
        reads.len(),
        writes.len(),
        versions.len(),
        torn.len(),
        if fencing.is_none() { "all" } else { "NOT all" },
    );
    let mut verdict = Verdict::new(EXAMPLE.program);
    verdict.fail_if(
        reads.len() != expected,
        format!("{} reads reported, expected {expected}", reads.len()),
    );
    verdict.fail_if(
        !torn.is_empty(),
        format!(
            "{} reads saw half a refresh, the first: {}",
            torn.len(),
            torn.first().map_or("", |l| l.as_str())
        ),
    );
    verdict.fail_if(
        readers_at_once < 2,
        "never two readers at once: the read lock acted as a mutex".into(),
    );
    verdict.fail_if(
        beside_writer > 0,
        format!("{beside_writer} reads held the lock while the refresher held it"),
    );
    verdict.fail_if(
        versions.len() < 2,
        format!(
            "the readers saw {} version(s) over {} refreshes: the refresher did not run while they read",
            versions.len(),
            writes.len()
        ),
    );
    verdict.fail_on(fencing);
    Ok(verdict.finish("cache refresh"))
}

// ---------------------------------------------------------------------------
// A reader process (or task group): `readers` readers, `reads` reads each.
// ---------------------------------------------------------------------------

/// Returns one `hold` line per read, and a `torn` line for each read whose
/// report and tag disagreed.
async fn read_entries(s: Settings, worker: usize) -> Result<Vec<String>> {
    let backend = distlock::connect(&s.run.url).await?;
    let client = LockClient::with_defaults(backend, Settings::client_options());
    join_lines(s.readers, |reader| {
        let (client, s) = (client.clone(), s.clone());
        async move {
            let mut lines = Vec::new();
            for n in 0..s.reads {
                let held = hold_while(
                    client.read_lock(s.run.name.as_str()),
                    read_entry(&s.cache),
                    "a reader lost its read lock",
                )
                .await?;
                let (report, tag) = held.output;
                if report.is_none() || report != tag {
                    lines.push(format!(
                        "torn worker {worker} reader {reader}: report version {report:?}, tag {tag:?}"
                    ));
                }
                let value = report.unwrap_or(u64::MAX);
                lines.push(held.hold(Kind::Reader, worker, value).line());
                // The rest of the request the read served: 20–60 ms.
                let pause = 20 + ((worker * 31 + reader * 17 + n * 13) % 41) as u64;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Ok(lines)
        }
    })
    .await
}
