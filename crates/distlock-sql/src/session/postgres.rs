//! PostgreSQL's session locks: advisory locks on a 64-bit key, tokens from
//! a sequence, the session ended by the server once idle for the session
//! timeout (`idle_session_timeout`).
//!
//! A waiting take is one statement that sets `lock_timeout` for itself and
//! then waits in `pg_advisory_lock`: the server queues the waiters in
//! arrival order, and a shared request waits behind an exclusive one that
//! waits (so a stream of readers cannot starve a writer). The token is the
//! sequence's next value, drawn in the same statement after the grant.
//!
//! A leader's label lives in a row of the holders table beside its session
//! lock (kind `l`); storing it notifies observers on the channel of
//! labelled grants, deleting it on the channel of releases.
//!
//! A lock taken with a lock-at-least-for minimum is taken on a session of
//! its own; released before its minimum, that session runs one last
//! statement that sleeps on the server for what is left of it and then
//! gives the lock back, whether or not the client is still there (the
//! server looks at the connection only once the statement ends). The grants
//! read nothing for it: waiters simply wait in the server's queue.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::types::PgInterval;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{ConnectOptions, Row};

use super::db::{broken, micros, sqlstate, Answer, Gate, Opened, Outcome, Patience, SessionConn};
use super::db::{uncommented, Label, Seen, SeenHolder, SessionDb};
use super::keys::Key;
use crate::dialect::ttl_micros;
use crate::statement::granted_channel;

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
    open: String,
    take: String,
    take_shared: String,
    wait: String,
    wait_shared: String,
    token: String,
    exists: String,
    create: String,
    hold: String,
    hold_shared: String,
    /// The channel of releases (the table name).
    released: String,
}

/// The statements on the holders table's rows beside the session locks,
/// and the status read.
struct RowStatements {
    seen: String,
    label: String,
    relabel: String,
    unlabel: String,
    holding: &'static str,
    /// The channel of releases (the table name).
    released: String,
    /// The channel of labelled grants.
    granted: String,
}

impl RowStatements {
    fn new(table: &str) -> Self {
        let load = |text: &str| uncommented(text).replace("{table}", table);
        RowStatements {
            seen: load(include_str!("../sql/postgres/session_seen.sql")),
            label: load(include_str!("../sql/postgres/session_label.sql")),
            relabel: load(include_str!("../sql/postgres/session_relabel.sql")),
            unlabel: load(include_str!("../sql/postgres/session_unlabel.sql")),
            holding: include_str!("../sql/postgres/session_holding.sql"),
            released: table.to_string(),
            granted: granted_channel(table),
        }
    }
}

impl Statements {
    /// The statements on `table`; a session opens without setting the
    /// fencing sequence ahead of the clock if `sequence_only` (broken on
    /// purpose, tests only).
    fn new(table: &str, sequence_only: bool) -> Self {
        let floor = if sequence_only { NO_FLOOR } else { FLOOR };
        let fill = |text: String, mode: &str| {
            text.replace("{floor}", floor)
                .replace("{token}", TOKEN)
                .replace("{lead}", &LEAD.as_micros().to_string())
                .replace("{table}", table)
                .replace("{mode}", mode)
        };
        let load = |text: &str, mode: &str| fill(uncommented(text), mode);
        // The kept hold's statement keeps its comments: its first words are
        // how the client finds it running on the server (`holding`).
        let kept = |mode: &str| {
            fill(
                include_str!("../sql/postgres/session_hold.sql").into(),
                mode,
            )
        };
        let take = include_str!("../sql/postgres/session_take.sql");
        let wait = include_str!("../sql/postgres/session_wait.sql");
        Statements {
            open: load(include_str!("../sql/postgres/session_open.sql"), ""),
            take: load(take, ""),
            take_shared: load(take, "_shared"),
            wait: load(wait, ""),
            wait_shared: load(wait, "_shared"),
            token: load("SELECT {token}", ""),
            exists: load(SEQUENCE_EXISTS, ""),
            create: sequence_ddl(table),
            hold: kept(""),
            hold_shared: kept("_shared"),
            released: table.to_string(),
        }
    }
}

