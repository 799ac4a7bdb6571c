//! Multi-name locks: several names taken all or nothing, in one global
//! order, so that two callers taking overlapping sets in different orders
//! cannot deadlock — the default of
//! [`DistributedLock::acquire_many`](crate::DistributedLock::acquire_many),
//! in named steps: order the names, take each with what is left of the
//! wait while keeping the ones already taken alive, give everything back on
//! failure or cancellation.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::DistributedLock;
use crate::cleanup::CleanupOnDrop;
use crate::error::{LockError, Result};
use crate::lease::Lease;
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};

/// The one global order in which multi-name locks take their names: byte
/// order of the names as given (names are case-sensitive and never
/// normalised, so this is their canonical form), duplicates dropped.
///
/// ```
/// use distlock_core::{lock_order, LockName};
/// let names = ["b", "a", "b", "B"].map(|n| LockName::new(n).unwrap());
/// let order = lock_order(&names);
/// let order: Vec<&str> = order.iter().map(|n| n.as_str()).collect();
/// assert_eq!(order, ["B", "a", "b"]);
/// ```
pub fn lock_order(names: &[LockName]) -> Vec<LockName> {
    let mut order = names.to_vec();
    order.sort();
    order.dedup();
    order
}

/// Takes every name in [`lock_order`], each step waiting for what is left
/// of `options.wait`, keeping the names taken alive meanwhile; gives them
/// all back when a step fails or runs out of time.
pub(crate) async fn acquire_in_order<L>(
    lock: Arc<L>,
    names: &[LockName],
    options: &AcquireOptions,
) -> Result<Option<Vec<Lease>>>
where
    L: DistributedLock + ?Sized + 'static,
{
    if names.is_empty() {
        return Err(LockError::InvalidName {
            reason: "a multi-name lock needs at least one name".into(),
        });
    }
    let deadline = options.wait.deadline(Instant::now());
    let mut taken = Taken::new(lock.clone());
    for name in lock_order(names) {
        let step = options.with_wait(left_of(options.wait, deadline));
        let got = tokio::select! {
            got = lock.acquire(&name, &step) => got,
            lost = taken.keep_alive() => Err(lost),
        };
        match got {
            Ok(Some(lease)) => taken.push(lease),
            Ok(None) => {
                taken.give_back().await;
                return Ok(None);
            }
            Err(e) => {
                taken.give_back().await;
                return Err(e);
            }
        }
    }
    Ok(Some(taken.keep()))
}

/// What is left of `wait` before `deadline`: a step of a finite wait whose
/// time is up tries once.
fn left_of(wait: Wait, deadline: Option<Instant>) -> Wait {
    match (wait, deadline) {
        (Wait::For(_), Some(deadline)) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Wait::NoWait
            } else {
                Wait::For(left)
            }
        }
        (wait, _) => wait,
    }
}

/// The names taken so far; released in the background if dropped before
/// they were kept or given back.
struct Taken<L: ?Sized + DistributedLock + 'static> {
    lock: Arc<L>,
    leases: Vec<Lease>,
    undo: CleanupOnDrop,
}

impl<L: ?Sized + DistributedLock + 'static> Taken<L> {
    fn new(lock: Arc<L>) -> Self {
        let backend = lock.backend_name();
        Taken {
            lock,
            leases: Vec::new(),
            undo: CleanupOnDrop::new(backend, "names of an unfinished multi-name lock"),
        }
    }

    /// One more name taken: the undo now gives it back too.
    fn push(&mut self, lease: Lease) {
        self.leases.push(lease);
        let (lock, leases) = (self.lock.clone(), self.leases.clone());
        self.undo
            .arm(async move { release_all(&*lock, &leases).await });
    }

    /// Every name was taken: the caller keeps them.
    fn keep(mut self) -> Vec<Lease> {
        self.undo.disarm();
        std::mem::take(&mut self.leases)
    }

    /// Gives every name back now; the undo stays armed until that is done,
    /// so a drop half-way still gives them back (again: a second release of
    /// one lease is refused harmlessly).
    async fn give_back(mut self) {
        release_all(&*self.lock, &self.leases).await;
        self.undo.disarm();
    }

    /// Extends the names taken (one `extend_many` per third of their ttl)
    /// until an extension fails; returns that failure. Never returns while
    /// nothing is taken.
    async fn keep_alive(&mut self) -> LockError {
        loop {
            let due = self
                .leases
                .iter()
                .map(|l| l.valid_until().checked_sub(l.ttl() * 2 / 3))
                .min();
            let Some(due) = due else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()).await;
            let renewed = self.lock.extend_many(&self.leases).await;
            for (lease, result) in self.leases.iter_mut().zip(renewed) {
                match result {
                    Ok(renewed) => *lease = renewed,
                    Err(e) => return e,
                }
            }
        }
    }
}

/// Releases every lease, concurrently; failures are the backend's to log
/// (a lease not held any more is nothing to give back).
async fn release_all<L: ?Sized + DistributedLock>(lock: &L, leases: &[Lease]) {
    futures::future::join_all(leases.iter().map(|l| lock.release(l))).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_finite_wait_shrinks_step_by_step() {
        let start = Instant::now();
        let wait = Wait::For(Duration::from_secs(10));
        let Wait::For(left) = left_of(wait, wait.deadline(start)) else {
            panic!("a finite wait stays finite while time is left");
        };
        assert!(left <= Duration::from_secs(10));
        assert_eq!(left_of(wait, Some(start)), Wait::NoWait);
        assert_eq!(left_of(Wait::Forever, None), Wait::Forever);
        assert_eq!(left_of(Wait::NoWait, Some(start)), Wait::NoWait);
    }
}
