//! The parent and its workers, as the semaphore and reader-writer examples
//! run them: their flags, a backend that must serve the example's mode, and
//! the workers, each reporting lines for the parent to check.
//!
//! The workers are processes of this same executable, started with the
//! hidden `--worker` argument. Backends that live inside one process
//! (`memory://`) cannot be shared by worker processes; there the workers run
//! as tasks of the parent instead, against the same in-process store, and
//! report the same lines.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use distlock::{Capabilities, DistributedLock};

use crate::support::{flags, run_self, Result};

/// What an example is called and what its backend must serve.
pub struct Example {
    /// The program's name, at the start of what it prints (`handler_pool`).
    pub program: &'static str,
    /// What its workers are called (`handlers`).
    pub workers: &'static str,
    /// The primitive its backend must serve.
    pub needs: Primitive,
}

/// A primitive an example's backend must serve.
#[derive(Clone, Copy, Debug)]
pub enum Primitive {
    /// Semaphores.
    Semaphore,
    /// Reader-writer locks.
    ReaderWriter,
}

impl Primitive {
    /// What the primitive is called, and the capability that says a backend
    /// serves it.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Primitive::Semaphore => ("semaphores", "Capabilities::semaphore"),
            Primitive::ReaderWriter => ("reader-writer locks", "Capabilities::shared"),
        }
    }

    /// A backend with `caps` serves it.
    fn served_by(self, caps: &Capabilities) -> bool {
        match self {
            Primitive::Semaphore => caps.semaphore,
            Primitive::ReaderWriter => caps.shared,
        }
    }
}

impl Example {
    /// Connects to `url` and checks that its backend serves what this
    /// example needs; notes when the backend lives in this process, where
    /// the workers run as its tasks.
    pub async fn connect(&self, url: &str) -> Result<(Arc<dyn DistributedLock>, Capabilities)> {
        let backend = distlock::connect(url).await?;
        let caps = backend.capabilities();
        if !self.needs.served_by(&caps) {
            let (primitive, capability) = self.needs.words();
            return Err(format!(
                "the {} backend serves no {primitive} ({capability} is false); \
                 pass --url with one that does (memory:// does, within one process)",
                backend.backend_name(),
            )
            .into());
        }
        if !caps.cross_process {
            println!(
                "{}: note: the {} backend lives in this process; the {} run as its tasks",
                self.program,
                backend.backend_name(),
                self.workers
            );
        }
        Ok((backend, caps))
    }
}

/// What every worker of a run is told, whichever the example.
#[derive(Clone, Debug)]
pub struct Run {
    /// The lock backend.
    pub url: String,
    /// The lock's name, unique to this run.
    pub name: String,
    /// How many worker processes the parent starts.
    pub workers: usize,
}

impl Run {
    /// The arguments that start worker process `worker` of this run, with
    /// the example's own `more`.
    pub fn worker_args<'a>(
        &self,
        worker: usize,
        more: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Vec<String> {
        [
            ("--worker", worker.to_string()),
            ("--url", self.url.clone()),
            ("--name", self.name.clone()),
        ]
        .into_iter()
        .chain(more)
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

/// An example's `--flag value` arguments.
pub struct Args(HashMap<String, String>);

impl Args {
    /// This process's arguments; `known` lists every flag the example reads
    /// (each takes a value).
    pub fn from_env(known: &[&str]) -> Result<Args> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Ok(Args(flags(&args, known)?))
    }

    /// The value of `flag`, if given.
    pub fn get(&self, flag: &str) -> Option<&String> {
        self.0.get(flag)
    }

    /// The number after `flag`, `default` when it is not given.
    pub fn number(&self, flag: &str, default: usize) -> Result<usize> {
        Ok(match self.get(flag) {
            Some(v) => v.parse().map_err(|e| format!("{flag} {v}: {e}"))?,
            None => default,
        })
    }

    /// The run: the lock backend is `--url` (or `--backend`, as in the
    /// other examples), else [`default_url`] with the SQLite file `file`;
    /// the lock's name is `--name`, else `name()`; `--workers` worker
    /// processes, 2 by default.
    pub fn run(&self, file: &str, name: impl FnOnce() -> String) -> Result<Run> {
        let url = match self.get("--url").or_else(|| self.get("--backend")) {
            Some(url) => url.clone(),
            None => default_url(file)?,
        };
        Ok(Run {
            url,
            name: self.get("--name").cloned().unwrap_or_else(name),
            workers: self.number("--workers", 2)?,
        })
    }

    /// The number of this worker process (`--worker`); `None` in the parent.
    pub fn worker(&self) -> Result<Option<usize>> {
        Ok(match self.get("--worker") {
            Some(worker) => Some(worker.parse()?),
            None => None,
        })
    }
}

/// The lock backend the examples use unless `--url` names one: the Redis
/// instance in `DISTLOCK_REDIS_URL` if that is set, else a SQLite file
/// (`file`) in a directory of the system's temporary directory.
pub fn default_url(file: &str) -> Result<String> {
    if let Ok(url) = std::env::var("DISTLOCK_REDIS_URL") {
        if !url.trim().is_empty() {
            return Ok(url);
        }
    }
    Ok(format!("sqlite://{}", temp_path(file)?.display()))
}

/// `<temp dir>/distlock-examples/<file>`, creating the directory.
pub fn temp_path(file: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("distlock-examples");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(file))
}

/// A worker process's part: prints its lines for the parent to read.
pub fn report(lines: Vec<String>) -> Result<bool> {
    for line in lines {
        println!("{line}");
    }
    Ok(true)
}

/// Runs `count` tasks at once, `task(i)` the `i`-th, and returns every line
/// they reported, task by task.
pub async fn join_lines<F, Fut>(count: usize, task: F) -> Result<Vec<String>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<String>>> + Send + 'static,
{
    let tasks: Vec<_> = (0..count).map(task).map(tokio::spawn).collect();
    let mut lines = Vec::new();
    for task in tasks {
        lines.extend(task.await??);
    }
    Ok(lines)
}

/// Runs one worker per argument list and returns every line they reported:
/// as processes (this executable with the arguments) when the backend is
/// shared across processes, else as tasks of this process
/// (`in_process(worker number)`).
pub async fn run_workers<F, Fut>(
    cross_process: bool,
    arg_lists: Vec<Vec<String>>,
    in_process: F,
) -> Result<Vec<String>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Vec<String>>> + Send + 'static,
{
    if !cross_process {
        return join_lines(arg_lists.len(), in_process).await;
    }
    let mut lines = Vec::new();
    for out in run_self(arg_lists).await? {
        lines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    Ok(lines)
}