/// The fencing token a grant draws: the fencing sequence's next value.
///
/// The sequence alone would not be enough: a restart that loses its last
/// writes (a server without persistence, a replica promoted before it had
/// them, a crash before the log of `nextval` reached the disk) brings it
/// back lower than tokens already handed out. So every session sets it
/// ahead of the server's clock when it opens ([`FLOOR`]), before any grant
/// on it:
///
/// - the sequence only ever moves up, by one per grant or to the clock plus
///   [`LEAD`] at an open (opens take turns, [`FENCE_LOCK`]; grants that
///   draw between an open's read and its setting, within one statement,
///   stay below the setting unless 10,000 of them — `LEAD` in microseconds
///   — are drawn in that time), so while fewer than one grant a
///   microsecond are drawn it is never more than `LEAD` ahead of the clock,
///   and neither is any token;
/// - a restart ends every session, so every grant after it runs on a
///   session opened after it, which set the sequence to at least the clock
///   at that open plus `LEAD`: above every earlier token, as long as the
///   clock does not step back.
///
/// A grant's statement therefore holds one function call for its token,
/// not the dozen of a clock comparison: the server sets up every call of a
/// statement at each run, whether the call runs or not.
const TOKEN: &str = "nextval('\"{table}_fence\"')";

/// What a new session does before any grant on it (see [`TOKEN`]): sets the
/// fencing sequence to 2^52 plus the server's clock in microseconds plus
/// [`LEAD`], if it is behind that. The sequence's value after.
const FLOOR: &str = "(SELECT CASE WHEN v.n < v.c THEN setval('\"{table}_fence\"', v.c + {lead}) ELSE v.n END \
     FROM (SELECT nextval('\"{table}_fence\"') AS n, \
                  4503599627370496 + (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint AS c) v)";

/// Serializes the sessions that set the fencing sequence ahead (see
/// [`FLOOR`]) until the transaction ends: without it, two sessions opening
/// at once could each read the sequence behind the clock and set it, the
/// later setting with the earlier clock moving it back below tokens the
/// other's grants had drawn. The two-key form keeps it apart from the
/// single-key advisory locks that hold names. `$1`: the table's name.
const FENCE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('distlock-fence'), hashtext($1))::text";

/// How far ahead of the server's clock a new session sets the fencing
/// sequence (see [`FLOOR`]); earlier versions set it this far ahead at a
/// grant, so the bound on tokens is the same for both.
const LEAD: Duration = Duration::from_millis(10);

/// Broken on purpose (tests only): a session that opens without setting the
/// sequence ahead of the clock, so that tokens fall back with the sequence.
const NO_FLOOR: &str = "NULL::bigint";

