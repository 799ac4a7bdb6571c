//! What every database does with the locks table, as one trait.
//!
//! Each database module (`sqlite`, `postgres`, `mysql`) implements
//! [`Dialect`]: it loads its statements (the `.sql` files under
//! `src/sql/<database>/`), splices in the validated table name, and runs
//! them with bound parameters. The rest of the crate sees only this trait;
//! nothing here knows which databases exist.
//!
//! An acquire statement runs on an [`AttemptConnection`]: one connection
//! taken from the pool for the attempt. Its statements run in order, so
//! the release that undoes a dropped attempt, issued on the same
//! connection, runs after the acquire statement it undoes — never before
//! it, as it could on another connection of the pool.

use std::time::Duration;

use async_trait::async_trait;

use crate::notify::Subscription;

/// The locks table in one database, statement by statement. Each method is
/// one round trip unless its doc says otherwise; errors are the driver's.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Whether several processes can share this table.
    fn cross_process(&self) -> bool;

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
    /// by key) with one statement; answers, in order, which were extended.
    async fn extend_batch(&self, batch: &[Extension]) -> Result<Vec<bool>, sqlx::Error>;

    /// Releases `key` when `owner` holds it unexpired; false otherwise.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;

    /// A subscription to release notifications, in effect when this
    /// returns; `None` when the database has none (waiters then poll).
    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        Ok(None)
    }

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
    /// One acquire statement for `key` under `owner` for `ttl`.
    async fn take(&mut self, key: &str, owner: &str, ttl: Duration) -> Result<Take, sqlx::Error>;

    /// Reads the row for `key`.
    async fn holder(&mut self, key: &str) -> Result<Option<Holder>, sqlx::Error>;

    /// Releases `key` when `owner` holds it unexpired; false otherwise.
    async fn release(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error>;
}

/// What one acquire statement found.
#[derive(Debug)]
pub(crate) enum Take {
    /// The lock was taken with this fencing token.
    Acquired(u64),
    /// Someone holds it; their remaining ttl on the database clock, if the
    /// statement could tell.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Held(Option<Duration>),
    /// Someone holds it; ask [`Dialect::holder`] for their remaining ttl.
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
    /// Time left on the database clock; `None` when released, zero when
    /// expired.
    pub remaining: Option<Duration>,
}

impl Holder {
    /// Whether the row is held right now.
    pub fn is_held(&self) -> bool {
        self.owner.is_some() && self.remaining.is_some_and(|r| !r.is_zero())
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
pub(crate) fn extended_of(batch: &[Extension], reported: &[(String, String)]) -> Vec<bool> {
    batch
        .iter()
        .map(|e| reported.iter().any(|(k, o)| *k == e.key && *o == e.owner))
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

/// The statements every database has, for one table.
#[derive(Debug)]
pub(crate) struct Statements {
    pub create: String,
    pub acquire: String,
    pub holder: String,
    pub extend: String,
    /// For SQLite and MySQL, with a `{rows}` placeholder (see
    /// [`repeat_rows`]).
    pub extend_batch: String,
    pub release: String,
}

impl Statements {
    /// Loads the statement files (in field order), `{table}` replaced.
    pub fn load(texts: [&str; 6], table: &str) -> Self {
        let [create, acquire, holder, extend, extend_batch, release] =
            texts.map(|t| t.replace("{table}", table));
        Statements {
            create,
            acquire,
            holder,
            extend,
            extend_batch,
            release,
        }
    }
}

/// `template` with `{rows}` replaced by `first`, then `rest` once for each
/// of the other `n - 1` rows (`n >= 1`): how a statement over a list of
/// bound rows is written where the database has no array parameters.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) fn repeat_rows(template: &str, first: &str, rest: &str, n: usize) -> String {
    let mut rows = String::from(first);
    for _ in 1..n {
        rows.push_str(rest);
    }
    template.replace("{rows}", &rows)
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
    fn rows_are_repeated_into_the_template() {
        let sql = repeat_rows("X ({rows}) Y", "(?)", ", (?)", 3);
        assert_eq!(sql, "X ((?), (?), (?)) Y");
        assert_eq!(repeat_rows("{rows}", "a", "b", 1), "a");
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
