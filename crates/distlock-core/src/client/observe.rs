//! Leader observers: who leads an election, and each change of leader, for
//! any client — candidates or not.
//!
//! An observer reads the name's [`status`](crate::DistributedLock::status)
//! (the holder's label and fencing token) whenever something may have
//! changed: on each notice of the backend's
//! [`changes`](crate::DistributedLock::changes) where it can notify, when
//! the current leader's hold would expire (expiry is never notified), and
//! every [`OBSERVE_POLL`] (or the interval given) on backends that cannot
//! notify. It reports a reading only when it differs from the last one
//! reported, and never a term lower than one it already reported: a stale
//! read (a slow replica, a minority of Redlock instances) cannot make the
//! term go back or report a change out of order.

use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{Stream, StreamExt};

use crate::backend::{ChangeNotices, LockStatus};
use crate::error::{LockError, Result};
use crate::layer::telemetry;
use crate::lease::FencingToken;
use crate::name::LockName;

use super::{IntoLockName, LockClient};

/// How often an observer reads the leader on a backend that cannot notify
/// changes ([`Capabilities::watch`](crate::Capabilities) false), and how
/// soon it reads again after a failed read.
pub const OBSERVE_POLL: Duration = Duration::from_millis(500);

/// Read again this long after the leader's hold should have expired.
const EXPIRY_MARGIN: Duration = Duration::from_millis(2);

/// Who leads an election, as an observer reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The identity the leader campaigned with; `None` when the name is
    /// held without one (a plain lock of the same name).
    pub identity: Option<String>,
    /// Its term: the fencing token of its hold.
    pub term: FencingToken,
}

