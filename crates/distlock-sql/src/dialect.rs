//! What every database does with the locks table, as one trait.
//!
//! One implementation serves every database ([`tables`](crate::tables)):
//! the statements (the `.sql` files under `src/sql/<database>/`, the
//! validated table name spliced in) run with bound parameters, each
//! database adding what is its own ([`Flavor`](crate::flavor::Flavor)).
//! The rest of the crate sees only this trait; nothing here knows which
//! databases exist.
//!
//! An acquire statement runs on an [`AttemptConnection`]: one connection
//! taken from the pool for the attempt. Its statements run in order, so
//! the release that undoes a dropped attempt, issued on the same
//! connection, runs after the acquire statement it undoes — never before
//! it, as it could on another connection of the pool.
//!
//! Readers and semaphore permits live in the holders table beside the
//! locks table; a grant of either is one transaction
//! ([`AttemptConnection::transact`]) whose decision the algorithm makes on
//! what the transaction read.

use std::time::Duration;

use async_trait::async_trait;
use distlock_core::ChangeNotices;

use crate::holds::Decide;
use crate::notify::Subscription;

/// The locks table in one database, statement by statement. Each method is
/// one round trip unless its doc says otherwise; errors are the driver's.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Whether several processes can share this table.
    fn cross_process(&self) -> bool;

    /// How many calls may use the pool at once: its size, or fewer where
    /// the database runs one writer at a time (SQLite: 1, so that this
    /// backend's own statements queue in order rather than in the
    /// database's busy handler).
    fn slots(&self) -> usize;

    /// Creates the table unless it exists.
    async fn create_table(&self) -> Result<(), sqlx::Error>;

    /// A connection of the pool for one acquire attempt (no round trip
    /// when the pool has an idle one).
    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error>;

    /// Reads the row for `key`.
    async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error>;

    /// Extends `key` to `ttl` from the database's now when `owner` holds it
    /// unexpired; false otherwise.
    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error>;

    /// Extends every entry of `batch` (distinct `(key, owner)` pairs, sorted
    /// by key) of `group` with one statement; answers, in order, which were
    /// extended.
    async fn extend_batch(
        &self,
        group: Group,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error>;

    /// Releases `key` when `owner` holds it unexpired; false otherwise.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;

    /// Releases the reader or permit holder `owner` of `key` when it holds
    /// it unexpired; false otherwise.
    async fn release_holder(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;

    /// Removes `owner`'s waiting-writer intent on `key`, and its queue
    /// place where waiters queue, if any.
    async fn forget_intent(&self, key: &str, owner: &str) -> Result<(), sqlx::Error>;

    /// A subscription to release notifications, in effect when this
    /// returns; `None` when the database has none (waiters then poll).
    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        Ok(None)
    }

    /// Change notices of `key`, in effect when this returns; `None` when
    /// the database has none (observers then poll).
    async fn watch(&self, key: &str) -> Result<Option<ChangeNotices>, sqlx::Error> {
        let _ = key;
        Ok(None)
    }

    /// Keeps `key`'s exclusive hold by `owner` until `ttl` from now, if it
    /// holds it unexpired, and wakes the waiters that sleep until a
    /// notification (lock-at-least-for: released before its minimum);
    /// false otherwise.
    async fn keep(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error>;

    /// The SQLite pool, on SQLite.
    #[cfg(feature = "sqlite")]
    fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        None
    }

    /// The PostgreSQL pool, on PostgreSQL.
    #[cfg(feature = "postgres")]
    fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        None
    }

    /// The MySQL/MariaDB pool, on MySQL/MariaDB.
    #[cfg(feature = "mysql")]
    fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        None
    }
}

