//! MySQL's and MariaDB's session locks: `GET_LOCK` on a name derived from
//! the lock's (see [`keys`](super::keys)), tokens from `UUID_SHORT()`, the
//! session ended by the server once idle for the session timeout
//! (`wait_timeout`, whole seconds).
//!
//! `GET_LOCK` has no shared mode. A reader or permit takes the name's
//! `GET_LOCK` only around the grant of its row in the holders table; the
//! writer takes it and, in the same statement, looks for live readers' and
//! permits' rows — and for a hold kept after its release (lock-at-least-for,
//! a row of kind `a`), in the same probe. While it finds some it keeps the
//! lock (so no new reader comes in) and asks again until they are gone.
//!
//! A leader's label lives in a row of the holders table beside its
//! `GET_LOCK` (kind `l`); MySQL cannot notify, so observers poll.
//!
//! `UUID_SHORT()` is `(server_id & 255) << 56`, plus the server's start
//! time in seconds `<< 24`, plus one per call: it rises across the
//! server's restarts as long as `server_id` stays the same, the server's
//! clock does not step back across a restart, and fewer than 2²⁴ tokens a
//! second of uptime were drawn on average.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool};
use sqlx::{ConnectOptions, Row};

use super::db::{broken, micros, sqlstate, Answer, Gate, Opened, Outcome, Patience, SessionConn};
use super::db::{Label, Seen, SeenHolder, SessionDb};
use super::keys::Key;
use crate::dialect::ttl_micros;

/// Gives the lock back. Returns 1 when this session held it, 0 when
/// another does, NULL when nobody does.
const RELEASE: &str = "SELECT RELEASE_LOCK(?)";
/// The session's connection id. Returns one unsigned integer.
const PING: &str = "SELECT CONNECTION_ID()";
/// A fresh fencing token. Returns one unsigned integer.
const TOKEN: &str = "SELECT UUID_SHORT()";
/// Sets the session timeout, in whole seconds. Returns nothing.
const SET_TIMEOUT: &str = "SET SESSION wait_timeout = ?";

/// The longest wait `GET_LOCK` is given for "until granted": a year.
const FOREVER_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// MySQL error numbers after which the session is gone: the connection was
/// killed, the server is shutting down or aborted it, or closed it for
/// idling past `wait_timeout` (MySQL 8).
const FATAL_ERRORS: [u16; 5] = [1927, 1053, 1152, 1184, 4031];

/// The statements of one table, with its name spliced in.
struct Statements {
    take: String,
    gate: String,
    readers: String,
}

/// The statements on the holders table's rows beside the session locks,
/// and the status read.
struct RowStatements {
    seen: String,
    label: String,
    relabel: String,
    unlabel: String,
    keep_label: String,
    keep: String,
}

/// MySQL or MariaDB, for the session engine.
pub(crate) struct MySqlSessions {
    options: MySqlConnectOptions,
    pool: MySqlPool,
    statements: std::sync::Arc<Statements>,
    rows: RowStatements,
    /// `wait_timeout`, in whole seconds (rounded up).
    idle_secs: u64,
}

impl MySqlSessions {
    /// Sessions opened with `options`, on `table`; the status read runs on
    /// `pool`. The server ends a session idle for `timeout` (rounded up to
    /// whole seconds).
    pub fn new(
        options: MySqlConnectOptions,
        pool: MySqlPool,
        table: &str,
        timeout: Duration,
    ) -> Self {
        let load = |text: &str| text.replace("{table}", table);
        MySqlSessions {
            options,
            pool,
            statements: std::sync::Arc::new(Statements {
                take: load(include_str!("../sql/mysql/session_take.sql")),
                gate: load(include_str!("../sql/mysql/session_gate.sql")),
                readers: load(include_str!("../sql/mysql/session_readers.sql")),
            }),
            rows: RowStatements {
                seen: load(include_str!("../sql/mysql/session_seen.sql")),
                label: load(include_str!("../sql/mysql/session_label.sql")),
                relabel: load(include_str!("../sql/mysql/session_relabel.sql")),
                unlabel: load(include_str!("../sql/mysql/session_unlabel.sql")),
                keep_label: load(include_str!("../sql/mysql/session_keep_label.sql")),
                keep: load(include_str!("../sql/mysql/session_keep.sql")),
            },
            idle_secs: timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0),
        }
    }
}

