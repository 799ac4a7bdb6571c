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
#[path = "support/workers.rs"]
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use distlock::{AcquireOptions, LockClient, Wait};
use holds::{fencing_problem, hold_while, holds_in, most_at_once, Hold, Kind, Verdict};
use support::Result;
use workers::{join_lines, report, run_workers, Args, Example, Primitive, Run};

/// How long a permit lives unless extended (the guard extends it while held).
const TTL: Duration = Duration::from_secs(10);
/// How long a handler waits for a permit.
const WAIT: Duration = Duration::from_secs(60);

/// This example, for the plumbing the examples share.
const EXAMPLE: Example = Example {
    program: "handler_pool",
    workers: "handlers",
    needs: Primitive::Semaphore,
};

/// What the scheduler tells each handler process.
#[derive(Clone, Debug)]
struct Settings {
    /// The backend, the semaphore's name and the handler processes.
    run: Run,
    handlers: usize,
    jobs: usize,
    permits: u32,
}

impl Settings {
    /// The arguments that start handler process `worker` with these settings.
    fn worker_args(&self, worker: usize) -> Vec<String> {
        self.run.worker_args(
            worker,
            [
                ("--handlers", self.handlers.to_string()),
                ("--jobs", self.jobs.to_string()),
                ("--permits", self.permits.to_string()),
            ],
        )
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
        "--handlers",
        "--jobs",
        "--permits",
        "--worker",
        "--name",
    ])?;
    let settings = Settings {
        run: args.run("handler-pool-locks.db", || {
            format!("examples/handler-pool/{}", std::process::id())
        })?,
        handlers: args.number("--handlers", 4)?,
        jobs: args.number("--jobs", 4)?,
        permits: u32::try_from(args.number("--permits", 3)?)?,
    };
    if settings.run.workers == 0 || settings.handlers == 0 || settings.jobs == 0 {
        return Err("--workers, --handlers and --jobs must be at least 1".into());
    }
    match args.worker()? {
        // A handler process: handle this worker's jobs, report every hold.
        Some(worker) => report(handle_jobs(settings, worker).await?),
        None => schedule(&settings).await,
    }
}

/// Starts the handlers, collects their holds, checks them.
async fn schedule(s: &Settings) -> Result<bool> {
    println!(
        "handler_pool: {} handler processes × {} handlers × {} jobs, {} permits; backend {}",
        s.run.workers,
        s.handlers,
        s.jobs,
        s.permits,
        distlock::redact_url(&s.run.url)
    );
    let (_backend, caps) = EXAMPLE.connect(&s.run.url).await?;
    let args = (0..s.run.workers).map(|w| s.worker_args(w)).collect();
    let lines = run_workers(caps.cross_process, args, |worker| {
        handle_jobs(s.clone(), worker)
    })
    .await?;
    let holds = holds_in(&lines)?;

    let expected = s.run.workers * s.handlers * s.jobs;
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
    let mut verdict = Verdict::new(EXAMPLE.program);
    verdict.fail_if(
        holds.len() != expected,
        format!("{} jobs handled, expected {expected}", holds.len()),
    );
    verdict.fail_if(
        most > s.permits as usize,
        format!(
            "{most} handlers held a permit at once, with {} permits",
            s.permits
        ),
    );
    verdict.fail_if(
        s.permits > 1 && most < 2,
        "never two handlers at once: the semaphore acted as a mutex".into(),
    );
    verdict.fail_on(fencing);
    Ok(verdict.finish("handler pool"))
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
    let backend = distlock::connect(&s.run.url).await?;
    let client =
        LockClient::with_defaults(backend, AcquireOptions::new(TTL).with_wait(Wait::For(WAIT)));
    let pool = client.semaphore(s.run.name.as_str(), s.permits)?;
    join_lines(s.handlers, |handler| {
        let pool = pool.clone();
        let jobs = s.jobs;
        async move {
            let mut lines = Vec::new();
            for n in 0..jobs {
                let job = (worker * 1000 + handler) * 1000 + n;
                // The job: a call to the bounded service, 20–70 ms.
                let work = Duration::from_millis(20 + (job as u64 * 37 % 51));
                let call = async {
                    tokio::time::sleep(work).await;
                    Ok(())
                };
                let lost = format!("job {job} lost its permit");
                let held = hold_while(pool.acquire(), call, &lost).await?;
                lines.push(held.hold(Kind::Permit, worker, job as u64).line());
            }
            Ok(lines)
        }
    })
    .await
}
