//! Several names held together: [`MultiLockGuard`], taken all or nothing
//! through [`DistributedLock::acquire_many`](crate::DistributedLock::acquire_many)
//! (one global order, so overlapping sets never deadlock).

use std::fmt;
use std::future::Future;

use crate::error::{LockError, Result};
use crate::lease::{FencingToken, Lease};
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};

use super::{not_acquired, IntoLockName, LockClient, LockGuard, LostReason};

impl LockClient {
    /// Takes every name of `names` (each exclusively) with the default
    /// options, all or nothing, waiting up to the default wait in all.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// // Another client taking ["accounts/2", "accounts/1"] cannot deadlock with this.
    /// let both = client.lock_many(["accounts/1", "accounts/2"]).await?;
    /// let token = both.fencing_token("accounts/2");
    /// // … move money between the two accounts …
    /// both.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `Timeout` when some name stayed held for the whole wait (`Held` with
    /// a zero wait) — nothing is held then; `InvalidName` for a bad name or
    /// an empty set; backend errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn lock_many<I>(&self, names: I) -> Result<MultiLockGuard>
    where
        I: IntoIterator,
        I::Item: IntoLockName,
    {
        let options = *self.defaults();
        self.lock_many_with(names, &options).await
    }

    /// [`lock_many`](Self::lock_many) with `options` (each lease's ttl; the
    /// wait for all of them together).
    ///
    /// # Errors
    ///
    /// As for [`lock_many`](Self::lock_many), with `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn lock_many_with<I>(
        &self,
        names: I,
        options: &AcquireOptions,
    ) -> Result<MultiLockGuard>
    where
        I: IntoIterator,
        I::Item: IntoLockName,
    {
        let names = lock_names(names)?;
        match self.acquire_many_guard(&names, options).await? {
            Some(guard) => Ok(guard),
            None => Err(not_acquired_many(&names, options.wait)),
        }
    }

    /// Takes every name of `names` if all are free now (default ttl);
    /// `Ok(None)`, holding nothing, when some name is held.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held.
    pub async fn try_lock_many<I>(&self, names: I) -> Result<Option<MultiLockGuard>>
    where
        I: IntoIterator,
        I::Item: IntoLockName,
    {
        let options = self.defaults().with_wait(Wait::NoWait);
        self.try_lock_many_with(names, &options).await
    }

    /// Takes every name of `names` within `options.wait`; `Ok(None)`,
    /// holding nothing, when some name stayed held for the whole wait.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_lock_many_with<I>(
        &self,
        names: I,
        options: &AcquireOptions,
    ) -> Result<Option<MultiLockGuard>>
    where
        I: IntoIterator,
        I::Item: IntoLockName,
    {
        let names = lock_names(names)?;
        self.acquire_many_guard(&names, options).await
    }

    /// Acquires the names and wraps each lease in a guard of this client.
    async fn acquire_many_guard(
        &self,
        names: &[LockName],
        options: &AcquireOptions,
    ) -> Result<Option<MultiLockGuard>> {
        let backend = self.backend().clone();
        let Some(leases) = backend.acquire_many(names, options).await? else {
            return Ok(None);
        };
        let mut guards = Vec::with_capacity(leases.len());
        let mut leases = leases.into_iter();
        while let Some(lease) = leases.next() {
            match self.guard_for(lease).await {
                Ok(guard) => guards.push(guard),
                Err(e) => {
                    // Give back what no guard keeps (the guards made so far
                    // release theirs when dropped).
                    for rest in leases {
                        let _ = self.backend().release(&rest).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(Some(MultiLockGuard { guards }))
    }
}

/// The names, validated.
fn lock_names<I>(names: I) -> Result<Vec<LockName>>
where
    I: IntoIterator,
    I::Item: IntoLockName,
{
    names
        .into_iter()
        .map(IntoLockName::into_lock_name)
        .collect()
}

/// The error for a set of names not acquired within `wait`.
fn not_acquired_many(names: &[LockName], wait: Wait) -> LockError {
    let all = names
        .iter()
        .map(LockName::as_str)
        .collect::<Vec<_>>()
        .join("`, `");
    match LockName::new(all) {
        Ok(joined) => not_acquired(&joined, wait),
        // Too long to name them all: name the first.
        Err(_) => match names.first() {
            Some(first) => not_acquired(first, wait),
            None => LockError::invalid_options("no names"),
        },
    }
}

/// Several names held together, each exclusively, taken all or nothing.
///
/// Each name is a [`LockGuard`] of the same client, kept alive by its one
/// watchdog (their extensions are due together, so they go in one
/// [`extend_many`](crate::DistributedLock::extend_many) batch). The guard is
/// lost as soon as any of its names is lost; dropping it releases every
/// name in the background.
#[must_use = "dropping a MultiLockGuard releases every name at once; bind it for as long as the work runs"]
pub struct MultiLockGuard {
    /// One guard per distinct name, in the order the names were taken.
    guards: Vec<LockGuard>,
}

impl fmt::Debug for MultiLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.guards).finish()
    }
}

impl MultiLockGuard {
    /// The names held, in the order they were taken
    /// ([`lock_order`](crate::lock_order): sorted, each once).
    pub fn names(&self) -> Vec<LockName> {
        self.guards.iter().map(LockGuard::name).collect()
    }

    /// The fencing token of `name`'s hold, to pass to the resource that
    /// name protects; `None` when `name` is not one of these.
    pub fn fencing_token(&self, name: impl AsRef<str>) -> Option<FencingToken> {
        let name = name.as_ref();
        self.guards
            .iter()
            .find(|g| g.name().as_str() == name)
            .map(LockGuard::fencing_token)
    }

    /// Every name with its fencing token, in the order taken.
    pub fn fencing_tokens(&self) -> Vec<(LockName, FencingToken)> {
        self.guards
            .iter()
            .map(|g| (g.name(), g.fencing_token()))
            .collect()
    }

    /// The current leases (as last extended), in the order taken.
    pub fn leases(&self) -> Vec<Lease> {
        self.guards.iter().map(LockGuard::lease).collect()
    }

    /// The guard of each name, in the order taken.
    pub fn guards(&self) -> &[LockGuard] {
        &self.guards
    }

    /// True once any of the names can no longer be trusted.
    pub fn is_lost(&self) -> bool {
        self.guards.iter().any(LockGuard::is_lost)
    }

    /// Resolves when the first of the names is lost, with its reason.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        let each: Vec<_> = self.guards.iter().map(|g| Box::pin(g.lost())).collect();
        async move {
            if each.is_empty() {
                return std::future::pending().await;
            }
            futures::future::select_all(each).await.0
        }
    }

    /// Releases every name now (all at once).
    ///
    /// # Errors
    ///
    /// The first failure among the names (`NotHeld` for one already lost);
    /// the others are released all the same.
    ///
    /// # Cancel safety
    ///
    /// As for [`LockGuard::release`], for each name.
    pub async fn release(self) -> Result<()> {
        let results = futures::future::join_all(self.guards.into_iter().map(LockGuard::release));
        results.await.into_iter().collect()
    }
}
