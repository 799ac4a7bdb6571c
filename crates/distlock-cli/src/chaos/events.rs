//! What chaos clients report, one line each on their standard output, and
//! what the runner concludes from it.
//!
//! ```text
//! acq <token> <ns>              took the lock (wall clock, ns since the epoch)
//! write <token> ok|refused <ns> a fenced write, accepted or refused as stale
//! rel <token> <end ns>          gave it back; held until <end ns> (the release
//!                               or the lease's validity, whichever came first)
//! lost <token> <ns>             the guard reported the lock lost
//! unnoticed <token> <ns>        the lease's validity passed, and the guard did
//!                               not report the loss within a second
//! err <ns> <message>            an acquire failed (a fault in progress)
//! storeerr <ns> <message>       a write to the store failed
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use distlock_conformance::{History, Hold};

/// Nanoseconds since the epoch on the wall clock (shared by the processes
/// of one machine).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One reported event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Acquired { token: u64, at: u64 },
    Wrote { token: u64, accepted: bool, at: u64 },
    Released { token: u64, until: u64 },
    Lost { token: u64, at: u64 },
    Unnoticed { token: u64, at: u64 },
    Failed { at: u64 },
    StoreFailed { at: u64 },
}

impl Event {
    /// Parses one line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
        Some(match *parts.first()? {
            "acq" => Event::Acquired {
                token: n(1)?,
                at: n(2)?,
            },
            "write" => Event::Wrote {
                token: n(1)?,
                accepted: *parts.get(2)? == "ok",
                at: n(3)?,
            },
            "rel" => Event::Released {
                token: n(1)?,
                until: n(2)?,
            },
            "lost" => Event::Lost {
                token: n(1)?,
                at: n(2)?,
            },
            "unnoticed" => Event::Unnoticed {
                token: n(1)?,
                at: n(2)?,
            },
            "err" => Event::Failed { at: n(1)? },
            "storeerr" => Event::StoreFailed { at: n(1)? },
            _ => return None,
        })
    }
}

/// A fault the nemesis caused: its kind and when it began (wall ns).
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: &'static str,
    pub began: u64,
    /// The holder a pause stopped, if the fault was one.
    pub paused: Option<Paused>,
}

/// A holder a pause stopped.
#[derive(Clone, Copy, Debug)]
pub struct Paused {
    pub client: usize,
    /// The hold's token.
    pub token: u64,
    /// When the process was seen stopped (wall ns): a hold it gave back
    /// before then was not caught, however late its report arrived.
    pub stopped_at: u64,
}

/// Everything the runner recorded.
#[derive(Default)]
pub struct Record {
    /// (client, event), in arrival order.
    pub events: Vec<(usize, Event)>,
    /// Holds cut short by a kill: (client, token) → the kill's time.
    pub killed: BTreeMap<(usize, u64), u64>,
    pub faults: Vec<Fault>,
    /// The tokens of the writes the store accepted, in commit order.
    pub accepted: Vec<u64>,
}

/// What a run showed.
pub struct Findings {
    pub acquisitions: usize,
    pub violations: Vec<String>,
    pub stale_accepted: usize,
    pub stale_refused: usize,
    pub writes_accepted: usize,
    pub lost_signals: usize,
    pub unnoticed: usize,
    pub acquire_errors: usize,
    pub store_errors: usize,
    pub paused_reported_lost: (usize, usize),
    pub longest_gap: Duration,
    /// Per fault kind: how many, and the longest gap between holds that
    /// began while it or its aftermath (until the next fault) lasted.
    pub gap_after: BTreeMap<&'static str, (usize, Duration)>,
}

impl Findings {
    /// Nothing unsafe happened, and every paused holder noticed.
    pub fn safe(&self) -> bool {
        self.violations.is_empty()
            && self.stale_accepted == 0
            && self.unnoticed == 0
            && self.paused_reported_lost.0 == self.paused_reported_lost.1
    }
}

