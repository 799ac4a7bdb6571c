//! `distlock`: run a command while holding a distributed lock, or inspect one.
//!
//! ```text
//! distlock run --backend URL --name NAME [--ttl 30s] [--wait 10s|forever] [--grace 10s] -- CMD ARGS…
//! distlock status --backend URL --name NAME
//! ```
//!
//! `run` acquires the lock, runs the command with the lock held (extending it
//! in the background), releases it when the command exits, and exits with the
//! command's own status. The command sees `DISTLOCK_FENCING_TOKEN`,
//! `DISTLOCK_LOCK_NAME` and `DISTLOCK_LEASE` (the exported lease). If the lock
//! is lost while the command runs, the command gets SIGTERM, then SIGKILL
//! after the grace period. Exit codes are listed in [`exit`].

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use distlock::{AcquireOptions, LockClient, LockError, LockName, Mode, Wait};

mod bench;
mod exit;
mod floor;
mod report;
mod workload;

#[derive(Parser, Debug)]
#[command(
    name = "distlock",
    version,
    about = "Distributed locks from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command while holding a lock.
    Run {
        /// Backend URL (e.g. sqlite://locks.db, redis://127.0.0.1:6379/0).
        #[arg(long, env = "DISTLOCK_BACKEND", hide_env_values = true)]
        backend: String,
        /// Lock name.
        #[arg(long)]
        name: String,
        /// Lease length; extended in the background while the command runs.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: Duration,
        /// How long to wait for the lock: a duration, `0` to try once, or `forever`.
        #[arg(long, default_value = "0", value_parser = parse_wait)]
        wait: Wait,
        /// Time between SIGTERM and SIGKILL when the lock is lost.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        /// Hold one of this many permits of the name's semaphore instead of
        /// the lock itself (every runner of the name must give the same count).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "shared")]
        permits: Option<u32>,
        /// Hold the name as a reader, beside other readers (`--shared`) but
        /// never beside a plain `run` of it, which is the writer.
        #[arg(long)]
        shared: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Benchmark backends against each other and their raw floors.
    Bench {
        /// Backend URLs to compare (repeat the flag).
        #[arg(long = "backend", required = true, num_args = 1)]
        backends: Vec<String>,
        /// How long each workload runs.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        duration: Duration,
        /// Clients in the contended, many-names, semaphore and rw workloads.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// How long each holder keeps the lock.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        hold: Duration,
        /// Names in the many-names workload.
        #[arg(long, default_value_t = 64)]
        names: usize,
        /// Permits of the semaphore workload's name.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        permits: u32,
        /// Share of the rw workload's cycles that read (0 to 1), in a fixed
        /// pattern per client: 0.9 = one write in every ten cycles.
        #[arg(long, default_value = "0.9", value_parser = parse_share)]
        read_share: f64,
        /// Also write the Markdown table here.
        #[arg(long)]
        markdown: Option<std::path::PathBuf>,
        /// Also write an SVG chart here.
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
    },
    /// Show what the backend can tell about a lock.
    Status {
        /// Backend URL.
        #[arg(long, env = "DISTLOCK_BACKEND", hide_env_values = true)]
        backend: String,
        /// Lock name.
        #[arg(long)]
        name: String,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 500ms, 30s, 2m: {e}"))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{s}` is not a share between 0 and 1, like 0.9")),
    }
}

