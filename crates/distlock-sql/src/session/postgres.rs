//! PostgreSQL's session locks: advisory locks on a 64-bit key, tokens from
//! a sequence, the session ended by the server once idle for the session
//! timeout (`idle_session_timeout`).
//!
//! A waiting take is one statement that sets `lock_timeout` for itself and
//! then waits in `pg_advisory_lock`: the server queues the waiters in
//! arrival order, and a shared request waits behind an exclusive one that
//! waits (so a stream of readers cannot starve a writer). The token is the
//! sequence's next value, drawn in the same statement after the grant.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{ConnectOptions, Row};

use super::db::{broken, micros, sqlstate, Answer, Gate, Opened, Outcome, Patience, SessionConn};
use super::db::{Seen, SessionDb};
use super::keys::Key;

/// SQLSTATE of a lock wait that ran out (`lock_not_available`).
const LOCK_TIMEOUT: &str = "55P03";

/// Gives the exclusive lock back. Returns one boolean: whether it was held.
const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";
/// Gives the shared lock back. Returns one boolean: whether it was held.
const UNLOCK_SHARED: &str = "SELECT pg_advisory_unlock_shared($1)";
/// The session's backend process id. Returns one bigint.
const PING: &str = "SELECT pg_backend_pid()::bigint";
/// Whether the fencing sequence exists (in the search path). Returns one boolean.
const SEQUENCE_EXISTS: &str = "SELECT to_regclass('\"{table}_fence\"') IS NOT NULL";
/// Serialises concurrent creations (as the tables' creation does).
const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('distlock-create-table'))::text";

/// The DDL of the fencing sequence for `table`.
pub(crate) fn sequence_ddl(table: &str) -> String {
    include_str!("../sql/postgres/session_create.sql").replace("{table}", table)
}

/// The statements of one table, with its name spliced in.
struct Statements {
    take: String,
    take_shared: String,
    wait: String,
    wait_shared: String,
    token: String,
    exists: String,
    create: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        let load = |text: &str, mode: &str| text.replace("{table}", table).replace("{mode}", mode);
        let take = include_str!("../sql/postgres/session_take.sql");
        let wait = include_str!("../sql/postgres/session_wait.sql");
        Statements {
            take: load(take, ""),
            take_shared: load(take, "_shared"),
            wait: load(wait, ""),
            wait_shared: load(wait, "_shared"),
            token: load("SELECT nextval('\"{table}_fence\"')", ""),
            exists: load(SEQUENCE_EXISTS, ""),
            create: sequence_ddl(table),
        }
    }
}

/// PostgreSQL, for the session engine.
pub(crate) struct PgSessions {
    options: PgConnectOptions,
    pool: PgPool,
    statements: std::sync::Arc<Statements>,
    /// `idle_session_timeout`, in milliseconds, as text.
    idle: String,
    /// `client_connection_check_interval`, in milliseconds, as text.
    check: String,
}

impl PgSessions {
    /// Sessions opened with `options`, on `table`; the status read runs on
    /// `pool`. The server ends a session idle for `timeout`; a waiting
    /// statement checks its client every `check`.
    pub fn new(
        options: PgConnectOptions,
        pool: PgPool,
        table: &str,
        timeout: Duration,
        check: Duration,
    ) -> Self {
        PgSessions {
            options,
            pool,
            statements: std::sync::Arc::new(Statements::new(table)),
            idle: timeout.as_millis().to_string(),
            check: check.as_millis().max(1).to_string(),
        }
    }
}

#[async_trait]
impl SessionDb for PgSessions {
    fn keeps_shared_gate(&self) -> bool {
        true
    }

