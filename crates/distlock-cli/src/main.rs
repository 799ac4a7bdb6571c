//! `distlock`: run a command while holding a distributed lock, or inspect one.
//!
//! ```text
//! distlock run --backend URL --name NAME [--name NAME…] [--ttl 30s] [--wait 10s|forever]
//!              [--grace 10s] [--at-least 5m] [--permits N | --shared] -- CMD ARGS…
//! distlock leader --backend URL --name NAME [--identity ID] [--ttl 30s] -- CMD ARGS…
//! distlock observe --backend URL --name NAME [--changes N]
//! distlock status --backend URL --name NAME
//! ```
//!
//! `run` acquires the lock (several `--name`s: all of them, all or nothing),
//! runs the command with the lock held (extending it in the background),
//! releases it when the command exits (not before `--at-least` after it was
//! taken), and exits with the command's own status. The command sees
//! `DISTLOCK_FENCING_TOKEN`, `DISTLOCK_LOCK_NAME` and `DISTLOCK_LEASE` (the
//! exported lease) for one name, and `DISTLOCK_LOCK_NAMES` /
//! `DISTLOCK_FENCING_TOKENS` (one per line, in the order taken) always. If
//! the lock is lost while the command runs, the command gets SIGTERM, then
//! SIGKILL after the grace period. `leader` campaigns until this process
//! leads the election, then runs the command the same way (it also sees
//! `DISTLOCK_LEADER_TERM` and `DISTLOCK_LEADER_IDENTITY`). `observe` prints
//! the election's leader and each change of it. Exit codes are listed in
//! [`exit`].

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use distlock::{LockClient, LockName, Mode, Wait};

use run::{fail, Hold};

