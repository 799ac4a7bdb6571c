//! Several scheduler processes elect one leader, which runs the periodic
//! job; the leader is killed, and another takes over with a higher term.
//!
//! ```text
//! cargo run --release --example leader_election
//! cargo run --release --example leader_election -- --url redis://127.0.0.1:16379
//! cargo run --release --example leader_election -- --candidates 4
//! ```
//!
//! `--candidates` processes (default 3) campaign for the election
//! `report-scheduler` with `LockClient::elect`, each under its own identity.
//! The leader runs the job every 100 ms: it records the run with its term in
//! a SQLite file, through an insert that refuses a term lower than one
//! already recorded (a fenced write: a deposed leader that has not noticed
//! yet cannot record a run). This process follows the election with
//! `LockClient::observe`, kills the first leader once it has run the job
//! three times (SIGKILL: no resignation), and waits for the next leader to
//! run it three times. It checks that:
//!
//! - the observer saw a second leader, another process, with a higher term,
//! - the runs recorded never go back in term, and each term belongs to one
//!   leader,
//! - both leaders ran the job,
//!
//! and exits non-zero otherwise. The backend must store leader identities
//! (`Capabilities::labels`) and be shared between processes.
//!
//! The lock backend is `--url` (or `--backend`), by default the Redis
//! instance in `DISTLOCK_REDIS_URL` if set, else a SQLite file in the
//! temporary directory. The candidates are processes of this same
//! executable, started with the hidden `--candidate` argument.

#[path = "support/mod.rs"]
mod support;
#[path = "support/workers.rs"]
mod workers;

use std::collections::HashMap;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use distlock::sql::sqlx::{self, SqlitePool};
use distlock::{AcquireOptions, Leader, LockClient};
use support::{open_sqlite, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use workers::{temp_path, Args, Run};

/// A leader that stops extending loses the election after this long.
const TTL: Duration = Duration::from_secs(2);
/// How often the leader runs the job.
const EVERY: Duration = Duration::from_millis(100);
/// Runs each leader must do before the example moves on.
const RUNS: usize = 3;

fn main() -> ExitCode {
    support::run_main("leader_election", main_async())
}

async fn main_async() -> Result<bool> {
    let args = Args::from_env(&[
        "--url",
        "--backend",
        "--name",
        "--candidates",
        "--candidate",
        "--data",
    ])?;
    let run = args.run("leader-locks.db", || {
        format!("report-scheduler-{}", std::process::id())
    })?;
    let data = match args.get("--data") {
        Some(path) => path.clone(),
        None => temp_path("leader-jobs.db")?.display().to_string(),
    };
    match args.get("--candidate") {
        Some(identity) => candidate(&run, &data, identity).await.map(|()| true),
        None => parent(&run, &data, args.number("--candidates", 3)?).await,
    }
}

/// A candidate: campaigns, runs the job while leading, campaigns again
/// after a loss. Runs until killed.
async fn candidate(run: &Run, data: &str, identity: &str) -> Result<()> {
    let client =
        LockClient::with_defaults(distlock::connect(&run.url).await?, AcquireOptions::new(TTL));
    let pool = open_sqlite(Path::new(data)).await?;
    loop {
        let leadership = client.elect(&run.name, identity).await?;
        let term = leadership.term().0;
        println!("leading {identity} {term}");
        let lost = leadership.lost();
        tokio::pin!(lost);
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                reason = &mut lost => {
                    println!("lost {identity} {term} {reason}");
                    break;
                }
                _ = ticks.tick() => {
                    let recorded = record_run(&pool, term, identity).await?;
                    println!("{} {identity} {term}", if recorded { "ran" } else { "refused" });
                }
            }
        }
    }
}

