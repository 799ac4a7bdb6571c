//! A pool of handlers spread over several processes, at most three of them
//! working at once: a semaphore shared by every handler of every process.
//!
//! ```text
//! cargo run --release --example handler_pool
//! cargo run --release --example handler_pool -- --url redis://127.0.0.1:16379
//! cargo run --release --example handler_pool -- --workers 3 --handlers 4 --jobs 5 --permits 2
//! ```
//!
//! The scheduler (this process) hands jobs to `--workers` handler processes
//! (default 2), each running `--handlers` concurrent handlers (default 4)
//! that process `--jobs` jobs each (default 4). The downstream service the
//! jobs call takes at most `--permits` calls at once (default 3), so every
//! handler takes a permit of one semaphore before it processes a job and
//! gives it back when the job is done, whichever process it runs in. Each
//! handler reports every job's hold (when it asked for the permit, when it
//! got it, when it gave it back, and its fencing token), and the scheduler
//! checks that:
//!
//! - every job was handled,
//! - never more than `--permits` handlers worked at once,
//! - more than one did at some moment (a pool, not a mutex),
//! - every permit got its own fencing token, and (on backends with fencing)
//!   a permit asked for after another was granted got a greater one,
//!
//! and exits non-zero otherwise.
//!
//! The lock backend is `--url` (or `--backend`, as in the other examples),
//! by default the Redis instance in `DISTLOCK_REDIS_URL` if set, else a
//! SQLite file in the temporary directory; it must serve semaphores
//! (`Capabilities::semaphore`). A backend inside one process (`memory://`)
//! runs the handlers as tasks of this process instead. The handler processes
//! are this same executable, started with the hidden `--worker` argument.

#[path = "support/holds.rs"]
mod holds;
#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::time::Duration;

use distlock::{AcquireOptions, LockClient, Wait};
use holds::{fencing_problem, holds_in, most_at_once, run_workers, wall_ns, Hold, Kind};
use support::{flags, Result};

/// How long a permit lives unless extended (the guard extends it while held).
const TTL: Duration = Duration::from_secs(10);
/// How long a handler waits for a permit.
const WAIT: Duration = Duration::from_secs(60);

/// What the scheduler tells each handler process.
#[derive(Clone, Debug)]
struct Settings {
    url: String,
    /// The semaphore's name, unique to this run.
    name: String,
    workers: usize,
    handlers: usize,
    jobs: usize,
    permits: u32,
}

