//! Pieces the example programs share: a SQLite file for the protected data,
//! and worker processes that are the example's own executable.

#![allow(dead_code)]

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::Duration;

use distlock::sql::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};

/// The examples' error type.
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Runs an example's `main_async` on a new runtime: success when it returns
/// true, failure when it returns false or fails (the error printed after
/// `program: `).
pub fn run_main(program: &str, main_async: impl Future<Output = Result<bool>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `target/<file>` under the workspace root.
pub fn target_file(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(file)
}

/// Opens (creating) a SQLite file that several processes write.
pub async fn open_sqlite(path: &Path) -> Result<SqlitePool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Other processes write this file too: wait for their writes.
        .busy_timeout(Duration::from_secs(30));
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

/// Runs this executable once per argument list, all at once, and waits for
/// every one; fails if any fails. Returns their outputs in order.
pub async fn run_self(arg_lists: Vec<Vec<String>>) -> Result<Vec<Output>> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for args in arg_lists {
        children.push(
            Command::new(&exe)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
    }
    // Waiting for a process blocks a thread: do it off the async workers.
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output())
            .collect::<std::io::Result<Vec<_>>>()
    })
    .await??;
    for out in &outputs {
        if !out.status.success() {
            return Err(format!("a worker process failed: {}", out.status).into());
        }
    }
    Ok(outputs)
}

/// The value after `prefix` on the last stdout line that starts with it.
pub fn last_value(out: &Output, prefix: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .next_back()
        .map(|v| v.trim().to_string())
}

/// Reads `--flag value` pairs; `known` lists the flags that take a value.
pub fn flags(args: &[String], known: &[&str]) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument `{flag}`; known: {}", known.join(" ")).into());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        out.insert(flag.clone(), value.clone());
    }
    Ok(out)
}