/// Records a run of the job by the leader of `term`, unless a later term
/// has recorded one: false when refused.
async fn record_run(pool: &SqlitePool, term: u64, identity: &str) -> Result<bool> {
    let term = i64::try_from(term)?;
    let done = sqlx::query(
        "INSERT INTO runs (term, identity) SELECT ?, ? \
         WHERE NOT EXISTS (SELECT 1 FROM runs WHERE term > ?)",
    )
    .bind(term)
    .bind(identity)
    .bind(term)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a candidate printed: (kind, identity, term).
type Event = (String, String, u64);

/// Starts the candidates, follows the election, kills the first leader,
/// checks what happened.
async fn parent(run: &Run, data: &str, candidates: usize) -> Result<bool> {
    println!(
        "leader_election: {candidates} candidates for `{}` on {}",
        run.name,
        distlock::redact_url(&run.url)
    );
    let client = LockClient::new(distlock::connect(&run.url).await?);
    let caps = client.backend().capabilities();
    if !caps.labels || !caps.cross_process {
        return Err(format!(
            "the {} backend must store leader identities and be shared between processes",
            client.backend().backend_name()
        )
        .into());
    }
    let pool = fresh_runs(data).await?;
    let mut observer = client.observe(&run.name)?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut children = HashMap::new();
    for i in 0..candidates {
        let identity = format!("node-{i}");
        children.insert(
            identity.clone(),
            spawn(run, data, &identity, events_tx.clone())?,
        );
    }
    drop(events_tx);

    let first = next_leader(&mut observer, None).await?;
    println!(
        "leader_election: observed {} leading, term {}",
        first.0, first.1
    );
    wait_for_runs(&mut events, &first.0, RUNS).await?;
    if let Some(mut child) = children.remove(&first.0) {
        child.start_kill()?;
        child.wait().await?;
        println!("leader_election: killed {}", first.0);
    }
    let second = next_leader(&mut observer, Some(&first.0)).await?;
    println!(
        "leader_election: observed {} leading, term {}",
        second.0, second.1
    );
    wait_for_runs(&mut events, &second.0, RUNS).await?;
    for (_, mut child) in children {
        child.start_kill()?;
        child.wait().await?;
    }
    check(&pool, first, second).await
}

/// The runs table, emptied.
async fn fresh_runs(data: &str) -> Result<SqlitePool> {
    let pool = open_sqlite(Path::new(data)).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS runs \
         (seq INTEGER PRIMARY KEY AUTOINCREMENT, term INTEGER NOT NULL, identity TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("DELETE FROM runs").execute(&pool).await?;
    Ok(pool)
}

/// Starts candidate `identity`; its lines go to `events`.
fn spawn(
    run: &Run,
    data: &str,
    identity: &str,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--url", &run.url, "--name", &run.name, "--data", data])
        .args(["--candidate", identity])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [kind, identity, term, ..] = parts[..] {
                if let Ok(term) = term.parse() {
                    let _ = events.send((kind.to_string(), identity.to_string(), term));
                }
            }
        }
    });
    Ok(child)
}

/// The next leader the observer reports that is not `besides`: (identity, term).
async fn next_leader(
    observer: &mut distlock::LeaderObserver,
    besides: Option<&str>,
) -> Result<(String, u64)> {
    loop {
        let leader = tokio::time::timeout(Duration::from_secs(60), observer.changed())
            .await
            .map_err(|_| "no new leader within 60 s")??;
        if let Some(Leader {
            identity: Some(identity),
            term,
        }) = leader
        {
            if besides != Some(identity.as_str()) {
                return Ok((identity, term.0));
            }
        }
    }
}

/// Waits until `identity` has run the job `runs` times.
async fn wait_for_runs(
    events: &mut mpsc::UnboundedReceiver<Event>,
    identity: &str,
    runs: usize,
) -> Result<()> {
    let mut seen = 0;
    while seen < runs {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .map_err(|_| format!("{identity} did not run the job within 60 s"))?
            .ok_or("every candidate exited")?;
        if event.0 == "ran" && event.1 == identity {
            seen += 1;
        }
    }
    Ok(())
}

/// The checks of the module docs.
async fn check(pool: &SqlitePool, first: (String, u64), second: (String, u64)) -> Result<bool> {
    let runs: Vec<(i64, String)> = sqlx::query_as("SELECT term, identity FROM runs ORDER BY seq")
        .fetch_all(pool)
        .await?;
    let mut owner: HashMap<i64, &str> = HashMap::new();
    let mut ordered = true;
    let mut one_leader_per_term = true;
    for (i, (term, identity)) in runs.iter().enumerate() {
        ordered &= i == 0 || runs[i - 1].0 <= *term;
        one_leader_per_term &= *owner.entry(*term).or_insert(identity) == identity.as_str();
    }
    let ran = |who: &str| runs.iter().filter(|(_, id)| id == who).count();
    let (first_runs, second_runs) = (ran(&first.0), ran(&second.0));
    println!(
        "leader_election: {} runs recorded: {first_runs} by {} (term {}), {second_runs} by {} (term {})",
        runs.len(),
        first.0,
        first.1,
        second.0,
        second.1
    );
    let ok = second.1 > first.1
        && second.0 != first.0
        && ordered
        && one_leader_per_term
        && first_runs >= RUNS
        && second_runs >= RUNS;
    println!(
        "leader_election: terms rise {}, recorded terms in order {ordered}, one leader per term {one_leader_per_term}: {}",
        second.1 > first.1,
        if ok { "ok" } else { "FAILED" }
    );
    Ok(ok)
}
