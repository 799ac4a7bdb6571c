//! Holds recorded by several processes and checked by the parent: what the
//! semaphore and reader-writer examples share.
//!
//! A worker records each hold as one `hold …` line on its stdout, with
//! wall-clock instants (every process on the machine reads the same clock):
//! when it called acquire, when the acquire returned, and when it called
//! release. The real hold covers at least `start..end`, so two recorded
//! intervals that overlap are two holders that really held at once.
//!
//! Backends that live inside one process (`memory://`) cannot be shared by
//! worker processes; there the workers run as tasks of the parent instead,
//! against the same in-process store, and report the same lines.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{run_self, Result};

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

/// Nanoseconds since the Unix epoch: an instant every local process agrees on.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// What a hold was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A semaphore permit.
    Permit,
    /// A reader of a reader-writer lock.
    Reader,
    /// The writer of a reader-writer lock.
    Writer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Permit => "permit",
            Kind::Reader => "reader",
            Kind::Writer => "writer",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Permit, Kind::Reader, Kind::Writer]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// What was held.
    pub kind: Kind,
    /// The worker (process, or task group) that held it.
    pub worker: usize,
    /// When acquire was called ([`wall_ns`]).
    pub called: u64,
    /// When acquire returned.
    pub start: u64,
    /// When release was called.
    pub end: u64,
    /// The grant's fencing token.
    pub token: u64,
    /// What the holder worked on (a job number, a cache version).
    pub value: u64,
}

impl Hold {
    /// The line a worker prints for this hold.
    pub fn line(&self) -> String {
        format!(
            "hold {} {} {} {} {} {} {}",
            self.kind, self.worker, self.called, self.start, self.end, self.token, self.value
        )
    }

    /// Reads a [`line`](Self::line) back; `None` for any other line.
    pub fn parse(line: &str) -> Option<Result<Hold>> {
        let rest = line.strip_prefix("hold ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Self::from_fields(&fields).ok_or_else(|| format!("bad hold line `{line}`").into()))
    }

    fn from_fields(f: &[&str]) -> Option<Hold> {
        let [kind, worker, called, start, end, token, value] = f else {
            return None;
        };
        Some(Hold {
            kind: Kind::parse(kind)?,
            worker: worker.parse().ok()?,
            called: called.parse().ok()?,
            start: start.parse().ok()?,
            end: end.parse().ok()?,
            token: token.parse().ok()?,
            value: value.parse().ok()?,
        })
    }

    /// The two holds were held at some same moment (touching is not
    /// overlapping).
    pub fn overlaps(&self, other: &Hold) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Every `hold` line among `lines`.
pub fn holds_in(lines: &[String]) -> Result<Vec<Hold>> {
    lines.iter().filter_map(|l| Hold::parse(l)).collect()
}

/// The most holds held at one moment.
pub fn most_at_once<'a>(holds: impl IntoIterator<Item = &'a Hold>) -> usize {
    let mut edges: Vec<(u64, i64)> = holds
        .into_iter()
        .flat_map(|h| [(h.start, 1), (h.end, -1)])
        .collect();
    // At equal instants an end sorts first: touching intervals do not overlap.
    edges.sort_unstable();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// What is wrong with the holds' fencing tokens, if anything: two grants
/// with one token, or (when `ordered`, for backends that claim fencing) a
/// grant asked for after another grant returned that got a token no greater
/// than that grant's.
pub fn fencing_problem(holds: &[Hold], ordered: bool) -> Option<String> {
    let mut seen = HashSet::new();
    if let Some(h) = holds.iter().find(|h| !seen.insert(h.token)) {
        return Some(format!("two grants got fencing token {}", h.token));
    }
    if !ordered {
        return None;
    }
    for earlier in holds {
        if let Some(later) = holds
            .iter()
            .find(|later| later.called > earlier.start && later.token <= earlier.token)
        {
            return Some(format!(
                "a {} asked for after a {} with token {} was granted got the lower token {}",
                later.kind, earlier.kind, earlier.token, later.token
            ));
        }
    }
    None
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
    let mut lines = Vec::new();
    if cross_process {
        for out in run_self(arg_lists).await? {
            lines.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(String::from),
            );
        }
    } else {
        let tasks: Vec<_> = (0..arg_lists.len())
            .map(|worker| tokio::spawn(in_process(worker)))
            .collect();
        for task in tasks {
            lines.extend(task.await??);
        }
    }
    Ok(lines)
}