/// PostgreSQL, for the session engine.
pub(crate) struct PgSessions {
    options: PgConnectOptions,
    pool: PgPool,
    statements: std::sync::Arc<Statements>,
    rows: RowStatements,
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
        (timeout, check): (Duration, Duration),
        sequence_only: bool,
    ) -> Self {
        PgSessions {
            options,
            pool,
            statements: std::sync::Arc::new(Statements::new(table, sequence_only)),
            rows: RowStatements::new(table),
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

    fn notifies(&self) -> bool {
        true
    }

    /// Never: the shared advisory lock keeps writers out.
    fn marks_presence(&self) -> bool {
        false
    }

    fn deletes_kept_label(&self) -> bool {
        true
    }

    /// Round trips: the connection; the setup statement in a transaction
    /// that first takes the table's fence lock (`BEGIN`, lock, setup,
    /// `COMMIT`), so that sessions opening at once set the sequence ahead
    /// one after another and it never moves back (see [`FLOOR`]); and a
    /// ping that checks the same backend process answers (a pooler in
    /// transaction mode would hand the statements to different sessions).
    async fn open(&self) -> Result<Opened, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        let mut tx = sqlx::Connection::begin(&mut conn).await?;
        sqlx::query(FENCE_LOCK)
            // The table's name.
            .bind(&self.statements.released)
            .execute(&mut *tx)
            .await?;
        let setup = sqlx::query(&self.statements.open)
            .bind(&self.idle)
            .bind(&self.check)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
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

    /// A label row counts while an exclusive lock is granted.
    async fn seen(&self, key: &Key) -> Result<Seen, sqlx::Error> {
        let row = sqlx::query(&self.rows.seen)
            .bind(key.id)
            .bind(&*key.row)
            .fetch_one(&self.pool)
            .await?;
        let held: i64 = row.try_get("held")?;
        let exclusive: i64 = row.try_get("exclusive")?;
        let waiting: i64 = row.try_get("waiting")?;
        let holder = match row.try_get::<Option<i64>, _>("term")? {
            Some(term) if exclusive > 0 => Some(SeenHolder {
                term: u64::try_from(term).unwrap_or(0),
                label: row.try_get("label")?,
                remaining: micros(row.try_get("remaining_us")?),
            }),
            _ => None,
        };
        Ok(Seen {
            held: held > 0,
            waiters: Some(usize::try_from(waiting).unwrap_or(0)),
            holder,
        })
    }

    async fn label(&self, key: &Key, owner: &str, label: Label<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(&self.rows.label)
            .bind(&*key.row)
            .bind(owner)
            .bind(i64::try_from(label.term).unwrap_or(i64::MAX))
            .bind(ttl_micros(label.ttl))
            .bind(label.label)
            .bind(self.rows.granted.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn relabel(&self, key: &Key, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&self.rows.relabel)
            .bind(&*key.row)
            .bind(owner)
            .bind(ttl_micros(ttl))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unlabel(&self, key: &Key, owner: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&self.rows.unlabel)
            .bind(&*key.row)
            .bind(owner)
            .bind(self.rows.released.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn holding(&self, server_id: i64) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(self.rows.holding)
            .bind(server_id)
            .fetch_one(&self.pool)
            .await
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
                    Gate::Shared | Gate::Presence => &s.take_shared,
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
            Gate::Shared | Gate::Presence => &s.wait_shared,
        };
        let answer = sqlx::query(text)
            .bind(key.id)
            .bind(limit)
            .fetch_one(&mut self.conn)
            .await;
        match answer {
            Ok(row) => {
                let token: Option<i64> = row.try_get(0)?;
                let busy: PgInterval = row.try_get(1)?;
                Ok(Answer {
                    outcome: taken(token),
                    busy: interval(&busy),
                })
            }
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
            Gate::Shared | Gate::Presence => UNLOCK_SHARED,
        };
        sqlx::query_scalar(text)
            .bind(key.id)
            .fetch_one(&mut self.conn)
            .await
    }

    async fn ping(&mut self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(PING).fetch_one(&mut self.conn).await
    }

    async fn ready_to_hold(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(include_str!("../sql/postgres/session_hold_setup.sql"))
            .fetch_one(&mut self.conn)
            .await?;
        Ok(())
    }

    /// One statement, sleeping on the server for `hold` (see the module
    /// docs).
    async fn hold_then_give_back(
        &mut self,
        key: &Key,
        gate: Gate,
        hold: Duration,
        owner: &str,
    ) -> Result<bool, sqlx::Error> {
        let s = &self.statements;
        let text = match gate {
            Gate::Exclusive => &s.hold,
            Gate::Shared | Gate::Presence => &s.hold_shared,
        };
        let row = sqlx::query(text)
            .bind(key.id)
            .bind(ttl_micros(hold))
            .bind(&*key.row)
            .bind(owner)
            .bind(s.released.as_str())
            .fetch_one(&mut self.conn)
            .await?;
        row.try_get("given")
    }
}

/// A non-negative interval as a duration (days of 24 hours; none of its
/// months), zero when negative.
fn interval(i: &PgInterval) -> Duration {
    let days = i64::from(i.days).saturating_mul(86_400_000_000);
    micros(Some(days.saturating_add(i.microseconds)))
}

/// A take's token column: taken with it, or refused.
fn taken(token: Option<i64>) -> Outcome {
    match token.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => Outcome::Taken(t),
        None => Outcome::Refused,
    }
}