#[async_trait]
impl SessionDb for MySqlSessions {
    fn keeps_shared_gate(&self) -> bool {
        false
    }

    fn notifies(&self) -> bool {
        false
    }

    fn keeps_by_statement(&self) -> bool {
        false
    }

    /// Round trips: the connection, `SET SESSION wait_timeout`, and two
    /// reads of the connection id (a multiplexing proxy would answer from
    /// different sessions).
    async fn open(&self) -> Result<Opened, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        sqlx::query(SET_TIMEOUT)
            .bind(self.idle_secs)
            .execute(&mut conn)
            .await?;
        let mut session = MySqlSession {
            conn,
            statements: self.statements.clone(),
        };
        let id = session.ping().await?;
        super::db::confirmed(session, id).await
    }

    /// Nothing: `UUID_SHORT()` needs no table.
    async fn prepare(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// A label row counts while a session holds the `GET_LOCK`; a kept
    /// hold by itself.
    async fn seen(&self, key: &Key) -> Result<Seen, sqlx::Error> {
        let row = sqlx::query(&self.rows.seen)
            .bind(key.row.as_bytes())
            .bind(key.named.as_str())
            .bind(key.row.as_bytes())
            .fetch_one(&self.pool)
            .await?;
        let locked: i64 = row.try_get("locked")?;
        let held: i64 = row.try_get("held")?;
        let kind: Option<Vec<u8>> = row.try_get("kind")?;
        let counts = match kind.as_deref() {
            Some(b"a") => true,
            Some(b"l") => locked != 0,
            _ => false,
        };
        let holder = match (counts, row.try_get::<Option<u64>, _>("term")?) {
            (true, Some(term)) => {
                let label: Option<Vec<u8>> = row.try_get("label")?;
                Some(SeenHolder {
                    term,
                    label: label.map(|l| String::from_utf8_lossy(&l).into_owned()),
                    remaining: micros(row.try_get("remaining_us")?),
                })
            }
            _ => None,
        };
        Ok(Seen {
            held: held != 0,
            waiters: None,
            holder,
        })
    }

    async fn label(&self, key: &Key, owner: &str, label: Label<'_>) -> Result<(), sqlx::Error> {
        let ttl = ttl_micros(label.ttl);
        sqlx::query(&self.rows.label)
            .bind(key.row.as_bytes())
            .bind(owner.as_bytes())
            .bind(label.term)
            .bind(ttl)
            .bind(label.label.as_bytes())
            .bind(label.term)
            .bind(ttl)
            .bind(label.label.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Never asked: MySQL keeps such a hold by a row.
    async fn holding(&self, _: i64) -> Result<bool, sqlx::Error> {
        Err(never_by_statement())
    }

    async fn relabel(&self, key: &Key, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.rows.relabel)
            .bind(ttl_micros(ttl))
            .bind(key.row.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unlabel(&self, key: &Key, owner: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&self.rows.unlabel)
            .bind(key.row.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The label row turned into the kept hold (one statement), or, for
    /// an unlabelled hold, a new row (one more).
    async fn keep_row(
        &self,
        key: &Key,
        owner: &str,
        term: u64,
        hold: Duration,
    ) -> Result<(), sqlx::Error> {
        let hold = ttl_micros(hold);
        let converted = sqlx::query(&self.rows.keep_label)
            .bind(hold)
            .bind(key.row.as_bytes())
            .bind(owner.as_bytes())
            .execute(&self.pool)
            .await?;
        if converted.rows_affected() == 1 {
            return Ok(());
        }
        sqlx::query(&self.rows.keep)
            .bind(key.row.as_bytes())
            .bind(owner.as_bytes())
            .bind(term)
            .bind(hold)
            .bind(hold)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A broken connection, SQLSTATE class 08, or an error number that
    /// ends the session ([`FATAL_ERRORS`]).
    fn is_fatal(&self, e: &sqlx::Error) -> bool {
        let number = e
            .as_database_error()
            .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
            .map(MySqlDatabaseError::number);
        broken(e)
            || number.is_some_and(|n| FATAL_ERRORS.contains(&n))
            || sqlstate(e).is_some_and(|c| c.starts_with("08"))
    }
}

/// One session connection.
struct MySqlSession {
    conn: MySqlConnection,
    statements: std::sync::Arc<Statements>,
}

#[async_trait]
impl SessionConn for MySqlSession {
    /// One statement: the writer's `GET_LOCK` with its look for readers'
    /// rows, or the readers' gate.
    async fn take(
        &mut self,
        key: &Key,
        gate: Gate,
        patience: Patience,
    ) -> Result<Answer, sqlx::Error> {
        let secs = match patience {
            Patience::Try => 0.0,
            Patience::Upto(wait) => wait.as_secs_f64().max(0.001),
            Patience::Forever => FOREVER_SECS,
        };
        let s = &self.statements;
        let query = match gate {
            Gate::Exclusive => sqlx::query(&s.take)
                .bind(key.named.as_str())
                .bind(secs)
                .bind(key.row.as_bytes()),
            Gate::Shared => sqlx::query(&s.gate).bind(key.named.as_str()).bind(secs),
        };
        let row = query.fetch_one(&mut self.conn).await?;
        let token: Option<u64> = row.try_get("token")?;
        let outcome = match token {
            None => Outcome::Refused,
            Some(0) => Outcome::Readers(None),
            Some(t) => Outcome::Taken(t),
        };
        Ok(Answer {
            outcome,
            busy: micros(row.try_get("busy_us")?),
        })
    }

    async fn readers_left(&mut self, key: &Key) -> Result<Outcome, sqlx::Error> {
        let row = sqlx::query(&self.statements.readers)
            .bind(key.row.as_bytes())
            .bind(key.row.as_bytes())
            .fetch_one(&mut self.conn)
            .await?;
        let token: u64 = row.try_get("token")?;
        Ok(match token {
            0 => Outcome::Readers(Some(micros(row.try_get("readers_us")?))),
            t => Outcome::Taken(t),
        })
    }

    async fn token(&mut self) -> Result<u64, sqlx::Error> {
        sqlx::query_scalar(TOKEN).fetch_one(&mut self.conn).await
    }

    async fn give_back(&mut self, key: &Key, _gate: Gate) -> Result<bool, sqlx::Error> {
        let released: Option<i64> = sqlx::query_scalar(RELEASE)
            .bind(key.named.as_str())
            .fetch_one(&mut self.conn)
            .await?;
        Ok(released == Some(1))
    }

    async fn ping(&mut self) -> Result<i64, sqlx::Error> {
        let id: u64 = sqlx::query_scalar(PING).fetch_one(&mut self.conn).await?;
        Ok(i64::try_from(id).unwrap_or(i64::MAX))
    }

    /// Never asked: MySQL keeps such a hold by a row.
    async fn ready_to_hold(&mut self) -> Result<(), sqlx::Error> {
        Err(never_by_statement())
    }

    /// Never asked: MySQL keeps such a hold by a row.
    async fn hold_then_give_back(
        &mut self,
        _: &Key,
        _: Gate,
        _: Duration,
        _: &str,
    ) -> Result<bool, sqlx::Error> {
        Err(never_by_statement())
    }
}

/// The error of a statement-kept hold asked of MySQL, which keeps such
/// holds by rows.
fn never_by_statement() -> sqlx::Error {
    sqlx::Error::Protocol("a kept hold is a row on MySQL, not a statement".into())
}
