//! Handing a turn on: the entries whose turn came must claim it within
//! their window; one that does not is passed over.
//!
//! 1. Read the head of the line ([`Line::read_head`]): the entries whose
//!    turn it is (the longest prefix that fits together by
//!    [`Mode::admitted`](crate::Mode::admitted)) that still carry their
//!    waiting mark.
//! 2. At each one's deadline (the read plus the window its mark carries),
//!    check it again ([`Line::still_unclaimed`]); if it did not claim,
//!    pass it over ([`Line::pass_over`]: a delete guarded by the version
//!    read, so a claim that lands first always wins).
//! 3. A pass-over lets the next entries in: back to 1 (a few rounds at
//!    most).
//!
//! Two kinds of client look. The one that removed an entry of the line (a
//! release, a waiter giving up, a waiter passed over) looks once, waits out
//! the windows and looks again ([`hand_on`]). And a waiting client with an
//! entry ahead of it that may still have to claim a turn keeps a
//! [`Lookout`]: it looks once per its own window, for when the client that
//! let a turn in is gone (killed, or exited right after its release): a
//! silent turn costs the line at most two windows then.
//!
//! A live waiter is woken by the removal that let it in and claims within a
//! few round trips, long before its window ends; only a waiter that died in
//! line (or one stalled for longer than its window, which then queues
//! again) is passed over.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// The most rounds (each passing over at least one waiter) one hand-on
/// makes before leaving the rest to the waiters' own expiry.
const MAX_ROUNDS: usize = 16;

/// A backend's line of waiters for one name, as the hand-on sees it.
#[async_trait]
pub trait Line: Send + Sync {
    /// An entry as read: what identifies it *at the version read*, so that
    /// two reads of an entry compare equal only while it did not change.
    type Entry: PartialEq + fmt::Debug + Send + Sync;
    /// Why a read failed.
    type Error: fmt::Display + Send;

    /// What the line is, for logs (a key prefix, a directory).
    fn describe(&self) -> &str;

    /// Reads the head of the line: the entries whose turn came that still
    /// carry their waiting mark, and whether a lookout kept by the entry
    /// `me` should look again (an entry ahead of it may still have to
    /// claim a turn).
    ///
    /// # Cancel safety
    ///
    /// A read only: dropping it changes nothing.
    async fn read_head(&self, me: Option<&str>) -> Result<Head<Self::Entry>, Self::Error>;

    /// Whether `entry` is still as read (it did not claim, nor leave).
    ///
    /// # Cancel safety
    ///
    /// A read only: dropping it changes nothing.
    async fn still_unclaimed(&self, entry: &Self::Entry) -> bool;

    /// Removes `entry` if it is still as read; true if it was.
    ///
    /// # Cancel safety
    ///
    /// One guarded removal, whole or not at all.
    async fn pass_over(&self, entry: &Self::Entry) -> bool;
}

/// An entry whose turn came, still marked as a waiter.
#[derive(Debug)]
pub struct Due<E> {
    /// The entry, at the version read.
    pub entry: E,
    /// The window its mark carries.
    pub window: Duration,
}

/// What one read of the head of a line found.
#[derive(Debug)]
pub struct Head<E> {
    /// When the read was answered.
    pub read_at: Instant,
    /// The turns not claimed yet.
    pub due: Vec<Due<E>>,
    /// Whether the entry the read was made for should look again.
    pub look_again: bool,
}

/// Hands the turn on in `line` (see the module docs): rounds of read, wait
/// out the windows, pass over the silent ones, until no waiter was passed
/// over.
///
/// # Cancel safety
///
/// Cancel safe: each pass-over is whole or not at all; a dropped hand-on
/// leaves the rest to the waiters behind ([`Lookout`]) and to the waiters'
/// own expiry.
pub async fn hand_on<L: Line + ?Sized>(line: &L) {
    for _ in 0..MAX_ROUNDS {
        let head = match line.read_head(None).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(line = line.describe(), error = %e, "distlock.line.hand_on_failed");
                return;
            }
        };
        if head.due.is_empty() || !pass_over_silent(line, head.due, head.read_at).await {
            return;
        }
    }
}

/// Passes over each entry of `due` (read at `read_at`) that has not claimed
/// its turn by the end of its window; true if one was.
async fn pass_over_silent<L: Line + ?Sized>(
    line: &L,
    mut due: Vec<Due<L::Entry>>,
    read_at: Instant,
) -> bool {
    due.sort_by_key(|d| d.window);
    let mut passed = false;
    for waiter in &due {
        tokio::time::sleep_until((read_at + waiter.window).into()).await;
        if line.still_unclaimed(&waiter.entry).await && passed_over(line, &waiter.entry).await {
            passed = true;
        }
    }
    passed
}

/// [`Line::pass_over`], logged when it removed the entry.
async fn passed_over<L: Line + ?Sized>(line: &L, entry: &L::Entry) -> bool {
    let passed = line.pass_over(entry).await;
    if passed {
        tracing::info!(
            line = line.describe(),
            ?entry,
            "distlock.line.waiter_passed_over"
        );
        metrics::counter!("distlock.line.waiters_passed_over").increment(1);
    }
    passed
}

/// A waiting client's look at the head of its line (see the module docs).
#[derive(Debug)]
pub struct Lookout<E> {
    /// Our entry, as [`Line::read_head`] knows it.
    me: String,
    /// How often to look: our own window.
    every: Duration,
    /// The next look, while one is worth it.
    next: Option<Instant>,
    /// Turns seen unclaimed, and since when.
    seen: Vec<(Due<E>, Instant)>,
}

impl<E: PartialEq + fmt::Debug + Send + Sync> Lookout<E> {
    /// The lookout of the entry `me`, looking every `every`.
    pub fn new(me: &str, every: Duration) -> Self {
        Lookout {
            me: me.to_string(),
            every,
            next: Some(Instant::now() + every),
            seen: Vec::new(),
        }
    }

    /// When to look next; `None` while nothing ahead of us could be passed
    /// over.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Looks again after our place changed (what is ahead of us did).
    pub fn rearm(&mut self) {
        self.next.get_or_insert_with(|| Instant::now() + self.every);
    }

    /// One look: passes over the turns that stayed unclaimed (same entry,
    /// same version) for their window since we first saw them; looks again
    /// in one window while the read says so.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a pass-over is whole or not at all; a dropped look only
    /// forgets since when it saw a turn unclaimed.
    pub async fn look<L: Line<Entry = E> + ?Sized>(&mut self, line: &L) {
        let head = match line.read_head(Some(&self.me)).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(line = line.describe(), error = %e, "distlock.line.lookout_failed");
                self.next = Some(Instant::now() + self.every);
                return;
            }
        };
        let mut seen = Vec::new();
        for due in head.due {
            let since = self
                .seen
                .iter()
                .find(|(s, _)| s.entry == due.entry)
                .map_or(head.read_at, |(_, since)| *since);
            if since + due.window <= head.read_at {
                passed_over(line, &due.entry).await;
            } else {
                seen.push((due, since));
            }
        }
        self.seen = seen;
        self.next = head.look_again.then(|| Instant::now() + self.every);
    }
}

#[cfg(test)]
#[path = "hand_on_tests.rs"]
mod tests;
