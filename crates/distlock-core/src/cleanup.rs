//! Finishing what a dropped operation started.
//!
//! A future dropped half-way (a cancelled `acquire`, a dropped guard) may
//! leave something on the server: a queue entry, a lock taken in the same
//! instant. Rust has no async drop, so the clean-up is armed before the
//! round trip that may need it, disarmed once the operation completed, and
//! spawned onto the current tokio runtime if the holder is dropped while
//! still armed. [`CleanupOnDrop`] is that pattern, written once;
//! [`DeferredCleanup`] is the same for a clean-up kept as plain data until
//! it must run, for hot paths that arm and disarm at every call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A clean-up's work, as it is spawned.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Work that runs in the background if this value is dropped while armed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use distlock_core::cleanup::CleanupOnDrop;
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let mut cleanup = CleanupOnDrop::new("etcd", "queue entry");
/// cleanup.arm(async move { let _ = tx.send("removed"); });
/// drop(cleanup); // as if the operation's future had been dropped
/// assert_eq!(rx.await.unwrap(), "removed");
/// # }
/// ```
pub struct CleanupOnDrop {
    backend: &'static str,
    what: &'static str,
    task: Option<Task>,
}

impl fmt::Debug for CleanupOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanupOnDrop")
            .field("backend", &self.backend)
            .field("what", &self.what)
            .field("armed", &self.task.is_some())
            .finish()
    }
}

impl CleanupOnDrop {
    /// A disarmed clean-up for `what` (a short noun for logs: "queue entry").
    pub fn new(backend: &'static str, what: &'static str) -> Self {
        CleanupOnDrop {
            backend,
            what,
            task: None,
        }
    }

    /// A clean-up armed with `task` from the start.
    pub fn armed(
        backend: &'static str,
        what: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let mut c = Self::new(backend, what);
        c.arm(task);
        c
    }

    /// Arms (or re-arms) the clean-up with `task`, replacing any earlier one.
    pub fn arm(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.task = Some(Box::pin(task));
    }

    /// Disarms: the operation completed and nothing needs undoing.
    pub fn disarm(&mut self) {
        self.task = None;
    }

    /// True while a clean-up would run on drop.
    pub fn is_armed(&self) -> bool {
        self.task.is_some()
    }

    /// Runs the armed clean-up now, in this task, and disarms.
    ///
    /// # Cancel safety
    ///
    /// If this future is dropped, the clean-up is abandoned half-way; use
    /// it where the caller's future is not expected to be cancelled.
    pub async fn run_now(mut self) {
        if let Some(task) = self.task.take() {
            task.await;
        }
    }
}

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            spawn(self.backend, self.what, task);
        }
    }
}

/// A clean-up kept as data (`S`) while armed, turned into its task by `run`
/// only if dropped armed: arming and disarming cost no allocation.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use distlock_core::cleanup::{DeferredCleanup, Task};
/// type Removed = tokio::sync::oneshot::Sender<&'static str>;
/// fn remove(tx: Removed) -> Task {
///     Box::pin(async move { let _ = tx.send("removed"); })
/// }
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let mut cleanup = DeferredCleanup::new("etcd", "queue entry", remove);
/// cleanup.arm(tx);
/// drop(cleanup); // as if the operation's future had been dropped
/// assert_eq!(rx.await.unwrap(), "removed");
/// # }
/// ```
pub struct DeferredCleanup<S: Send + 'static> {
    backend: &'static str,
    what: &'static str,
    state: Option<S>,
    run: fn(S) -> Task,
}

impl<S: Send + 'static> fmt::Debug for DeferredCleanup<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredCleanup")
            .field("backend", &self.backend)
            .field("what", &self.what)
            .field("armed", &self.state.is_some())
            .finish()
    }
}

impl<S: Send + 'static> DeferredCleanup<S> {
    /// A disarmed clean-up for `what` (a short noun for logs), whose work
    /// for an armed state is `run(state)`.
    pub fn new(backend: &'static str, what: &'static str, run: fn(S) -> Task) -> Self {
        DeferredCleanup {
            backend,
            what,
            state: None,
            run,
        }
    }

    /// Arms it with `state` (replacing any earlier one, which is dropped).
    pub fn arm(&mut self, state: S) {
        self.state = Some(state);
    }

    /// Disarms it: the state it was armed with, if any.
    pub fn disarm(&mut self) -> Option<S> {
        self.state.take()
    }

    /// Runs the clean-up now, if armed, instead of on drop.
    pub async fn run_now(mut self) {
        if let Some(state) = self.state.take() {
            (self.run)(state).await;
        }
    }
}

impl<S: Send + 'static> Drop for DeferredCleanup<S> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            spawn(self.backend, self.what, (self.run)(state));
        }
    }
}

/// Spawns an armed clean-up's `task` onto the current runtime.
fn spawn(backend: &'static str, what: &'static str, task: Task) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            tracing::debug!(backend, what, "distlock.cleanup");
            crate::layer::telemetry::cleanup(backend);
            rt.spawn(task);
        }
        Err(_) => tracing::warn!(
            backend,
            what,
            "distlock.cleanup_skipped: dropped outside a tokio runtime; the server frees it at its ttl or session end"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Done = tokio::sync::oneshot::Sender<()>;

    fn finish(tx: Done) -> Task {
        Box::pin(async move {
            let _ = tx.send(());
        })
    }

    #[tokio::test]
    async fn a_disarmed_deferred_cleanup_does_not_run() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut cleanup = DeferredCleanup::new("test", "nothing", finish);
        cleanup.arm(tx);
        let state = cleanup.disarm();
        drop(cleanup);
        assert!(state.is_some(), "disarming hands back the state");
        drop(state);
        // The sender was dropped, not sent on: the clean-up never ran.
        assert!(rx.await.is_err());
    }

    #[tokio::test]
    async fn a_deferred_cleanup_runs_now_once() {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let mut cleanup = DeferredCleanup::new("test", "something", finish);
        cleanup.arm(tx);
        cleanup.run_now().await;
        assert!(rx.try_recv().is_ok(), "run_now ran it at once");
    }
}