fn parse_wait(s: &str) -> Result<Wait, String> {
    match s {
        "forever" => Ok(Wait::Forever),
        "0" => Ok(Wait::NoWait),
        _ => parse_duration(s).map(|d| {
            if d.is_zero() {
                Wait::NoWait
            } else {
                Wait::For(d)
            }
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DISTLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("distlock: cannot start the async runtime: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run {
                backend,
                name,
                ttl,
                wait,
                grace,
                permits,
                shared,
                command,
            } => {
                let mode = match (permits, shared) {
                    (Some(limit), _) => Mode::Permit { limit },
                    (None, true) => Mode::Shared,
                    (None, false) => Mode::Exclusive,
                };
                let hold = Hold {
                    ttl,
                    wait,
                    grace,
                    mode,
                };
                run(&backend, &name, hold, &command).await
            }
            Command::Status { backend, name } => status(&backend, &name).await,
            Command::Bench {
                backends,
                duration,
                clients,
                hold,
                names,
                permits,
                read_share,
                markdown,
                svg,
            } => {
                let settings = workload::Settings {
                    duration,
                    clients,
                    hold,
                    names,
                    permits,
                    read_share,
                };
                run_bench(&backends, settings, markdown, svg).await
            }
        }
    });
    // Do not wait for background tasks (a guard's release has completed by now).
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

/// Reports a library error and returns its exit code.
fn fail(context: &str, e: &LockError) -> u8 {
    eprintln!("distlock: {context}: {e}");
    exit::of_error(e)
}

/// The mode as the command sees it in `DISTLOCK_LOCK_MODE`: `exclusive`,
/// `shared` or `permit/<count>`.
fn mode_label(mode: Mode) -> String {
    match mode {
        Mode::Permit { limit } => format!("permit/{limit}"),
        Mode::Shared => "shared".into(),
        _ => "exclusive".into(),
    }
}

/// How `distlock run` holds its lock.
#[derive(Clone, Copy, Debug)]
struct Hold {
    ttl: Duration,
    wait: Wait,
    grace: Duration,
    mode: Mode,
}

async fn run(url: &str, name: &str, hold: Hold, command: &[String]) -> u8 {
    let Hold {
        ttl,
        wait,
        grace,
        mode,
    } = hold;
    let name = match LockName::new(name) {
        Ok(n) => n,
        Err(e) => return fail("bad lock name", &e),
    };
    let backend = match distlock::connect(url).await {
        Ok(b) => b,
        Err(e) => return fail("cannot use the backend", &e),
    };
    let options = AcquireOptions::try_once(ttl).with_wait(wait);
    let client = LockClient::with_defaults(backend, options);
    let guard = match client.try_lock_as(&name, mode, &options).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            eprintln!("distlock: `{name}` is held by someone else; not acquired");
            return exit::NOT_ACQUIRED;
        }
        Err(e) => return fail("acquire failed", &e),
    };
    let Some((program, args)) = command.split_first() else {
        return exit::USAGE;
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .env("DISTLOCK_FENCING_TOKEN", guard.fencing_token().to_string())
        .env("DISTLOCK_LOCK_NAME", name.as_str())
        .env("DISTLOCK_LOCK_MODE", mode_label(mode))
        .env("DISTLOCK_LEASE", guard.lease().export())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("distlock: cannot run `{program}`: {e}");
            let _ = guard.release().await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                exit::COMMAND_NOT_FOUND
            } else {
                exit::COMMAND_NOT_EXECUTABLE
            };
        }
    };
    let lost = guard.lost();
    tokio::select! {
        status = child.wait() => {
            let code = match status {
                Ok(s) => exit::of_child(s),
                Err(e) => {
                    eprintln!("distlock: waiting for the command failed: {e}");
                    exit::SOFTWARE
                }
            };
            if let Err(e) = guard.release().await {
                eprintln!("distlock: release failed: {e}");
                if e.is_not_held() && code == 0 {
                    // The command finished, but the lock had gone by then.
                    return exit::LOST;
                }
            }
            code
        }
        reason = lost => {
            eprintln!("distlock: lock `{name}` lost ({reason}); stopping the command");
            stop_child(&mut child, grace).await;
            exit::LOST
        }
    }
}

/// SIGTERM, then SIGKILL once `grace` has passed.
async fn stop_child(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

async fn status(url: &str, name: &str) -> u8 {
    let name = match LockName::new(name) {
        Ok(n) => n,
        Err(e) => return fail("bad lock name", &e),
    };
    let backend = match distlock::connect(url).await {
        Ok(b) => b,
        Err(e) => return fail("cannot use the backend", &e),
    };
    match backend.status(&name).await {
        Ok(s) => {
            println!("lock: {name}");
            println!("backend: {}", backend.backend_name());
            println!("held: {}", if s.held { "yes" } else { "no" });
            match s.fencing_token {
                Some(t) => println!("fencing token: {t}"),
                None => println!("fencing token: unknown"),
            }
            if let Some(d) = s.expires_in {
                println!("expires in: {}", humantime::format_duration(round_ms(d)));
            }
            if let Some(w) = s.waiters {
                println!("waiters: {w}");
            }
            exit::OK
        }
        Err(e) => fail("status failed", &e),
    }
}

async fn run_bench(
    urls: &[String],
    settings: workload::Settings,
    markdown: Option<std::path::PathBuf>,
    svg: Option<std::path::PathBuf>,
) -> u8 {
    // distlock and the floor, for every workload.
    let steps = urls.len() as u64 * workload::Workload::ALL.len() as u64 * 2;
    let progress = indicatif::ProgressBar::new(steps);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let rows = bench::run(urls, settings, &progress).await;
    progress.finish_and_clear();
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            eprintln!("distlock: benchmark failed: {}", distlock::redact_url(&e));
            return exit::UNAVAILABLE;
        }
    };
    let table = report::markdown(&rows, settings);
    println!("{table}");
    for (path, text) in [(markdown, table), (svg, report::svg(&rows))] {
        if let Some(path) = path {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("distlock: cannot write {}: {e}", path.display());
                return exit::SOFTWARE;
            }
        }
    }
    exit::OK
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