/// One connection of the pool, held for an acquire attempt; each method
/// is one statement on it.
#[async_trait]
pub(crate) trait AttemptConnection: Send + 'static {
    /// One acquire statement for `key` under `owner` for `ttl`, storing
    /// `label` with the hold (and, where the database notifies, notifying
    /// a labelled grant).
    async fn take(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        label: Option<&str>,
    ) -> Result<Take, sqlx::Error>;

    /// Reads the row for `key` and, where waiters queue, where `owner`
    /// stands in the queue.
    async fn waiting(&mut self, key: &str, owner: &str) -> Result<Option<Waiting>, sqlx::Error>;

    /// Takes (or keeps) `owner`'s place in the queue of exclusive waiters
    /// of `key`, living `life` on the database clock. A new place's ticket
    /// is `arrived` (when the acquire began, in microseconds since the
    /// epoch) where the database's clock is this machine's (SQLite), the
    /// database's clock elsewhere; a kept place keeps its ticket. A no-op
    /// where waiters do not queue.
    async fn enqueue(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
        arrived: i64,
    ) -> Result<(), sqlx::Error>;

    /// Releases `key` when `owner` holds it unexpired; false otherwise.
    async fn release(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;

    /// One grant transaction on `key`: lock the name's row (creating it
    /// when missing), delete its expired holders and intents, read the rest
    /// into a [`NameState`](crate::holds::NameState), carry out what
    /// `decide` answers for it (a [`Grant`](crate::holds::Decision::Grant)
    /// or [`Upgrade`](crate::holds::Decision::Upgrade) for
    /// `owner` with `ttl`, or an intent), commit. Returns the fencing token
    /// of a grant or upgrade, `None` otherwise. Several statements.
    async fn transact(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        decide: &mut Decide<'_>,
    ) -> Result<Option<u64>, sqlx::Error>;

    /// Records (or refreshes) `owner`'s waiting-writer intent on `key`,
    /// living `life` on the database clock.
    async fn record_intent(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
    ) -> Result<(), sqlx::Error>;

    /// Releases the reader or permit holder `owner` of `key` when it holds
    /// it unexpired; false otherwise.
    async fn release_holder(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;

    /// Rolls back whatever transaction an attempt dropped half-way left
    /// open on this connection (a no-op when none is), and keeps the
    /// connection out of the pool from now on: sqlx's own bookkeeping of
    /// the transaction may be off after a dropped `BEGIN` or `COMMIT`.
    async fn abandon_transaction(&mut self) -> Result<(), sqlx::Error>;

    /// Undoes an upgrade: when `owner` holds `key` exclusively with fencing
    /// token `fence` (the one that upgrade took; `None` when the attempt
    /// never got as far as deciding to upgrade), it becomes a reader again
    /// with the same expiry; `owner`'s intent goes either way. True when
    /// there was an upgrade to undo. One transaction, on a connection
    /// [`abandon_transaction`](AttemptConnection::abandon_transaction)
    /// retired.
    async fn downgrade(
        &mut self,
        key: &str,
        owner: &str,
        fence: Option<u64>,
    ) -> Result<bool, sqlx::Error>;
}

/// What one acquire statement found.
#[derive(Debug)]
pub(crate) enum Take {
    /// The lock was taken with this fencing token.
    Acquired(u64),
    /// Someone holds it: the time until it frees on the database clock
    /// (the exclusive holder's and the readers' and permit holders'), if
    /// the statement could tell, and whether readers or permit holders are
    /// among the holders.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Held {
        /// Time until every holder's time runs out.
        remaining: Option<Duration>,
        /// Readers or permit holders hold it.
        shared: bool,
    },
    /// Someone holds it (or waiters are queued for it); ask
    /// [`AttemptConnection::waiting`] for the holders' remaining time.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    HeldAskRemaining,
}

/// A row of the locks table as seen now.
#[derive(Debug)]
pub(crate) struct Holder {
    /// The owner token, `None` when released.
    pub owner: Option<String>,
    /// The last fencing token issued.
    pub fence: u64,
    /// The exclusive holder's label (meaningful only while it holds).
    pub label: Option<String>,
    /// Time left on the database clock; `None` when released, zero when
    /// expired.
    pub remaining: Option<Duration>,
    /// Time left of the longest-lived reader or permit holder; `None` when
    /// none lives.
    pub shared: Option<Duration>,
}

impl Holder {
    /// Whether the name is held exclusively right now.
    pub fn is_held(&self) -> bool {
        self.owner.is_some() && self.remaining.is_some_and(|r| !r.is_zero())
    }

