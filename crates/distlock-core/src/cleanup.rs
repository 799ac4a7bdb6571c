//! Finishing what a dropped operation started.
//!
//! A future dropped half-way (a cancelled `acquire`, a dropped guard) may
//! leave something on the server: a queue entry, a lock taken in the same
//! instant. Rust has no async drop, so the clean-up is armed before the
//! round trip that may need it, disarmed once the operation completed, and
//! spawned onto the current tokio runtime if the holder is dropped while
//! still armed. [`CleanupOnDrop`] is that pattern, written once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

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
        let Some(task) = self.task.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                tracing::debug!(backend = self.backend, what = self.what, "distlock.cleanup");
                crate::layer::telemetry::cleanup(self.backend);
                rt.spawn(task);
            }
            Err(_) => tracing::warn!(
                backend = self.backend,
                what = self.what,
                "distlock.cleanup_skipped: dropped outside a tokio runtime; the server frees it at its ttl or session end"
            ),
        }
    }
}