mod bench;
#[cfg(feature = "sqlite")]
mod chaos;
mod exit;
mod floor;
mod report;
mod run;
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
        /// Lock name; repeat it to hold several names at once (all or
        /// nothing, taken in one global order so that runs naming them in
        /// different orders cannot deadlock).
        #[arg(long = "name", required = true, num_args = 1)]
        names: Vec<String>,
        /// Lease length; extended in the background while the command runs.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: Duration,
        /// How long to wait for the lock: a duration, `0` to try once, or `forever`.
        #[arg(long, default_value = "0", value_parser = parse_wait)]
        wait: Wait,
        /// Time between SIGTERM and SIGKILL when the lock is lost.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        /// Keep the lock at least this long after taking it, even if the
        /// command ends sooner (on the server: this process need not stay).
        /// Longer than --ttl, it raises the ttl to it.
        #[arg(long, value_parser = parse_duration)]
        at_least: Option<Duration>,
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
    /// Campaign to lead an election, and run a command while leading.
    Leader {
        /// Backend URL.
        #[arg(long, env = "DISTLOCK_BACKEND", hide_env_values = true)]
        backend: String,
        /// The election's name.
        #[arg(long)]
        name: String,
        /// The identity observers see while this process leads (default:
        /// host name and process id).
        #[arg(long)]
        identity: Option<String>,
        /// Lease length; extended in the background while leading.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: Duration,
        /// How long to campaign: a duration, `0` to try once, or `forever`.
        #[arg(long, default_value = "forever", value_parser = parse_wait)]
        wait: Wait,
        /// Time between SIGTERM and SIGKILL when the leadership is lost.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        /// Keep the leadership at least this long after winning it.
        #[arg(long, value_parser = parse_duration)]
        at_least: Option<Duration>,
        /// The command and its arguments.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Print an election's leader, then each change of it, one line each.
    Observe {
        /// Backend URL.
        #[arg(long, env = "DISTLOCK_BACKEND", hide_env_values = true)]
        backend: String,
        /// The election's name.
        #[arg(long)]
        name: String,
        /// Stop after this many lines (the first is the current leader).
        #[arg(long)]
        changes: Option<u64>,
    },
    /// Run client processes against a backend while killing, pausing and
    /// cutting them off and killing server nodes; check what they saw.
    #[cfg(feature = "sqlite")]
    Chaos {
        /// Backend URL (any but memory://).
        #[arg(long, env = "DISTLOCK_BACKEND", hide_env_values = true)]
        backend: String,
        /// Client processes contending for the lock.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..))]
        clients: u64,
        /// Run until this many acquisitions (and every fault kind once).
        #[arg(long, default_value_t = 2000)]
        acquisitions: usize,
        /// Give up (exit 69) after this long.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        max_duration: Duration,
        /// The lock's ttl.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        ttl: Duration,
        /// Each hold lasts a random time up to this.
        #[arg(long, default_value = "40ms", value_parser = parse_duration)]
        hold_max: Duration,
        /// Faults to cause, comma-separated: kill-waiter, kill-holder,
        /// pause, partition, nodes, or all (those that do not apply to the
        /// backend are left out).
        #[arg(long, default_value = "all", value_parser = chaos::FaultKind::parse_list)]
        faults: std::vec::Vec<chaos::FaultKind>,
        /// Time between one fault's end and the next one's start.
        #[arg(long, default_value = "400ms", value_parser = parse_duration)]
        fault_every: Duration,
        /// The script that kills and starts server nodes (`nodes` faults).
        #[arg(
            long,
            env = "DISTLOCK_SERVICES_SCRIPT",
            default_value = "scripts/services.sh"
        )]
        services: std::path::PathBuf,
        /// Clients take no lock at all: shows what the checks catch.
        #[arg(long, hide = true)]
        unlocked: bool,
        /// First run this long without faults, and report the grant rate
        /// with faults against the rate without.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        baseline: Duration,
    },
    /// One client of a chaos run (started by `distlock chaos`).
    #[cfg(feature = "sqlite")]
    #[command(hide = true)]
    ChaosClient {
        #[arg(long)]
        backend: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        #[arg(long, value_parser = parse_duration)]
        hold_max: Duration,
        #[arg(long)]
        store: std::path::PathBuf,
        #[arg(long)]
        unlocked: bool,
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
                names,
                ttl,
                wait,
                grace,
                at_least,
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
                    at_least,
                };
                run::run(&backend, &names, hold, &command).await
            }
            Command::Leader {
                backend,
                name,
                identity,
                ttl,
                wait,
                grace,
                at_least,
                command,
            } => {
                let hold = Hold {
                    ttl,
                    wait,
                    grace,
                    mode: Mode::Exclusive,
                    at_least,
                };
                let identity = identity.unwrap_or_else(run::default_identity);
                run::leader(&backend, &name, &identity, hold, &command).await
            }
            #[cfg(feature = "sqlite")]
            Command::Chaos {
                backend,
                clients,
                acquisitions,
                max_duration,
                ttl,
                hold_max,
                faults,
                fault_every,
                services,
                unlocked,
                baseline,
            } => {
                chaos::run(chaos::ChaosSettings {
                    url: backend,
                    clients: usize::try_from(clients).unwrap_or(usize::MAX),
                    acquisitions,
                    max_duration,
                    ttl,
                    hold_max,
                    faults,
                    fault_every,
                    services,
                    unlocked,
                    baseline,
                })
                .await
            }
            #[cfg(feature = "sqlite")]
            Command::ChaosClient {
                backend,
                name,
                ttl,
                hold_max,
                store,
                unlocked,
            } => {
                chaos::client(chaos::ClientSettings {
                    url: backend,
                    name,
                    ttl,
                    hold_max,
                    store,
                    unlocked,
                })
                .await
            }
            Command::Observe {
                backend,
                name,
                changes,
            } => observe(&backend, &name, changes).await,
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
            if let Some(h) = &s.holder {
                println!("holder: {h}");
            }
            exit::OK
        }
        Err(e) => fail("status failed", &e),
    }
}

/// Prints the leader of `name` and each change, until `changes` lines.
async fn observe(url: &str, name: &str, changes: Option<u64>) -> u8 {
    let name = match LockName::new(name) {
        Ok(n) => n,
        Err(e) => return fail("bad lock name", &e),
    };
    let backend = match distlock::connect(url).await {
        Ok(b) => b,
        Err(e) => return fail("cannot use the backend", &e),
    };
    let mut observer = match LockClient::new(backend).observe(&name) {
        Ok(o) => o,
        Err(e) => return fail("cannot observe", &e),
    };
    let mut printed = 0u64;
    while changes.is_none_or(|n| printed < n) {
        match observer.changed().await {
            Ok(Some(leader)) => println!(
                "leader {} term {}",
                leader.identity.as_deref().unwrap_or("-"),
                leader.term
            ),
            Ok(None) => println!("no leader"),
            Err(e) => return fail("observing failed", &e),
        }
        printed += 1;
    }
    exit::OK
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