/// The holds of `record`: (client, token, start, end) in wall ns.
fn holds(record: &Record) -> Vec<(usize, u64, u64, u64)> {
    let mut open: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (client, event) in &record.events {
        match *event {
            Event::Acquired { token, at } => {
                open.insert((*client, token), at);
            }
            Event::Released { token, until } => {
                if let Some(start) = open.remove(&(*client, token)) {
                    out.push((*client, token, start, until.max(start)));
                }
            }
            _ => {}
        }
    }
    // Killed while holding: the hold ended when the process died.
    for ((client, token), start) in open {
        let end = record
            .killed
            .get(&(client, token))
            .copied()
            .unwrap_or(u64::MAX);
        out.push((client, token, start, end.max(start)));
    }
    out.sort_by_key(|h| h.2);
    out
}

/// Checks `record`: overlaps and falling tokens (the history checker),
/// stale writes, lost signals, gaps.
pub fn analyse(record: &Record) -> Findings {
    let holds = holds(record);
    let history = History::new();
    let base_ns = holds.first().map_or(0, |h| h.2);
    let base = Instant::now();
    let at = |ns: u64| base + Duration::from_nanos(ns.saturating_sub(base_ns));
    for &(client, token, start, end) in &holds {
        let end = if end == u64::MAX { start } else { end };
        history.record(Hold {
            client,
            fencing: token,
            start: at(start),
            end: at(end),
        });
    }
    let violations = history.violations().iter().map(|v| v.to_string()).collect();
    let (stale_accepted, stale_refused, writes_accepted) = writes(record);
    let gaps = gaps(&holds);
    Findings {
        acquisitions: holds.len(),
        violations,
        stale_accepted,
        stale_refused,
        writes_accepted,
        lost_signals: count(record, |e| matches!(e, Event::Lost { .. })),
        unnoticed: count(record, |e| matches!(e, Event::Unnoticed { .. })),
        acquire_errors: count(record, |e| matches!(e, Event::Failed { .. })),
        store_errors: count(record, |e| matches!(e, Event::StoreFailed { .. })),
        paused_reported_lost: paused_reported_lost(record),
        longest_gap: gaps.iter().map(|g| g.1).max().unwrap_or_default(),
        gap_after: gap_after(record, &gaps),
    }
}

fn count(record: &Record, what: impl Fn(&Event) -> bool) -> usize {
    record.events.iter().filter(|(_, e)| what(e)).count()
}

/// (accepted although a higher token had been accepted before, refused,
/// accepted): the store's log gives the order it accepted writes in.
fn writes(record: &Record) -> (usize, usize, usize) {
    let refused = count(record, |e| {
        matches!(
            e,
            Event::Wrote {
                accepted: false,
                ..
            }
        )
    });
    let mut highest = 0;
    let mut stale = 0;
    for &token in &record.accepted {
        stale += usize::from(token < highest);
        highest = highest.max(token);
    }
    (stale, refused, record.accepted.len())
}

/// Of the holds a pause caught, how many their holder reported lost after:
/// (reported, caught). A client paused just after it gave the lock back
/// caught nothing; one killed before it gave the lock back cannot tell.
fn paused_reported_lost(record: &Record) -> (usize, usize) {
    let mut caught = 0;
    let mut reported = 0;
    for fault in &record.faults {
        let Some(Paused {
            client,
            token,
            stopped_at,
        }) = fault.paused
        else {
            continue;
        };
        let of_hold = |e: &Event| match *e {
            Event::Released { token: t, until } => Some((t, Some(until))),
            Event::Lost { token: t, .. } => Some((t, None)),
            _ => None,
        };
        // (released, and the lock was still held when the pause began)
        let mut released = None;
        let mut lost = false;
        for (c, e) in &record.events {
            match of_hold(e) {
                Some((t, Some(until))) if *c == client && t == token => {
                    released = Some(until >= stopped_at);
                }
                Some((t, None)) if *c == client && t == token => lost = true,
                _ => {}
            }
        }
        // Never released: killed before it could tell.
        if released == Some(true) {
            caught += 1;
            reported += usize::from(lost);
        }
    }
    (reported, caught)
}

/// The gaps between consecutive holds: (when the lock fell free, how long
/// it stayed free), in wall ns.
fn gaps(holds: &[(usize, u64, u64, u64)]) -> Vec<(u64, Duration)> {
    let mut out = Vec::new();
    let mut free_from: Option<u64> = None;
    for &(_, _, start, end) in holds {
        if let Some(free) = free_from {
            if start > free {
                out.push((free, Duration::from_nanos(start - free)));
            }
        }
        if end != u64::MAX {
            free_from = Some(free_from.map_or(end, |f| f.max(end)));
        }
    }
    out
}

