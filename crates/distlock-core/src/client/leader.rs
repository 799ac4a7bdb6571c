//! Leader election: a campaign is an exclusive hold of the election's name
//! that carries the candidate's identity; the leader is whoever holds it,
//! and its term is the hold's fencing token.
//!
//! Because the term *is* the fencing token, a leader passes
//! [`Leadership::term`] to whatever it writes, and a store that refuses
//! lower tokens refuses a deposed leader that has not noticed yet. Anyone
//! can follow who leads with [`LockClient::observe`].

use std::fmt;
use std::future::Future;

use crate::error::Result;
use crate::layer::{check_label, telemetry};
use crate::lease::FencingToken;
use crate::name::LockName;
use crate::options::{AcquireOptions, Wait};

use super::{not_acquired, GuardHandle, IntoLockName, LockClient, LockGuard, LostReason};

impl LockClient {
    /// Campaigns for the leadership of `name` as `identity`, and resolves
    /// once this client leads: waits as long as it takes (the client's
    /// default ttl, [`Wait::Forever`]). The leadership keeps itself alive
    /// like any guard; its term is its fencing token.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// let leadership = client.elect("scheduler", "node-7").await?;
    /// println!("leading, term {}", leadership.term());
    /// // … run the scheduled jobs, passing leadership.term() to the store …
    /// leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for an identity that is empty, longer than
    /// [`MAX_LABEL_LEN`](crate::MAX_LABEL_LEN) bytes or contains NUL;
    /// `Unsupported` on backends that store no holder labels
    /// ([`Capabilities::labels`](crate::Capabilities)); backend errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future ends the campaign: nothing held, nothing queued.
    pub async fn elect(
        &self,
        name: impl IntoLockName,
        identity: impl Into<String>,
    ) -> Result<Leadership> {
        let options = self.defaults().with_wait(Wait::Forever);
        self.elect_with(name, identity, &options).await
    }

    /// [`elect`](Self::elect) with `options` (ttl, wait, at_least).
    ///
    /// # Errors
    ///
    /// As for [`elect`](Self::elect); `Timeout` when another leader stayed
    /// for the whole wait (`Held` with a zero wait).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future ends the campaign: nothing held, nothing queued.
    pub async fn elect_with(
        &self,
        name: impl IntoLockName,
        identity: impl Into<String>,
        options: &AcquireOptions,
    ) -> Result<Leadership> {
        let name = name.into_lock_name()?;
        match self.try_elect_with(&name, identity, options).await? {
            Some(leadership) => Ok(leadership),
            None => Err(not_acquired(&name, options.wait)),
        }
    }

    /// Takes the leadership of `name` as `identity` if nobody leads now
    /// (the client's default ttl); `Ok(None)` when someone does — for a
    /// job that one node of many should run each time it is due.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves nothing held.
    pub async fn try_elect(
        &self,
        name: impl IntoLockName,
        identity: impl Into<String>,
    ) -> Result<Option<Leadership>> {
        let options = self.defaults().with_wait(Wait::NoWait);
        self.try_elect_with(name, identity, &options).await
    }

    /// Campaigns for `name` as `identity` within `options.wait`; `Ok(None)`
    /// when another leader stayed for the whole wait.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future ends the campaign: nothing held, nothing queued.
    pub async fn try_elect_with(
        &self,
        name: impl IntoLockName,
        identity: impl Into<String>,
        options: &AcquireOptions,
    ) -> Result<Option<Leadership>> {
        let name = name.into_lock_name()?;
        let identity = identity.into();
        check_label(&identity)?;
        let Some(lease) = self.backend().elect(&name, &identity, options).await? else {
            return Ok(None);
        };
        let guard = self.guard_for(lease).await?;
        Ok(Some(Leadership { guard, identity }))
    }
}

/// This client leads an election: an exclusive hold of its name, carrying
/// its identity, kept alive in the background until resigned, dropped or
/// lost.
///
/// The [`term`](Self::term) is the hold's fencing token: it rises with
/// every new leader, so a store that refuses lower tokens refuses a former
/// leader. Dropping a leadership resigns in the background, like a guard.
#[must_use = "dropping a Leadership resigns at once; bind it for as long as this client should lead"]
pub struct Leadership {
    guard: LockGuard,
    identity: String,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("identity", &self.identity)
            .field("guard", &self.guard)
            .finish()
    }
}

impl Leadership {
    /// The identity this client leads under.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The term: the hold's fencing token, greater than every earlier
    /// leader's.
    pub fn term(&self) -> FencingToken {
        self.guard.fencing_token()
    }

    /// The election's name.
    pub fn name(&self) -> LockName {
        self.guard.name()
    }

    /// True once the leadership can no longer be trusted.
    pub fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// Resolves when the leadership ends without a resignation: an
    /// extension refused, validity passed, or the session lost. Stop acting
    /// as the leader then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        self.guard.lost()
    }

    /// A cloneable view (term, loss signal) to hand to the work done as
    /// leader.
    pub fn handle(&self) -> GuardHandle {
        self.guard.handle()
    }

    /// The guard behind the leadership.
    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// Gives the leadership up now; the next candidate in line takes over
    /// (after the `at_least` time of the campaign's options, if one was set
    /// and has not passed).
    ///
    /// # Errors
    ///
    /// `NotHeld` when the leadership had already been lost.
    ///
    /// # Cancel safety
    ///
    /// As for [`LockGuard::release`]: if dropped before the backend
    /// answered, the name may stay held until its ttl or session ends.
    pub async fn resign(self) -> Result<()> {
        let (name, term) = (self.guard.name(), self.term());
        let backend = self.guard.client.backend.backend_name();
        let result = self.guard.release().await;
        telemetry::resigned(backend, &name, term, &result);
        result
    }
}