impl Settings {
    /// The arguments that start handler process `worker` with these settings.
    fn worker_args(&self, worker: usize) -> Vec<String> {
        [
            ("--worker", worker.to_string()),
            ("--url", self.url.clone()),
            ("--name", self.name.clone()),
            ("--handlers", self.handlers.to_string()),
            ("--jobs", self.jobs.to_string()),
            ("--permits", self.permits.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("handler_pool: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("handler_pool: {e}");
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
        "--handlers",
        "--jobs",
        "--permits",
        "--worker",
        "--name",
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
        None => holds::default_url("handler-pool-locks.db")?,
    };
    let settings = Settings {
        url,
        name: f
            .get("--name")
            .cloned()
            .unwrap_or_else(|| format!("examples/handler-pool/{}", std::process::id())),
        workers: number("--workers", 2)?,
        handlers: number("--handlers", 4)?,
        jobs: number("--jobs", 4)?,
        permits: u32::try_from(number("--permits", 3)?)?,
    };
    if settings.workers == 0 || settings.handlers == 0 || settings.jobs == 0 {
        return Err("--workers, --handlers and --jobs must be at least 1".into());
    }
    match f.get("--worker") {
        // A handler process: handle this worker's jobs, report every hold.
        Some(worker) => {
            for line in handle_jobs(settings, worker.parse()?).await? {
                println!("{line}");
            }
            Ok(true)
        }
        None => schedule(&settings).await,
    }
}

/// Starts the handlers, collects their holds, checks them.
async fn schedule(s: &Settings) -> Result<bool> {
    println!(
        "handler_pool: {} handler processes × {} handlers × {} jobs, {} permits; backend {}",
        s.workers,
        s.handlers,
        s.jobs,
        s.permits,
        distlock::redact_url(&s.url)
    );
    let backend = distlock::connect(&s.url).await?;
    let caps = backend.capabilities();
    if !caps.semaphore {
        return Err(format!(
            "the {} backend serves no semaphores (Capabilities::semaphore is false); \
             pass --url with one that does (memory:// does, within one process)",
            backend.backend_name()
        )
        .into());
    }
    if !caps.cross_process {
        println!(
            "handler_pool: note: the {} backend lives in this process; the handlers run as its tasks",
            backend.backend_name()
        );
    }
    let args = (0..s.workers).map(|w| s.worker_args(w)).collect();
    let lines = run_workers(caps.cross_process, args, |worker| {
        handle_jobs(s.clone(), worker)
    })
    .await?;
    let holds = holds_in(&lines)?;

    let expected = s.workers * s.handlers * s.jobs;
    let most = most_at_once(&holds);
    let across = most_at_once_across_workers(&holds);
    let fencing = fencing_problem(&holds, caps.fencing);
    println!(
        "handler_pool: {} of {expected} jobs handled; at most {most} handlers at once ({} permits), \
         {across} at once with holders in more than one process; {} distinct fencing tokens",
        holds.len(),
        s.permits,
        if fencing.is_none() { "all" } else { "NOT all" },
    );
    let mut ok = true;
    let mut fail = |broken: bool, what: String| {
        if broken {
            println!("handler_pool: FAILED: {what}");
            ok = false;
        }
    };
    fail(
        holds.len() != expected,
        format!("{} jobs handled, expected {expected}", holds.len()),
    );
    fail(
        most > s.permits as usize,
        format!(
            "{most} handlers held a permit at once, with {} permits",
            s.permits
        ),
    );
    fail(
        s.permits > 1 && most < 2,
        "never two handlers at once: the semaphore acted as a mutex".into(),
    );
    if let Some(problem) = fencing {
        fail(true, problem);
    }
    println!("handler pool: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// The most holds at one moment that came from more than one worker: how
/// much of the concurrency the processes shared (reported, not required).
fn most_at_once_across_workers(holds: &[Hold]) -> usize {
    holds
        .iter()
        .map(|h| {
            let at_once: Vec<&Hold> = holds
                .iter()
                .filter(|o| o.start <= h.start && h.start < o.end)
                .collect();
            let workers: std::collections::HashSet<usize> =
                at_once.iter().map(|o| o.worker).collect();
            if workers.len() > 1 {
                at_once.len()
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// One handler process (or task group): `handlers` handlers, `jobs` jobs
/// each, every job processed under a permit. Returns one `hold` line per job.
async fn handle_jobs(s: Settings, worker: usize) -> Result<Vec<String>> {
    let backend = distlock::connect(&s.url).await?;
    let client =
        LockClient::with_defaults(backend, AcquireOptions::new(TTL).with_wait(Wait::For(WAIT)));
    let pool = client.semaphore(s.name.as_str(), s.permits)?;
    let mut handlers = Vec::new();
    for handler in 0..s.handlers {
        let pool = pool.clone();
        let jobs = s.jobs;
        let task: tokio::task::JoinHandle<Result<Vec<String>>> = tokio::spawn(async move {
            let mut lines = Vec::new();
            for n in 0..jobs {
                let job = (worker * 1000 + handler) * 1000 + n;
                let called = wall_ns();
                let permit = pool.acquire().await?;
                let start = wall_ns();
                // The job: a call to the bounded service, 20–70 ms.
                let work = Duration::from_millis(20 + (job as u64 * 37 % 51));
                tokio::select! {
                    _ = tokio::time::sleep(work) => {}
                    reason = permit.lost() => {
                        return Err(format!("job {job} lost its permit: {reason}").into());
                    }
                }
                let end = wall_ns();
                let token = permit.fencing_token().get();
                permit.release().await?;
                let hold = Hold {
                    kind: Kind::Permit,
                    worker,
                    called,
                    start,
                    end,
                    token,
                    value: job as u64,
                };
                lines.push(hold.line());
            }
            Ok(lines)
        });
        handlers.push(task);
    }
    let mut lines = Vec::new();
    for h in handlers {
        lines.extend(h.await??);
    }
    Ok(lines)
}
