//! The session-lock floors of PostgreSQL and MySQL/MariaDB: what a
//! hand-written advisory-lock client does, one connection per client,
//! waiting for a held lock in the server's own queue.

use std::sync::Arc;

use distlock::registry::BackendKind;
use distlock::{LockName, Mode};
use sqlx::AnyPool;

use crate::workload::Contender;

/// The take and give-back statements of a database's session locks; the
/// one parameter is the name's key.
pub struct SessionStatements {
    take: &'static str,
    give_back: &'static str,
    /// Whether the key is a 64-bit integer (PostgreSQL) or a string.
    integer_key: bool,
    /// What the floor does, for the report.
    pub recipe: &'static str,
}

/// The session-lock statements of `kind`; `None` for a database without
/// session locks (SQLite).
pub fn statements(kind: BackendKind) -> Option<&'static SessionStatements> {
    match kind {
        BackendKind::Postgres => Some(&POSTGRES),
        BackendKind::MySql => Some(&MYSQL),
        _ => None,
    }
}

static POSTGRES: SessionStatements = SessionStatements {
    take: "SELECT pg_advisory_lock($1)::text",
    give_back: "SELECT pg_advisory_unlock($1)",
    integer_key: true,
    recipe: "pg_advisory_lock(key), waiting in the server, / pg_advisory_unlock(key), \
             one connection per client, no fencing",
};

static MYSQL: SessionStatements = SessionStatements {
    take: "SELECT GET_LOCK(?, -1)",
    give_back: "SELECT RELEASE_LOCK(?)",
    integer_key: false,
    recipe: "GET_LOCK(name, -1), waiting in the server, / RELEASE_LOCK(name), \
             one connection per client, no fencing",
};

/// One client of the floor: a pool of exactly one connection, so every
/// statement runs on the session that holds the lock.
pub struct SessionContender {
    pool: AnyPool,
    statements: &'static SessionStatements,
}

impl SessionContender {
    /// A client with its own connection to `url` (a sqlx URL).
    pub async fn connect(
        url: &str,
        statements: &'static SessionStatements,
    ) -> Result<Arc<dyn Contender>, String> {
        let pool = sqlx::any::AnyPoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .connect(url)
            .await
            .map_err(|e| format!("sql session floor: {e}"))?;
        Ok(Arc::new(SessionContender { pool, statements }))
    }

    async fn run(&self, statement: &'static str, name: &LockName) -> Result<(), String> {
        let digest = name.digest_hex();
        let query = sqlx::query(statement);
        let query = if self.statements.integer_key {
            let key = u64::from_str_radix(&digest[..16], 16)
                .map_err(|e| format!("sql session floor: {e}"))?;
            query.bind(key as i64)
        } else {
            query.bind(format!("dl:{}", &digest[..40]))
        };
        query
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| format!("sql session floor: {e}"))
    }
}

#[distlock::async_trait]
impl Contender for SessionContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.run(self.statements.take, name).await
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.run(self.statements.give_back, name).await
    }
}
