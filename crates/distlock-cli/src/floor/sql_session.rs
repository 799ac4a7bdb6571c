//! The session-lock floors of PostgreSQL and MySQL/MariaDB: what a
//! hand-written advisory-lock client does, one connection per client,
//! waiting for a held lock in the server's own queue.

// A build with SQLite alone has no session locks: only the statements'
// descriptions remain.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(dead_code, unused_imports)
)]

use std::sync::Arc;

use distlock::registry::BackendKind;
use distlock::{LockName, Mode};

use crate::workload::Contender;

/// The take and give-back statements of a database's session locks; the
/// one parameter is the name's key.
pub struct SessionStatements {
    take: &'static str,
    give_back: &'static str,
    /// The database (its native driver: no translation layer in the floor).
    kind: BackendKind,
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
    kind: BackendKind::Postgres,
    recipe: "pg_advisory_lock(key), waiting in the server, / pg_advisory_unlock(key), \
             one connection per client, no fencing",
};

/// MySQL reads a negative wait as "forever"; MariaDB refuses it (a warning
/// and NULL, taking nothing), so the floor waits a year, as distlock does.
static MYSQL: SessionStatements = SessionStatements {
    take: "SELECT GET_LOCK(?, 31536000)",
    give_back: "SELECT RELEASE_LOCK(?)",
    kind: BackendKind::MySql,
    recipe: "GET_LOCK(name, 31536000), waiting in the server, / RELEASE_LOCK(name), \
             one connection per client, no fencing",
};

/// A new client of the floor for `statements`, with its own connection to
/// `url` (a sqlx URL).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub async fn contender(
    url: &str,
    statements: &'static SessionStatements,
) -> Result<Arc<dyn Contender>, String> {
    SessionContender::connect(url, statements).await
}

/// Without PostgreSQL and MySQL there are no session locks to take.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
pub async fn contender(
    _url: &str,
    statements: &'static SessionStatements,
) -> Result<Arc<dyn Contender>, String> {
    Err(format!(
        "sql session floor: {:?} is not compiled in",
        statements.kind
    ))
}

/// One client of the floor: exactly one connection (no pool), through the
/// database's own sqlx driver, so every statement runs on the session that
/// holds the lock.
#[cfg(any(feature = "postgres", feature = "mysql"))]
struct SessionContender {
    conn: Connection,
    statements: &'static SessionStatements,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
enum Connection {
    #[cfg(feature = "postgres")]
    Postgres(tokio::sync::Mutex<sqlx::PgConnection>),
    #[cfg(feature = "mysql")]
    MySql(tokio::sync::Mutex<sqlx::MySqlConnection>),
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl SessionContender {
    /// A client with its own connection to `url` (a sqlx URL).
    async fn connect(
        url: &str,
        statements: &'static SessionStatements,
    ) -> Result<Arc<dyn Contender>, String> {
        let fail = |e: sqlx::Error| format!("sql session floor: {e}");
        let conn = match statements.kind {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => Connection::Postgres(tokio::sync::Mutex::new(
                sqlx::Connection::connect(url).await.map_err(fail)?,
            )),
            #[cfg(feature = "mysql")]
            BackendKind::MySql => Connection::MySql(tokio::sync::Mutex::new(
                sqlx::Connection::connect(url).await.map_err(fail)?,
            )),
            other => return Err(format!("sql session floor: no session locks on {other:?}")),
        };
        Ok(Arc::new(SessionContender { conn, statements }))
    }

    /// Runs `statement` on `name`'s key; an error unless it did its work
    /// (`GET_LOCK` granted, `RELEASE_LOCK` / `pg_advisory_unlock` gave a
    /// held lock back: a floor that took nothing would flatter itself).
    async fn run(&self, statement: &'static str, name: &LockName) -> Result<(), String> {
        let digest = name.digest_hex();
        let fail = |e: sqlx::Error| format!("sql session floor: {e}");
        let done = match &self.conn {
            #[cfg(feature = "postgres")]
            Connection::Postgres(conn) => {
                let key = u64::from_str_radix(&digest[..16], 16)
                    .map_err(|e| format!("sql session floor: {e}"))?;
                let row = sqlx::query(statement)
                    .bind(key as i64)
                    .fetch_one(&mut *conn.lock().await)
                    .await
                    .map_err(fail)?;
                // `pg_advisory_lock` returns nothing (as text, ''), and
                // errors when it cannot wait.
                match sqlx::Row::try_get::<Option<bool>, _>(&row, 0) {
                    Ok(answer) => answer == Some(true),
                    Err(_) => true,
                }
            }
            #[cfg(feature = "mysql")]
            Connection::MySql(conn) => {
                let answer: Option<i64> = sqlx::query_scalar(statement)
                    .bind(format!("dl:{}", &digest[..40]))
                    .fetch_one(&mut *conn.lock().await)
                    .await
                    .map_err(fail)?;
                answer == Some(1)
            }
        };
        if done {
            Ok(())
        } else {
            Err(format!(
                "sql session floor: `{statement}` on `{name}` did not do its work"
            ))
        }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[distlock::async_trait]
impl Contender for SessionContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.run(self.statements.take, name).await
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.run(self.statements.give_back, name).await
    }
}
