//! Status: what the instances can tell about a lock without taking it, and
//! the change notices leader observers wait on.

use std::collections::HashMap;
use std::time::Duration;

use distlock_core::{ChangeNotices, FencingToken, LockName, LockStatus, Result, OBSERVE_POLL};
use futures::future::join_all;

use crate::instance::CallError;

use super::Engine;

/// The ttl whose per-instance timeout bounds a status read.
const STATUS_TTL: Duration = Duration::from_secs(10);

/// One instance's answer to the status script.
struct Reading {
    pttl: i64,
    counter: u64,
    queued: usize,
    /// The writer's label ('' for none).
    label: String,
    /// The start of the writer's owner token ('' when no writer holds).
    writer: String,
}

impl Engine {
    /// Reads the status on every instance (one round trip, in parallel).
    /// Held when a quorum reports a holder (of any mode); `expires_in` is
    /// how long until fewer than a quorum do (for readers and permits: until
    /// the longest-lived of them expires). When one writer holds on a
    /// quorum, the fencing token is its own (the quorum-th highest counter
    /// among the instances where it holds, see `quorum_writer`) and the
    /// holder is its label; otherwise the token is the highest counter seen.
    /// In fair mode the waiters are those queued on a quorum (the
    /// quorum-th longest queue).
    pub(crate) async fn inspect(&self, name: &LockName) -> Result<LockStatus> {
        let keys = self.keys(name);
        let timeout = self.instance_timeout(STATUS_TTL);
        let mut invocation = self.scripts.status.prepare_invoke();
        invocation
            .key(&keys.lock)
            .key(&keys.fence)
            .key(&keys.queue)
            .key(&keys.holders)
            .key(&keys.holder);
        type Answer = (i64, i64, i64, String, String);
        let answers = join_all(
            self.instances
                .iter()
                .map(|i| i.invoke::<Answer>(&invocation, timeout)),
        )
        .await;
        let mut readings = Vec::new();
        let mut failures: Vec<(usize, CallError)> = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok((pttl, counter, queued, label, writer)) => readings.push(Reading {
                    pttl,
                    counter: u64::try_from(counter).unwrap_or(0),
                    queued: usize::try_from(queued).unwrap_or(0),
                    label,
                    writer,
                }),
                Err(e) => failures.push((i, e)),
            }
        }
        if self.instances.len() - failures.len() < self.quorum {
            let failures: Vec<(usize, &CallError)> =
                failures.iter().map(|(i, e)| (*i, e)).collect();
            return Err(self.quorum_error(&format!("reading the status of `{name}`"), &failures));
        }
        // The quorum-th longest remaining ttl: until then a quorum still
        // holds the key.
        let mut pttls: Vec<i64> = readings
            .iter()
            .map(|r| r.pttl)
            .filter(|p| *p != -2)
            .collect();
        pttls.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_pttl = pttls.get(self.quorum - 1).copied();
        let held = quorum_pttl.is_some();
        let expires_in = quorum_pttl
            .and_then(|p| u64::try_from(p).ok())
            .map(Duration::from_millis);
        // The waiters queued on a quorum: the quorum-th longest queue.
        let mut queued: Vec<usize> = readings.iter().map(|r| r.queued).collect();
        queued.sort_unstable_by(|a, b| b.cmp(a));
        let waiters = queued.get(self.quorum - 1).copied().unwrap_or(0);
        let (fence, holder) = match self.quorum_writer(&readings) {
            Some(writer) => (writer.counter, Some(writer.label).filter(|l| !l.is_empty())),
            None => (readings.iter().map(|r| r.counter).max().unwrap_or(0), None),
        };
        Ok(LockStatus::new(
            held,
            (fence > 0).then_some(FencingToken(fence)),
            expires_in,
            self.fair.then_some(waiters),
        )
        .with_holder(holder))
    }

    /// The writer holding on a quorum, if one does: its label and its
    /// token, the quorum-th highest counter among the instances it holds.
    /// Its token was recorded on a quorum of them, and no grant moves a
    /// counter where it holds, except a hand-over to it (fair mode) where
    /// it was still queued: on instances that had not granted it, at most
    /// N − quorum of them, fewer than a quorum. (The highest counter on one
    /// instance.)
    fn quorum_writer(&self, readings: &[Reading]) -> Option<Writer> {
        let mut by_writer: HashMap<&str, Vec<&Reading>> = HashMap::new();
        for r in readings.iter().filter(|r| !r.writer.is_empty()) {
            by_writer.entry(r.writer.as_str()).or_default().push(r);
        }
        let holding = by_writer.into_values().find(|rs| rs.len() >= self.quorum)?;
        let mut counters: Vec<u64> = holding.iter().map(|r| r.counter).collect();
        counters.sort_unstable_by(|a, b| b.cmp(a));
        let counter = counters.get(self.quorum - 1).copied().unwrap_or(0);
        let label = holding
            .iter()
            .map(|r| r.label.as_str())
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        Some(Writer { counter, label })
    }

    /// Change notices for `name`: a watcher of its release channel (one
    /// SUBSCRIBE per instance, in parallel, unless this client has it
    /// subscribed already), woken by every release, hand-over and labelled
    /// grant. While too few instances are subscribed for a message to be
    /// sure to reach it (a connection down), it gives a notice every
    /// [`OBSERVE_POLL`] instead.
    pub(crate) async fn watch(&self, name: &LockName) -> Result<Option<ChangeNotices>> {
        let keys = self.keys(name);
        let needed = self.instances.len() - self.quorum + 1;
        let timeout = self.instance_timeout(STATUS_TTL);
        let watcher = self.notifier.watch(&keys.channel, needed, timeout).await;
        let notices = futures::stream::unfold(watcher, |mut watcher| async move {
            watcher.notice(OBSERVE_POLL).await;
            Some(((), watcher))
        });
        Ok(Some(Box::pin(notices)))
    }
}

/// The writer holding on a quorum.
struct Writer {
    counter: u64,
    label: String,
}
