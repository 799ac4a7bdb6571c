//! MySQL's and MariaDB's session locks: `GET_LOCK` on a name derived from
//! the lock's (see [`keys`](super::keys)), tokens from `UUID_SHORT()`, the
//! session ended by the server once idle for the session timeout
//! (`wait_timeout`, whole seconds).
//!
//! `GET_LOCK` has no shared mode. A reader or permit takes the name's
//! `GET_LOCK` only around the grant of its row in the holders table, and
//! before that one of the name's presence slots (`GET_LOCK` on
//! `<name>:<i>`, `shared_slots` of them, never waiting), which its session
//! keeps while it has readers or permit holders of the name. The writer
//! takes the name's `GET_LOCK` and, in the same statement, looks at the
//! slots: all free, nobody is in, and it reads no table; some held, it
//! asks (another statement) for live readers' and permits' rows. While it
//! finds some it keeps the lock (so no new reader comes in) and asks again
//! until they are gone.
//!
//! A hold released before its lock-at-least-for minimum is kept, as on
//! PostgreSQL, by a statement on its own session that sleeps on the server
//! and then gives the `GET_LOCK` back; its label row is made to end with
//! the minimum.
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
use sqlx::{Arguments, ConnectOptions, Row};

use super::db::{broken, micros, sqlstate, Answer, Gate, Opened, Outcome, Patience, SessionConn};
use super::db::{uncommented, Label, Seen, SeenHolder, SessionDb};
use super::keys::{Key, NAMED_LEN};
use crate::dialect::ttl_micros;
use crate::key::MAX_KEY_BYTES;

/// Gives the lock back. Returns 1 when this session held it, 0 when
/// another does, NULL when nobody does.
const RELEASE: &str = "SELECT RELEASE_LOCK(?)";
/// The session's connection id. Returns one unsigned integer.
const PING: &str = "SELECT CONNECTION_ID()";
/// A fresh fencing token. Returns one unsigned integer.
const TOKEN: &str = "SELECT UUID_SHORT()";
/// Sets the session timeout, in whole seconds. Returns nothing.
const SET_TIMEOUT: &str = "SET SESSION wait_timeout = ?";
/// Whether a connection sleeps in its kept hold's statement.
const HOLDING: &str = include_str!("../sql/mysql/session_holding.sql");
/// Lifts MariaDB's bound on a statement's time. Returns nothing.
const NO_STATEMENT_BOUND_MARIADB: &str = "SET SESSION max_statement_time = 0";
/// Lifts MySQL's bound on a `SELECT`'s time. Returns nothing.
const NO_STATEMENT_BOUND_MYSQL: &str = "SET SESSION max_execution_time = 0";
/// Keeps a lock until its minimum, then gives it back.
const HOLD: &str = include_str!("../sql/mysql/session_hold.sql");

/// The longest wait `GET_LOCK` is given for "until granted": a year.
const FOREVER_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// MySQL error numbers after which the session is gone: the connection was
/// killed, the server is shutting down or aborted it, or closed it for
/// idling past `wait_timeout` (MySQL 8).
const FATAL_ERRORS: [u16; 5] = [1927, 1053, 1152, 1184, 4031];

/// The statements of one table, with its name and its presence slots
/// spliced in.
struct Statements {
    take: String,
    gate: String,
    readers: String,
    presence: String,
    presence_release: String,
    /// How many presence slots a name has.
    slots: u32,
}

impl Statements {
    /// `sql` with room reserved for its arguments: the GET_LOCK name once
    /// per presence slot and a few more values. Bound one at a time into
    /// empty buffers, a writer's ten arguments would grow them several
    /// times per statement.
    fn query<'q>(
        &self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
        let values = self.slots as usize + 4;
        let mut arguments = sqlx::mysql::MySqlArguments::default();
        arguments.reserve(values, values * (NAMED_LEN + 1) + 2 * (MAX_KEY_BYTES + 3));
        sqlx::query_with(sql, arguments)
    }

    /// Binds the GET_LOCK name once per presence slot.
    fn slots<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
        key: &'q Key,
    ) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
        let named = key.named.as_str();
        for _ in 0..self.slots {
            query = query.bind(named);
        }
        query
    }
}

/// The statements on the holders table's rows beside the session locks,
/// and the status read.
struct RowStatements {
    seen: String,
    label: String,
    relabel: String,
    unlabel: String,
}

/// MySQL or MariaDB, for the session engine.
pub(crate) struct MySqlSessions {
    options: MySqlConnectOptions,
    pool: MySqlPool,
    statements: std::sync::Arc<Statements>,
    rows: RowStatements,
    /// `wait_timeout`, in whole seconds (rounded up).
    idle_secs: u64,
    /// Whether readers and permit holders take presence slots (not when
    /// broken on purpose).
    marks: bool,
}

