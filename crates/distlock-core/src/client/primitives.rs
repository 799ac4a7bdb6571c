//! Reader-writer locks and semaphores: the same guards as the mutex, in
//! another [`Mode`].
//!
//! A name's holders are one kind of thing at a time: a writer (or mutex
//! holder) alone, readers together, or a semaphore's permit holders. A write
//! lock *is* the mutex of that name (`write_lock(n)` and `lock(n)` exclude
//! each other), so code that took the mutex keeps working when readers are
//! added beside it.

use std::fmt;

use crate::error::{LockError, Result};
use crate::mode::Mode;
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};

use super::{not_acquired, IntoLockName, LockClient, LockGuard};

impl LockClient {
    /// Takes `name` as a reader, waiting up to the client's default wait:
    /// any number of readers hold it together, never beside a writer. On
    /// backends that queue ([`Capabilities::fifo`](crate::Capabilities)),
    /// a reader arriving while a writer waits queues behind that writer.
    ///
    /// # Errors
    ///
    /// `Timeout` when not acquired within the wait (`Held` with a zero
    /// wait); `Unsupported` when the backend serves no shared holds.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn read_lock(&self, name: impl IntoLockName) -> Result<LockGuard> {
        let opts = *self.defaults();
        self.read_lock_with(name, &opts).await
    }

    /// [`read_lock`](Self::read_lock) with `options`.
    ///
    /// # Errors
    ///
    /// As for [`read_lock`](Self::read_lock), with `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn read_lock_with(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
    ) -> Result<LockGuard> {
        self.must(name.into_lock_name()?, Mode::Shared, options)
            .await
    }

    /// Takes `name` as a reader if that can be done at once; `Ok(None)`
    /// when a writer holds it (or, on fair backends, waits for it).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_read_lock(&self, name: impl IntoLockName) -> Result<Option<LockGuard>> {
        let opts = self.defaults().with_wait(Wait::NoWait);
        self.acquire_guard(name.into_lock_name()?, Mode::Shared, &opts)
            .await
    }

    /// Takes `name` as the writer, waiting up to the client's default wait:
    /// alone, with no reader and no other writer. The same hold as
    /// [`lock`](Self::lock); its fencing token is greater than every earlier
    /// grant's, readers' included.
    ///
    /// # Errors
    ///
    /// `Timeout` when not acquired within the wait (`Held` with a zero wait).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn write_lock(&self, name: impl IntoLockName) -> Result<LockGuard> {
        self.lock(name).await
    }

    /// [`write_lock`](Self::write_lock) with `options`.
    ///
    /// # Errors
    ///
    /// As for [`write_lock`](Self::write_lock), with `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn write_lock_with(
        &self,
        name: impl IntoLockName,
        options: &AcquireOptions,
    ) -> Result<LockGuard> {
        self.lock_with(name, options).await
    }

    /// Takes `name` as the writer if that can be done at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_write_lock(&self, name: impl IntoLockName) -> Result<Option<LockGuard>> {
        self.try_lock(name).await
    }

    /// A semaphore: `name` admits at most `permits` holders at once.
    ///
    /// Every client using `name` must declare the same count: a request
    /// declaring another count while the name is held is refused with
    /// [`PermitMismatch`](LockError::PermitMismatch) (never more holders
    /// than any user expects). Nothing is sent until a permit is acquired.
    ///
    /// # Errors
    ///
    /// `InvalidName` for a bad name; `InvalidOptions` for zero permits;
    /// `Unsupported` when the backend serves no semaphores.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// let handlers = client.semaphore("handlers", 3)?;
    /// let permit = handlers.acquire().await?; // one of three
    /// println!("permit {}", permit.fencing_token());
    /// permit.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, name: impl IntoLockName, permits: u32) -> Result<Semaphore> {
        let name = name.into_lock_name()?;
        if permits == 0 {
            return Err(LockError::invalid_options(
                "a semaphore needs at least one permit",
            ));
        }
        if !self.backend().capabilities().semaphore {
            return Err(LockError::Unsupported {
                backend: self.backend().backend_name(),
                operation: "semaphore permits",
            });
        }
        Ok(Semaphore {
            client: self.clone(),
            name,
            permits,
        })
    }

    /// Acquires `name` in any [`Mode`] with `options`; `Ok(None)` if not
    /// acquired within `options.wait`. The general form behind `try_lock*`,
    /// `try_read_lock` and [`Semaphore::try_acquire_with`], for callers that
    /// pick the mode at run time (a command-line flag, say).
    ///
    /// # Errors
    ///
    /// `Unsupported` for a mode the backend does not serve; `PermitMismatch`
    /// for a permit count other than the holders'.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_lock_as(
        &self,
        name: impl IntoLockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<Option<LockGuard>> {
        self.acquire_guard(name.into_lock_name()?, mode, options)
            .await
    }

    /// Acquires in `mode`, turning "not acquired" into the wait's error.
    async fn must(
        &self,
        name: LockName,
        mode: Mode,
        options: &AcquireOptions,
    ) -> Result<LockGuard> {
        match self.acquire_guard(name.clone(), mode, options).await? {
            Some(guard) => Ok(guard),
            None => Err(not_acquired(&name, options.wait)),
        }
    }
}

/// A counting semaphore over one name: at most [`permits`](Self::permits)
/// guards at once, across every client of the backend. Each permit is a
/// [`LockGuard`] with everything a lock guard has: ttl and background
/// extension, `lost()`, release on drop, export and adopt, and a fencing
/// token strictly increasing over every grant of the name.
///
/// A permit's holder that crashes gives its permit back when its ttl (or
/// session) ends. Cheap to clone.
#[derive(Clone)]
pub struct Semaphore {
    client: LockClient,
    name: LockName,
    permits: u32,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name.as_str())
            .field("permits", &self.permits)
            .finish()
    }
}

impl Semaphore {
    /// The semaphore's name.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// How many holders it admits.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// The mode its permits are held in.
    pub fn mode(&self) -> Mode {
        Mode::Permit {
            limit: self.permits,
        }
    }

    /// Takes a permit, waiting up to the client's default wait.
    ///
    /// # Errors
    ///
    /// `Timeout` when every permit stayed taken for the whole wait (`Held`
    /// with a zero wait); `PermitMismatch` when the holders declared another
    /// count.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn acquire(&self) -> Result<LockGuard> {
        let opts = *self.client.defaults();
        self.acquire_with(&opts).await
    }

    /// [`acquire`](Self::acquire) with `options`.
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire), with `options.wait`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn acquire_with(&self, options: &AcquireOptions) -> Result<LockGuard> {
        self.client
            .must(self.name.clone(), self.mode(), options)
            .await
    }

    /// Takes a permit if one is free now; `Ok(None)` otherwise.
    ///
    /// # Errors
    ///
    /// `PermitMismatch` when the holders declared another count.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let opts = self.client.defaults().with_wait(Wait::NoWait);
        self.try_acquire_with(&opts).await
    }

    /// Takes a permit within `options.wait`; `Ok(None)` otherwise.
    ///
    /// # Errors
    ///
    /// `PermitMismatch` when the holders declared another count.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held and nothing queued.
    pub async fn try_acquire_with(&self, options: &AcquireOptions) -> Result<Option<LockGuard>> {
        self.client
            .acquire_guard(self.name.clone(), self.mode(), options)
            .await
    }
}