    /// Whether readers or permit holders hold the name right now.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some_and(|r| !r.is_zero())
    }

    /// The time until every holder's time runs out (zero when none holds).
    pub fn until_free(&self) -> Duration {
        let exclusive = if self.is_held() {
            self.remaining.unwrap_or_default()
        } else {
            Duration::ZERO
        };
        exclusive.max(self.shared.unwrap_or_default())
    }
}

/// What an exclusive attempt that found the lock taken reads before it
/// waits.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The name's row.
    pub holder: Holder,
    /// Where the owner stands in the name's queue, where waiters queue.
    pub queue: Option<Queue>,
}

/// Where one waiter stands in a name's queue of exclusive waiters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Queue {
    /// Live places ahead of it (every live place when it has none).
    pub ahead: u64,
    /// Its own place's time left, `None` when it has no live place.
    pub mine: Option<Duration>,
}

/// Which holds a batched extension is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Exclusive holds, in the locks table.
    Exclusive,
    /// Readers and permit holders, in the holders table.
    Holders,
}

impl Group {
    /// The group of a lease in `mode`.
    pub fn of(mode: distlock_core::Mode) -> Self {
        if mode == distlock_core::Mode::Exclusive {
            Group::Exclusive
        } else {
            Group::Holders
        }
    }
}

/// One lease of a batched extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Extension {
    /// The lock's key.
    pub key: String,
    /// The lease's owner token.
    pub owner: String,
    /// The new ttl, from the database's now.
    pub ttl: Duration,
}

/// Which of `batch` are among the `(key, owner)` pairs a statement
/// reported as extended.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn extended_of(batch: &[Extension], reported: &[(String, String)]) -> Vec<bool> {
    let reported: std::collections::HashSet<(&str, &str)> = reported
        .iter()
        .map(|(k, o)| (k.as_str(), o.as_str()))
        .collect();
    batch
        .iter()
        .map(|e| reported.contains(&(e.key.as_str(), e.owner.as_str())))
        .collect()
}

/// Converts a signed remaining time (negative once expired) to a duration.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn remaining_from_micros(us: Option<i64>) -> Option<Duration> {
    us.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0)))
}

/// A ttl in whole microseconds, rounded up so the database never keeps the
/// lock for less than the lease reports.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn ttl_micros(ttl: Duration) -> i64 {
    let us = ttl.as_nanos().div_ceil(1000);
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// A fencing token read from a signed column (never negative in practice).
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn fence(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Whether `outcome` of a `ROLLBACK` means the connection holds no open
/// transaction: it rolled one back, or the database said there was none.
pub(crate) fn rolled_back<T>(outcome: Result<T, sqlx::Error>) -> Result<(), sqlx::Error> {
    match outcome {
        Ok(_) | Err(sqlx::Error::Database(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The statements of a file holding several, each ended by `;` at the end
/// of a line (the DDL files): sqlx runs one statement per prepared query.
pub(crate) fn statements(text: &str) -> impl Iterator<Item = &str> {
    text.split(";\n").filter(|s| !s.trim().is_empty())
}

/// Why a dialect could not be opened.
pub(crate) enum ConnectError {
    /// The URL did not parse as the driver's options.
    BadUrl(sqlx::Error),
    /// The database answered with an error or not at all.
    Db(sqlx::Error),
    /// The database's Cargo feature is off.
    #[allow(dead_code)]
    NotCompiledIn(crate::config::Database),
}

impl From<sqlx::Error> for ConnectError {
    fn from(e: sqlx::Error) -> Self {
        ConnectError::Db(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_files_are_split_at_line_ends() {
        let text = "-- a; comment\nCREATE x (a);\nCREATE y;\n";
        let got: Vec<&str> = statements(text).collect();
        assert_eq!(got, ["-- a; comment\nCREATE x (a)", "CREATE y"]);
    }

    #[test]
    fn extended_entries_are_matched_by_key_and_owner() {
        let e = |k: &str, o: &str| Extension {
            key: k.into(),
            owner: o.into(),
            ttl: Duration::from_secs(1),
        };
        let batch = [e("a", "1"), e("b", "2"), e("c", "3")];
        let reported = [("c".to_string(), "3".to_string()), ("b".into(), "9".into())];
        assert_eq!(extended_of(&batch, &reported), [false, false, true]);
    }
}