/// For each fault kind: its count, and the longest gap that began between
/// the fault's start and the next fault's start.
fn gap_after(
    record: &Record,
    gaps: &[(u64, Duration)],
) -> BTreeMap<&'static str, (usize, Duration)> {
    let mut out: BTreeMap<&'static str, (usize, Duration)> = BTreeMap::new();
    for (i, fault) in record.faults.iter().enumerate() {
        let next = record.faults.get(i + 1).map_or(u64::MAX, |f| f.began);
        // A gap open when the fault began counts too.
        let longest = gaps
            .iter()
            .filter(|(free, len)| {
                let ends = free.saturating_add(u64::try_from(len.as_nanos()).unwrap_or(u64::MAX));
                ends > fault.began && *free < next
            })
            .map(|g| g.1)
            .max()
            .unwrap_or_default();
        let entry = out.entry(fault.kind).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(longest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lines: &[(usize, &str)]) -> Record {
        Record {
            events: lines
                .iter()
                .map(|(c, l)| (*c, Event::parse(l).expect(l)))
                .collect(),
            ..Record::default()
        }
    }

    #[test]
    fn lines_parse_and_junk_does_not() {
        assert_eq!(
            Event::parse("write 7 refused 12"),
            Some(Event::Wrote {
                token: 7,
                accepted: false,
                at: 12
            })
        );
        assert_eq!(Event::parse("acq x 1"), None);
        assert_eq!(Event::parse(""), None);
    }

    #[test]
    fn an_overlap_and_a_stale_write_are_found() {
        let mut r = record(&[
            (0, "acq 1 100"),
            (1, "acq 2 150"),
            (1, "write 2 ok 160"),
            (0, "write 1 ok 170"),
            (0, "rel 1 200"),
            (1, "rel 2 300"),
        ]);
        r.accepted = vec![2, 1];
        let f = analyse(&r);
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert_eq!(f.stale_accepted, 1);
        assert!(!f.safe());
    }

    #[test]
    fn a_clean_history_is_safe_and_gaps_are_measured() {
        let mut r = record(&[
            (0, "acq 1 100"),
            (0, "write 1 ok 110"),
            (0, "rel 1 200"),
            (1, "acq 2 1200"),
            (0, "write 1 refused 1300"),
            (1, "write 2 ok 1300"),
            (1, "rel 2 1400"),
        ]);
        r.accepted = vec![1, 2];
        let f = analyse(&r);
        assert!(f.safe(), "{:?}", f.violations);
        assert_eq!((f.stale_refused, f.writes_accepted), (1, 2));
        assert_eq!(f.longest_gap, Duration::from_nanos(1000));
    }

    #[test]
    fn a_paused_holder_that_never_reports_lost_is_unsafe() {
        let paused = |stopped_at| {
            Some(Paused {
                client: 0,
                token: 1,
                stopped_at,
            })
        };
        let mut r = record(&[(0, "acq 1 100"), (0, "rel 1 200")]);
        r.faults.push(Fault {
            kind: "pause",
            began: 150,
            paused: paused(160),
        });
        assert!(!analyse(&r).safe());
        r.events.insert(1, (0, Event::Lost { token: 1, at: 195 }));
        assert!(analyse(&r).safe());
        // Paused after it had given the lock back: nothing was caught.
        let mut r = record(&[(0, "acq 1 100"), (0, "rel 1 140")]);
        r.faults.push(Fault {
            kind: "pause",
            began: 150,
            paused: paused(160),
        });
        assert_eq!(analyse(&r).paused_reported_lost, (0, 0));
        // Gave it back after the pause began but before the process
        // stopped (the signal was still on its way): not caught either.
        let mut r = record(&[(0, "acq 1 100"), (0, "rel 1 155")]);
        r.faults.push(Fault {
            kind: "pause",
            began: 150,
            paused: paused(160),
        });
        assert_eq!(analyse(&r).paused_reported_lost, (0, 0));
    }
}
