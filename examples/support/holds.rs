//! Holds recorded by several processes and checked by the parent: what the
//! semaphore and reader-writer examples share.
//!
//! A worker records each hold as one `hold …` line on its stdout, with
//! wall-clock instants (every process on the machine reads the same clock):
//! when it called acquire, when the acquire returned, and when it called
//! release. The real hold covers at least `start..end`, so two recorded
//! intervals that overlap are two holders that really held at once.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use distlock::LockGuard;

use crate::support::Result;

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

/// A hold that was asked for, worked under and released: its instants
/// ([`wall_ns`]), its fencing token, and what the work returned.
pub struct Held<T> {
    /// When acquire was called.
    pub called: u64,
    /// When acquire returned.
    pub start: u64,
    /// When release was called.
    pub end: u64,
    /// The grant's fencing token.
    pub token: u64,
    /// What the work under the hold returned.
    pub output: T,
}

impl<T> Held<T> {
    /// The record of this hold.
    pub fn hold(&self, kind: Kind, worker: usize, value: u64) -> Hold {
        Hold {
            kind,
            worker,
            called: self.called,
            start: self.start,
            end: self.end,
            token: self.token,
            value,
        }
    }
}

/// Asks for a hold with `acquire`, does `work` while holding it, then
/// releases it. Fails with "`lost`: reason" when the hold is lost before
/// the work is done.
pub async fn hold_while<T>(
    acquire: impl Future<Output = distlock::Result<LockGuard>>,
    work: impl Future<Output = Result<T>>,
    lost: &str,
) -> Result<Held<T>> {
    let called = wall_ns();
    let guard = acquire.await?;
    let start = wall_ns();
    let output = tokio::select! {
        done = work => done?,
        reason = guard.lost() => return Err(format!("{lost}: {reason}").into()),
    };
    let end = wall_ns();
    let token = guard.fencing_token().get();
    guard.release().await?;
    Ok(Held {
        called,
        start,
        end,
        token,
        output,
    })
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

/// The parent's checks: each failed one printed as it is found, and one
/// line at the end.
pub struct Verdict {
    program: &'static str,
    ok: bool,
}

impl Verdict {
    /// No check failed yet; `program` starts every line printed.
    pub fn new(program: &'static str) -> Self {
        Verdict { program, ok: true }
    }

    /// Fails the run with `what` when `broken`.
    pub fn fail_if(&mut self, broken: bool, what: String) {
        if broken {
            println!("{}: FAILED: {what}", self.program);
            self.ok = false;
        }
    }

    /// Fails the run with `problem`, if there is one.
    pub fn fail_on(&mut self, problem: Option<String>) {
        if let Some(problem) = problem {
            self.fail_if(true, problem);
        }
    }

    /// Prints `title: ok` (or `FAILED`); true when every check passed.
    pub fn finish(self, title: &str) -> bool {
        println!("{title}: {}", if self.ok { "ok" } else { "FAILED" });
        self.ok
    }
}