impl MySqlSessions {
    /// Sessions opened with `options`, on `table`; the status read runs on
    /// `pool`. The server ends a session idle for `timeout` (rounded up to
    /// whole seconds). Each name has `slots` presence slots; readers and
    /// permit holders take none if `unmarked` (broken on purpose).
    pub fn new(
        options: MySqlConnectOptions,
        pool: MySqlPool,
        table: &str,
        timeout: Duration,
        (slots, unmarked): (u32, bool),
    ) -> Self {
        let slots = slots.max(1);
        let each =
            |f: &dyn Fn(u32) -> String, by: &str| (0..slots).map(f).collect::<Vec<_>>().join(by);
        let free = each(&|i| format!("IS_FREE_LOCK(CONCAT(?, ':{i}'))"), "\n AND ");
        let take_slot = each(
            &|i| format!("WHEN GET_LOCK(CONCAT(?, ':{i}'), 0) = 1 THEN {}", i + 1),
            "\n ",
        );
        let release = each(
            &|i| format!("COALESCE(RELEASE_LOCK(CONCAT(?, ':{i}')), 0)"),
            "\n + ",
        );
        let load = |text: &str| {
            uncommented(text)
                .replace("{table}", table)
                .replace("{free}", &free)
                .replace("{slots}", &take_slot)
                .replace("{release}", &release)
        };
        MySqlSessions {
            options,
            pool,
            statements: std::sync::Arc::new(Statements {
                take: load(include_str!("../sql/mysql/session_take.sql")),
                gate: load(include_str!("../sql/mysql/session_gate.sql")),
                readers: load(include_str!("../sql/mysql/session_readers.sql")),
                presence: load(include_str!("../sql/mysql/session_presence.sql")),
                presence_release: load(include_str!("../sql/mysql/session_presence_release.sql")),
                slots,
            }),
            rows: RowStatements {
                seen: load(include_str!("../sql/mysql/session_seen.sql")),
                label: load(include_str!("../sql/mysql/session_label.sql")),
                relabel: load(include_str!("../sql/mysql/session_relabel.sql")),
                unlabel: load(include_str!("../sql/mysql/session_unlabel.sql")),
            },
            idle_secs: timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0),
            marks: !unmarked,
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

    fn marks_presence(&self) -> bool {
        self.marks
    }

    fn deletes_kept_label(&self) -> bool {
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

    /// A label row counts while a session holds the `GET_LOCK`.
    async fn seen(&self, key: &Key) -> Result<Seen, sqlx::Error> {
        let query = self
            .statements
            .slots(self.statements.query(&self.rows.seen), key);
        let row = query
            .bind(key.row.as_bytes())
            .bind(key.named.as_str())
            .bind(key.row.as_bytes())
            .fetch_one(&self.pool)
            .await?;
        let locked: i64 = row.try_get("locked")?;
        let held: i64 = row.try_get("held")?;
        let holder = match (locked != 0, row.try_get::<Option<u64>, _>("term")?) {
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

    async fn holding(&self, server_id: i64) -> Result<bool, sqlx::Error> {
        let holding: i64 = sqlx::query_scalar(HOLDING)
            .bind(server_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(holding != 0)
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
    /// One statement: the writer's `GET_LOCK` with its look at the
    /// presence slots (reading no table); the readers' gate; or a presence
    /// slot (never waiting).
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
            Gate::Exclusive => {
                let query = s.query(&s.take).bind(key.named.as_str()).bind(secs);
                s.slots(query, key)
            }
            Gate::Shared => sqlx::query(&s.gate).bind(key.named.as_str()).bind(secs),
            Gate::Presence => s.slots(s.query(&s.presence), key),
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
        let query = self
            .statements
            .slots(self.statements.query(&self.statements.readers), key);
        let row = query
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

    /// The name's `GET_LOCK`, or the presence slot this session holds.
    async fn give_back(&mut self, key: &Key, gate: Gate) -> Result<bool, sqlx::Error> {
        if gate == Gate::Presence {
            let s = &self.statements;
            let row = s
                .slots(s.query(&s.presence_release), key)
                .fetch_one(&mut self.conn)
                .await?;
            let given: i64 = row.try_get("given")?;
            return Ok(given > 0);
        }
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

    /// No bound on the session's statements: MariaDB's
    /// `max_statement_time`, or MySQL's `max_execution_time` where MariaDB's
    /// is unknown (either would cut the sleep short; a statement that runs
    /// is never ended for idling, `wait_timeout`). One or two round trips.
    async fn ready_to_hold(&mut self) -> Result<(), sqlx::Error> {
        let mariadb = sqlx::query(NO_STATEMENT_BOUND_MARIADB)
            .execute(&mut self.conn)
            .await;
        if mariadb.is_err() {
            sqlx::query(NO_STATEMENT_BOUND_MYSQL)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// One statement, sleeping on the server for `hold`, then giving the
    /// exclusive lock back (a presence slot is never kept this way). The
    /// label row was made to end with the minimum.
    async fn hold_then_give_back(
        &mut self,
        key: &Key,
        _gate: Gate,
        hold: Duration,
        _owner: &str,
    ) -> Result<bool, sqlx::Error> {
        let given: Option<i64> = sqlx::query_scalar(HOLD)
            .bind(hold.as_secs_f64())
            .bind(key.named.as_str())
            .fetch_one(&mut self.conn)
            .await?;
        Ok(given == Some(1))
    }
}
