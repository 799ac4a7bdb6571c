//! Money moves between two accounts from several processes at once; each
//! transfer locks both accounts, all or nothing, whichever way it goes.
//!
//! ```text
//! cargo run --release --example transfer
//! cargo run --release --example transfer -- --url redis://127.0.0.1:16379
//! cargo run --release --example transfer -- --workers 4 --transfers 50
//! ```
//!
//! The accounts live in a SQLite file; a transfer reads both balances and
//! writes both back in separate statements, so two transfers that overlap
//! would lose money. Each takes the locks of its two accounts with
//! `LockClient::lock_many`, naming them in its own direction's order —
//! `from` then `to` — half of the transfers one way and half the other. A
//! multi-lock that took the names in the order given would deadlock as soon
//! as two opposite transfers each held their first account; `lock_many`
//! takes them in one global order, so none waits for the other. The
//! example checks that:
//!
//! - every transfer of every worker was done (none waited out its wait),
//! - the total over both accounts is what it was at the start,
//! - each transfer held both accounts under their own fencing tokens,
//!
//! and exits non-zero otherwise. `--unlocked yes` moves the money without
//! the locks, to show what they prevent: the total drifts and the example
//! fails.
//!
//! The lock backend is `--url` (or `--backend`), by default the Redis
//! instance in `DISTLOCK_REDIS_URL` if set, else a SQLite file in the
//! temporary directory. The workers are processes of this same executable
//! (started with the hidden `--worker` argument), or tasks of this process
//! for a backend that lives in it (`memory://`).

#[path = "support/mod.rs"]
mod support;
#[path = "support/workers.rs"]
mod workers;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use distlock::sql::sqlx;
use distlock::{AcquireOptions, LockClient, Wait};
use support::{open_sqlite, Result};
use workers::{report, run_workers, temp_path, Args, Run};

/// The two accounts and what each holds at the start.
const ACCOUNTS: [&str; 2] = ["alice", "bob"];
const OPENING_BALANCE: i64 = 1_000;
/// How long a transfer may wait for its two locks: far longer than any
/// transfer takes, so running out of it means a deadlock.
const WAIT: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    support::run_main("transfer", main_async())
}

async fn main_async() -> Result<bool> {
    let args = Args::from_env(&[
        "--url",
        "--backend",
        "--name",
        "--workers",
        "--worker",
        "--transfers",
        "--data",
        "--unlocked",
    ])?;
    let run = args.run("transfer-locks.db", || {
        format!("accounts-{}", std::process::id())
    })?;
    let transfers = args.number("--transfers", 40)?;
    let locked = args.get("--unlocked").is_none_or(|v| v != "yes");
    let data = match args.get("--data") {
        Some(path) => path.clone(),
        None => temp_path("transfer-accounts.db")?.display().to_string(),
    };
    match args.worker()? {
        Some(worker) => report(transfer_many(&run, &data, worker, transfers, locked).await?),
        None => parent(run, data, transfers, locked).await,
    }
}