impl LockClient {
    /// Follows the leader of the election `name`: see [`LeaderObserver`].
    /// Reads at each change notice where the backend notifies, every
    /// [`OBSERVE_POLL`] where it cannot.
    ///
    /// ```
    /// # async fn demo(client: distlock_core::LockClient) -> distlock_core::Result<()> {
    /// let mut leaders = client.observe("scheduler")?;
    /// loop {
    ///     match leaders.changed().await? {
    ///         Some(leader) => println!("{:?} leads, term {}", leader.identity, leader.term),
    ///         None => println!("no leader"),
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidName` for a bad name; `Unsupported` on a backend without
    /// fencing tokens (terms could not be ordered).
    pub fn observe(&self, name: impl IntoLockName) -> Result<LeaderObserver> {
        self.observe_with(name, OBSERVE_POLL)
    }

    /// [`observe`](Self::observe), polling every `poll` on backends that
    /// cannot notify (and retrying that soon after a failed read).
    ///
    /// # Errors
    ///
    /// As for [`observe`](Self::observe); `InvalidOptions` for a zero `poll`.
    pub fn observe_with(&self, name: impl IntoLockName, poll: Duration) -> Result<LeaderObserver> {
        let name = name.into_lock_name()?;
        if poll.is_zero() {
            return Err(LockError::invalid_options(
                "an observer's poll interval must be positive",
            ));
        }
        if !self.backend().capabilities().fencing {
            return Err(LockError::Unsupported {
                backend: self.backend().backend_name(),
                operation: "observing leaders (terms need fencing tokens)",
            });
        }
        Ok(LeaderObserver {
            client: self.clone(),
            name,
            poll,
            notices: None,
            can_watch: true,
            watch_again_at: None,
            reported: None,
            highest: None,
            must_wait: false,
            wake_at: None,
        })
    }
}

/// Reports the leader of one election and every change of it, in order.
///
/// The first [`changed`](Self::changed) reports the current leader (or
/// `None`); each later one resolves at the next change: a new leader, or
/// the name falling vacant (`None`). Terms reported never go down. A
/// leader that leads only between two readings may be missed (and so may
/// a vacancy between two leaders): an observer reports what it reads, in
/// order, not every grant.
pub struct LeaderObserver {
    client: LockClient,
    name: LockName,
    poll: Duration,
    /// The backend's change notices, while it delivers them.
    notices: Option<ChangeNotices>,
    /// False once the backend said it cannot notify: poll.
    can_watch: bool,
    /// After a failed or ended watch: when to ask for notices again.
    watch_again_at: Option<Instant>,
    /// The last reading reported (outer `None`: nothing reported yet).
    reported: Option<Option<Leader>>,
    /// The highest term reported.
    highest: Option<FencingToken>,
    /// Wait for a reason to read before the next reading.
    must_wait: bool,
    /// When the current leader's hold expires (plus a margin), if held.
    wake_at: Option<Instant>,
}

impl fmt::Debug for LeaderObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderObserver")
            .field("name", &self.name)
            .field("poll", &self.poll)
            .field("watching", &self.notices.is_some())
            .field("reported", &self.reported)
            .finish()
    }
}

impl LeaderObserver {
    /// The election's name.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// The last reading reported: `None` before the first, `Some(None)`
    /// when the name was vacant.
    pub fn last(&self) -> Option<&Option<Leader>> {
        self.reported.as_ref()
    }

    /// The next change of leader: at the first call the current one.
    ///
    /// # Errors
    ///
    /// A failed read of the backend; the next call retries after the poll
    /// interval, so a caller may keep calling.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call reports nothing and loses nothing; the
    /// next call reads again.
    pub async fn changed(&mut self) -> Result<Option<Leader>> {
        loop {
            if std::mem::take(&mut self.must_wait) {
                self.wait().await;
            }
            self.watch_if_possible().await;
            let read = self.client.backend().status(&self.name).await;
            self.must_wait = true;
            let status = match read {
                Ok(status) => status,
                Err(e) => {
                    self.wake_at = Some(Instant::now() + self.poll);
                    let backend = self.client.backend().backend_name();
                    telemetry::observe_failed(backend, &self.name, &e);
                    return Err(e);
                }
            };
            self.wake_at = expiry_of(&status);
            let Some(reading) = reading(status) else {
                continue; // held, but no term to order it by: read again later
            };
            if let Some(change) = self.change(reading) {
                return Ok(change);
            }
        }
    }

    /// The observer as a stream of changes (it never ends; errors are
    /// items, each followed by a retry).
    pub fn into_stream(self) -> impl Stream<Item = Result<Option<Leader>>> + Send + 'static {
        futures::stream::unfold(self, |mut observer| async move {
            let item = observer.changed().await;
            Some((item, observer))
        })
    }

    /// `reading` if it is to be reported: it differs from the last report,
    /// and a leader's term is above every term reported.
    fn change(&mut self, reading: Option<Leader>) -> Option<Option<Leader>> {
        match (&self.reported, &reading) {
            (Some(last), _) if *last == reading => return None,
            (Some(_), Some(leader)) if self.highest.is_some_and(|h| leader.term <= h) => {
                return None
            }
            _ => {}
        }
        if let Some(leader) = &reading {
            self.highest = Some(leader.term);
        }
        self.reported = Some(reading.clone());
        let backend = self.client.backend().backend_name();
        let leader = reading.as_ref().map(|l| (l.identity.as_deref(), l.term));
        telemetry::leader_changed(backend, &self.name, leader);
        Some(reading)
    }

    /// Asks the backend for change notices, unless it cannot give them or
    /// the last attempt failed a moment ago. Done before each reading, so
    /// a change right after the reading is noticed.
    async fn watch_if_possible(&mut self) {
        let now = Instant::now();
        if self.notices.is_some() || !self.can_watch || self.watch_again_at.is_some_and(|t| now < t)
        {
            return;
        }
        match self.client.backend().changes(&self.name).await {
            Ok(Some(notices)) => self.notices = Some(notices),
            Ok(None) => self.can_watch = false,
            Err(e) => {
                let backend = self.client.backend().backend_name();
                telemetry::observe_failed(backend, &self.name, &e);
                self.watch_again_at = Some(now + self.poll);
            }
        }
    }

    /// Waits for a reason to read again: a change notice, the leader's
    /// expiry, or (without notices) the poll interval.
    async fn wait(&mut self) {
        let polling = self.notices.is_none();
        let poll_at = polling.then(|| Instant::now() + self.poll);
        let until = match (self.wake_at, poll_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match until {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let Some(notices) = self.notices.as_mut() else {
            return sleep.await;
        };
        tokio::select! {
            notice = notices.next() => {
                if notice.is_none() {
                    // The watch ended (a lost connection): read now, watch
                    // again a poll interval later.
                    self.notices = None;
                    self.watch_again_at = Some(Instant::now() + self.poll);
                }
            }
            _ = sleep => {}
        }
    }
}

/// What a status says about the leader: `Some(None)` when vacant; `None`
/// when held without a fencing token (nothing to order it by).
fn reading(status: LockStatus) -> Option<Option<Leader>> {
    if !status.held {
        return Some(None);
    }
    let term = status.fencing_token?;
    Some(Some(Leader {
        identity: status.holder,
        term,
    }))
}

/// When to read again because the leader's hold would have expired.
fn expiry_of(status: &LockStatus) -> Option<Instant> {
    let left = status.expires_in.filter(|_| status.held)?;
    Instant::now().checked_add(left + EXPIRY_MARGIN)
}
