//! The SQL floors of the semaphore and the reader-writer lock: a row per
//! name in a table of their own (`distlock_floor_modes`) holding the
//! [`counts`](super::counts) counter, taken with one `UPDATE` whose `WHERE`
//! is the count check.
//!
//! A name's row is created by the first take that finds none: when the
//! `UPDATE` matched no row, an insert-if-absent of the row *already taken*
//! (holders 1, or -1 for the writer) either creates it (taken) or finds it
//! there (refused). So the steady state is one statement per take and one
//! per give-back, each its own transaction.

use std::sync::Arc;

use distlock::registry::BackendKind;
use distlock::{LockName, Mode};
use sqlx::AnyPool;

use super::SPIN;
use crate::workload::{Contender, Primitive};

/// The semaphore floor's recipe.
const SEMAPHORE: &str = "UPDATE … SET holders = holders + 1 WHERE name = ? AND holders < permits (an insert-if-absent of the taken row when there is none) / UPDATE … SET holders = holders - 1, on a table of its own";
/// The reader-writer floor's recipe.
const READ_WRITE: &str = "UPDATE … SET holders = holders + 1 WHERE no writer holds or waits for a reader, SET holders = -1 WHERE holders = 0 for the writer (which sets a waiting flag when refused) / UPDATE counting down, on a table of its own";

/// The recipe for `primitive`.
pub fn recipe(primitive: Primitive) -> Option<&'static str> {
    match primitive {
        Primitive::Mutex => None,
        Primitive::Semaphore => Some(SEMAPHORE),
        Primitive::ReadWrite => Some(READ_WRITE),
    }
}

/// The statements of one dialect. Parameters: the name's key first, then
/// the permits (`take_permit`) or the taken row's holders (`insert_taken`).
pub struct Statements {
    create: &'static str,
    tidy: &'static str,
    take_permit: &'static str,
    take_reader: &'static str,
    take_writer: &'static str,
    insert_taken: &'static str,
    writer_waits: &'static str,
    give_count: &'static str,
    give_writer: &'static str,
}

/// SQLite and PostgreSQL.
const NUMBERED: Statements = Statements {
    create: "CREATE TABLE IF NOT EXISTS distlock_floor_modes \
             (name TEXT PRIMARY KEY, holders BIGINT NOT NULL, writer_waits INTEGER NOT NULL)",
    tidy: "DELETE FROM distlock_floor_modes WHERE holders = 0",
    take_permit: "UPDATE distlock_floor_modes SET holders = holders + 1 \
                  WHERE name = $1 AND holders >= 0 AND holders < $2",
    take_reader: "UPDATE distlock_floor_modes SET holders = holders + 1 \
                  WHERE name = $1 AND holders >= 0 AND writer_waits = 0",
    take_writer: "UPDATE distlock_floor_modes SET holders = -1, writer_waits = 0 \
                  WHERE name = $1 AND holders = 0",
    insert_taken: "INSERT INTO distlock_floor_modes (name, holders, writer_waits) \
                   VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
    writer_waits: "UPDATE distlock_floor_modes SET writer_waits = 1 WHERE name = $1",
    give_count: "UPDATE distlock_floor_modes SET holders = holders - 1 WHERE name = $1",
    give_writer: "UPDATE distlock_floor_modes SET holders = 0 WHERE name = $1",
};

/// MySQL/MariaDB.
const MYSQL: Statements = Statements {
    create: "CREATE TABLE IF NOT EXISTS distlock_floor_modes \
             (name VARCHAR(64) PRIMARY KEY, holders BIGINT NOT NULL, writer_waits INT NOT NULL)",
    tidy: "DELETE FROM distlock_floor_modes WHERE holders = 0",
    take_permit: "UPDATE distlock_floor_modes SET holders = holders + 1 \
                  WHERE name = ? AND holders >= 0 AND holders < ?",
    take_reader: "UPDATE distlock_floor_modes SET holders = holders + 1 \
                  WHERE name = ? AND holders >= 0 AND writer_waits = 0",
    take_writer: "UPDATE distlock_floor_modes SET holders = -1, writer_waits = 0 \
                  WHERE name = ? AND holders = 0",
    insert_taken: "INSERT IGNORE INTO distlock_floor_modes (name, holders, writer_waits) \
                   VALUES (?, ?, 0)",
    writer_waits: "UPDATE distlock_floor_modes SET writer_waits = 1 WHERE name = ?",
    give_count: "UPDATE distlock_floor_modes SET holders = holders - 1 WHERE name = ?",
    give_writer: "UPDATE distlock_floor_modes SET holders = 0 WHERE name = ?",
};

/// Creates the floor's table if missing and deletes the idle rows earlier
/// runs left; returns the dialect's statements.
pub async fn prepare(pool: &AnyPool, kind: BackendKind) -> Result<&'static Statements, String> {
    let statements = match kind {
        BackendKind::MySql => &MYSQL,
        _ => &NUMBERED,
    };
    for sql in [statements.create, statements.tidy] {
        sqlx::query(sql)
            .execute(pool)
            .await
            .map_err(|e| format!("sql floor: {e}"))?;
    }
    Ok(statements)
}

/// A client of the counter floor on its own `pool`.
pub fn contender(pool: AnyPool, statements: &'static Statements) -> Arc<dyn Contender> {
    Arc::new(SqlCounts { pool, statements })
}

struct SqlCounts {
    pool: AnyPool,
    statements: &'static Statements,
}

fn key(name: &LockName) -> String {
    name.digest_hex()[..32].to_string()
}

impl SqlCounts {
    /// Runs `sql` with `key` (and `number`, if any); the rows it changed,
    /// or `None` when the database refused it for contention (a deadlock
    /// or serialization failure: MySQL 1213, SQLSTATE 40001).
    async fn execute(
        &self,
        sql: &'static str,
        key: &str,
        number: Option<i64>,
    ) -> Result<Option<u64>, String> {
        let mut query = sqlx::query(sql).bind(key);
        if let Some(n) = number {
            query = query.bind(n);
        }
        match query.execute(&self.pool).await {
            Ok(done) => Ok(Some(done.rows_affected())),
            Err(sqlx::Error::Database(e))
                if e.code().is_some_and(|c| c == "40001" || c == "1213") =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("sql floor: {e}")),
        }
    }

    /// One attempt: the count-checked `UPDATE`, then, when it matched no
    /// row, the insert of the taken row. True when taken.
    async fn attempt(&self, key: &str, mode: Mode) -> Result<bool, String> {
        let s = self.statements;
        let (update, limit, taken_holders) = match mode {
            Mode::Permit { limit } => (s.take_permit, Some(i64::from(limit)), 1),
            Mode::Shared => (s.take_reader, None, 1),
            _ => (s.take_writer, None, -1),
        };
        if self.execute(update, key, limit).await? == Some(1) {
            return Ok(true);
        }
        Ok(self
            .execute(s.insert_taken, key, Some(taken_holders))
            .await?
            == Some(1))
    }
}

#[distlock::async_trait]
impl Contender for SqlCounts {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let key = key(name);
        let writer = !matches!(mode, Mode::Permit { .. } | Mode::Shared);
        loop {
            if self.attempt(&key, mode).await? {
                return Ok(());
            }
            if writer {
                self.execute(self.statements.writer_waits, &key, None)
                    .await?;
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let sql = match mode {
            Mode::Permit { .. } | Mode::Shared => self.statements.give_count,
            _ => self.statements.give_writer,
        };
        self.execute(sql, &key(name), None).await.map(|_| ())
    }
}