/// Opens the accounts, starts the workers, checks the books.
async fn parent(run: Run, data: String, transfers: usize, locked: bool) -> Result<bool> {
    println!(
        "transfer: {} workers × {transfers} transfers between {} and {}, locks on {}",
        run.workers,
        ACCOUNTS[0],
        ACCOUNTS[1],
        distlock::redact_url(&run.url)
    );
    open_accounts(&data).await?;
    let cross_process = distlock::connect(&run.url)
        .await?
        .capabilities()
        .cross_process;
    let arg_lists = (0..run.workers)
        .map(|w| {
            run.worker_args(
                w,
                [
                    ("--transfers", transfers.to_string()),
                    ("--data", data.clone()),
                    ("--unlocked", if locked { "no" } else { "yes" }.to_string()),
                ],
            )
        })
        .collect();
    let started = Instant::now();
    let lines = {
        let (run, data) = (run.clone(), data.clone());
        run_workers(cross_process, arg_lists, move |w| {
            let (run, data) = (run.clone(), data.clone());
            async move { transfer_many(&run, &data, w, transfers, locked).await }
        })
        .await?
    };
    let done: Vec<&String> = lines.iter().filter(|l| l.starts_with("moved ")).collect();
    let tokens_ok = done.iter().all(|l| l.split_whitespace().count() == 6);
    let total = total(&data).await?;
    let expected_total = OPENING_BALANCE * ACCOUNTS.len() as i64;
    let expected_done = run.workers * transfers;
    println!(
        "transfer: {} of {expected_done} transfers done in {:.1} s; total {total} (opened with {expected_total})",
        done.len(),
        started.elapsed().as_secs_f64()
    );
    let ok = done.len() == expected_done && total == expected_total && tokens_ok;
    println!("transfer: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// The accounts table, at its opening balances.
async fn open_accounts(data: &str) -> Result<()> {
    let pool = open_sqlite(std::path::Path::new(data)).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    for account in ACCOUNTS {
        sqlx::query("INSERT OR REPLACE INTO accounts (name, balance) VALUES (?, ?)")
            .bind(account)
            .bind(OPENING_BALANCE)
            .execute(&pool)
            .await?;
    }
    pool.close().await;
    Ok(())
}

/// The sum over every account.
async fn total(data: &str) -> Result<i64> {
    let pool = open_sqlite(std::path::Path::new(data)).await?;
    let total: i64 = sqlx::query_scalar("SELECT SUM(balance) FROM accounts")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(total)
}

/// One worker: `transfers` transfers, alternating directions; a line per
/// transfer done (`moved <from> <to> <amount> <token> <token>`).
async fn transfer_many(
    run: &Run,
    data: &str,
    worker: usize,
    transfers: usize,
    locked: bool,
) -> Result<Vec<String>> {
    let client = LockClient::with_defaults(
        distlock::connect(&run.url).await?,
        AcquireOptions::new(TTL).with_wait(Wait::For(WAIT)),
    );
    let pool = open_sqlite(std::path::Path::new(data)).await?;
    let mut lines = Vec::new();
    for i in 0..transfers {
        let (from, to) = if (worker + i) % 2 == 0 {
            (ACCOUNTS[0], ACCOUNTS[1])
        } else {
            (ACCOUNTS[1], ACCOUNTS[0])
        };
        let amount = 1 + (i as i64 % 7);
        // This transfer's own order: from, then to.
        let names = [format!("{}/{from}", run.name), format!("{}/{to}", run.name)];
        let tokens: Vec<String> = if locked {
            let guard = client.lock_many(names).await?;
            move_money(&pool, from, to, amount).await?;
            let tokens = guard
                .fencing_tokens()
                .iter()
                .map(|(_, t)| t.to_string())
                .collect();
            guard.release().await?;
            tokens
        } else {
            move_money(&pool, from, to, amount).await?;
            vec!["-".into(), "-".into()]
        };
        lines.push(format!("moved {from} {to} {amount} {}", tokens.join(" ")));
    }
    pool.close().await;
    Ok(lines)
}

/// Reads both balances, then writes both back: correct only while nobody
/// else moves money between the same accounts.
async fn move_money(pool: &sqlx::SqlitePool, from: &str, to: &str, amount: i64) -> Result<()> {
    let from_balance = balance(pool, from).await?;
    let to_balance = balance(pool, to).await?;
    // Give an overlapping transfer every chance to interleave.
    tokio::task::yield_now().await;
    for (name, value) in [(from, from_balance - amount), (to, to_balance + amount)] {
        sqlx::query("UPDATE accounts SET balance = ? WHERE name = ?")
            .bind(value)
            .bind(name)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The balance of `account`.
async fn balance(pool: &sqlx::SqlitePool, account: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT balance FROM accounts WHERE name = ?")
            .bind(account)
            .fetch_one(pool)
            .await?,
    )
}