    /// Round trips: the connection, the setup statement, and a ping that
    /// checks the same backend process answers (a pooler in transaction
    /// mode would hand the statements to different sessions).
    async fn open(&self) -> Result<Opened, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        let setup = sqlx::query(include_str!("../sql/postgres/session_open.sql"))
            .bind(&self.idle)
            .bind(&self.check)
            .fetch_one(&mut conn)
            .await?;
        let pid: i64 = setup.try_get("pid")?;
        if !setup.try_get::<bool, _>("bounded")? {
            tracing::warn!(
                "distlock.postgres.no_session_timeout: the server has no idle_session_timeout \
                 (PostgreSQL 14 or later has it): a client cut off from it keeps its session \
                 locks until the server notices the connection is gone"
            );
        }
        let session = PgSession {
            conn,
            statements: self.statements.clone(),
        };
        super::db::confirmed(session, pid).await
    }

    /// Round trips: one when the sequence exists; four more to create it
    /// (transaction, lock, create, commit).
    async fn prepare(&self) -> Result<(), sqlx::Error> {
        let s = &self.statements;
        let exists: bool = sqlx::query_scalar(&s.exists).fetch_one(&self.pool).await?;
        if exists {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(CREATE_LOCK).execute(&mut *tx).await?;
        sqlx::query(&s.create).execute(&mut *tx).await?;
        tx.commit().await
    }

    async fn seen(&self, key: &Key) -> Result<Seen, sqlx::Error> {
        let row = sqlx::query(include_str!("../sql/postgres/session_seen.sql"))
            .bind(key.id)
            .fetch_one(&self.pool)
            .await?;
        let held: i64 = row.try_get("held")?;
        let waiting: i64 = row.try_get("waiting")?;
        Ok(Seen {
            held: held > 0,
            waiters: Some(usize::try_from(waiting).unwrap_or(0)),
        })
    }

    /// A broken connection, or the server ending the session (SQLSTATE
    /// class 08, or 57P0x: shut down, terminated by an administrator,
    /// idle for the session timeout).
    fn is_fatal(&self, e: &sqlx::Error) -> bool {
        broken(e) || sqlstate(e).is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
    }
}

/// One session connection.
struct PgSession {
    conn: PgConnection,
    statements: std::sync::Arc<Statements>,
}

#[async_trait]
impl SessionConn for PgSession {
    /// One statement: `pg_try_advisory_lock[_shared]` for a try, else the
    /// waiting statement with its own `lock_timeout`.
    async fn take(
        &mut self,
        key: &Key,
        gate: Gate,
        patience: Patience,
    ) -> Result<Answer, sqlx::Error> {
        let s = &self.statements;
        let (limit, waited) = match patience {
            Patience::Try => {
                let text = match gate {
                    Gate::Exclusive => &s.take,
                    Gate::Shared => &s.take_shared,
                };
                let token: Option<i64> = sqlx::query_scalar(text)
                    .bind(key.id)
                    .fetch_one(&mut self.conn)
                    .await?;
                return Ok(Answer {
                    outcome: taken(token),
                    busy: Duration::ZERO,
                });
            }
            Patience::Upto(wait) => (wait.as_millis().max(1).to_string(), wait),
            Patience::Forever => ("0".to_string(), Duration::ZERO),
        };
        let text = match gate {
            Gate::Exclusive => &s.wait,
            Gate::Shared => &s.wait_shared,
        };
        let answer = sqlx::query(text)
            .bind(key.id)
            .bind(limit)
            .fetch_one(&mut self.conn)
            .await;
        match answer {
            Ok(row) => Ok(Answer {
                outcome: taken(row.try_get("token")?),
                busy: micros(row.try_get("busy_us")?),
            }),
            // The wait ran out: the server spent at least `lock_timeout` on it.
            Err(e) if sqlstate(&e).as_deref() == Some(LOCK_TIMEOUT) => Ok(Answer {
                outcome: Outcome::Refused,
                busy: waited,
            }),
            Err(e) => Err(e),
        }
    }

    /// Never asked: PostgreSQL's writer is kept apart from readers by the
    /// shared lock they hold.
    async fn readers_left(&mut self, _key: &Key) -> Result<Outcome, sqlx::Error> {
        Ok(Outcome::Taken(self.token().await?))
    }

    async fn token(&mut self) -> Result<u64, sqlx::Error> {
        let token: i64 = sqlx::query_scalar(&self.statements.token)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(u64::try_from(token).unwrap_or(0))
    }

    async fn give_back(&mut self, key: &Key, gate: Gate) -> Result<bool, sqlx::Error> {
        let text = match gate {
            Gate::Exclusive => UNLOCK,
            Gate::Shared => UNLOCK_SHARED,
        };
        sqlx::query_scalar(text)
            .bind(key.id)
            .fetch_one(&mut self.conn)
            .await
    }

    async fn ping(&mut self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(PING).fetch_one(&mut self.conn).await
    }
}

/// A take's token column: taken with it, or refused.
fn taken(token: Option<i64>) -> Outcome {
    match token.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => Outcome::Taken(t),
        None => Outcome::Refused,
    }
}
