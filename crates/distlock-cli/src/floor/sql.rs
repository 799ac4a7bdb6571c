//! The SQL floors (SQLite, PostgreSQL, MySQL/MariaDB).

use std::sync::Arc;

use distlock::registry::BackendKind;
use distlock::{LockName, Mode};
use sqlx::AnyPool;

use super::sql_session::{self, SessionStatements};
use super::{sql_modes, Floor, SPIN};
use crate::workload::{Contender, Primitive};

/// A row per held lock: an insert that does nothing when the row exists
/// to take, a delete to give back; or, when the URL picks the session
/// strategy, the database's session locks ([`sql_session`]). Its semaphore
/// and reader-writer floors are in [`sql_modes`].
pub struct SqlFloor {
    url: String,
    insert: &'static str,
    delete: &'static str,
    modes: &'static sql_modes::Statements,
    session: Option<&'static SessionStatements>,
}

impl SqlFloor {
    /// Connects to the database `url` names (a distlock URL of `kind`) and
    /// creates the floors' tables.
    pub async fn connect(url: &str, kind: BackendKind) -> Result<Self, String> {
        sqlx::any::install_default_drivers();
        let session = match distlock::sql::SqlConfig::from_url(url)
            .map_err(|e| format!("sql floor: {e}"))?
            .strategy()
        {
            distlock::sql::Strategy::Session => sql_session::statements(kind),
            _ => None,
        };
        let url = driver_url(url, kind);
        let (create, insert, delete) = statements(kind);
        let pool = AnyPool::connect(&url)
            .await
            .map_err(|e| format!("sql floor: {e}"))?;
        sqlx::query(create)
            .execute(&pool)
            .await
            .map_err(|e| format!("sql floor: {e}"))?;
        let modes = sql_modes::prepare(&pool, kind).await?;
        Ok(SqlFloor {
            url,
            insert,
            delete,
            modes,
            session,
        })
    }
}

/// The connection URL as sqlx expects it: its own scheme names
/// (`postgresql://` → `postgres:`, `mariadb://` → `mysql:`), and a SQLite
/// file created if missing.
fn driver_url(url: &str, kind: BackendKind) -> String {
    let rest = url.split_once(':').map_or("", |(_, rest)| rest);
    let driver = match kind {
        BackendKind::Postgres => "postgres",
        BackendKind::MySql => "mysql",
        _ => "sqlite",
    };
    let url = format!("{driver}:{rest}");
    if kind == BackendKind::Sqlite && !url.contains("mode=") {
        let joint = if url.contains('?') { '&' } else { '?' };
        return format!("{url}{joint}mode=rwc");
    }
    url
}

/// (create table, take, give back) in the database's dialect.
fn statements(kind: BackendKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        BackendKind::MySql => (
            "CREATE TABLE IF NOT EXISTS distlock_floor (name VARCHAR(64) PRIMARY KEY)",
            "INSERT IGNORE INTO distlock_floor (name) VALUES (?)",
            "DELETE FROM distlock_floor WHERE name = ?",
        ),
        _ => (
            "CREATE TABLE IF NOT EXISTS distlock_floor (name TEXT PRIMARY KEY)",
            "INSERT INTO distlock_floor (name) VALUES ($1) ON CONFLICT DO NOTHING",
            "DELETE FROM distlock_floor WHERE name = $1",
        ),
    }
}

struct SqlContender {
    pool: AnyPool,
    insert: &'static str,
    delete: &'static str,
}

#[distlock::async_trait]
impl Floor for SqlFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        match (primitive, self.session) {
            (Primitive::Mutex, Some(session)) => Some(session.recipe),
            _ => sql_modes::recipe(primitive),
        }
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        if let (Primitive::Mutex, Some(session)) = (primitive, self.session) {
            return sql_session::contender(&self.url, session).await;
        }
        // No ping before each statement: a hand-written client sends none.
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .connect(&self.url)
            .await
            .map_err(|e| format!("sql floor: {e}"))?;
        if primitive != Primitive::Mutex {
            return Ok(sql_modes::contender(pool, self.modes));
        }
        Ok(Arc::new(SqlContender {
            pool,
            insert: self.insert,
            delete: self.delete,
        }))
    }
}

#[distlock::async_trait]
impl Contender for SqlContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let key = &name.digest_hex()[..32];
        loop {
            match sqlx::query(self.insert).bind(key).execute(&self.pool).await {
                Ok(done) if done.rows_affected() == 1 => return Ok(()),
                Ok(_) => {}
                // A deadlock or serialization failure under contention
                // (MySQL 1213, SQLSTATE 40001): not taken, try again.
                Err(sqlx::Error::Database(e))
                    if e.code().is_some_and(|c| c == "40001" || c == "1213") => {}
                Err(e) => return Err(format!("sql floor: {e}")),
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        sqlx::query(self.delete)
            .bind(&name.digest_hex()[..32])
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| format!("sql floor: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_urls_use_sqlx_scheme_names() {
        assert_eq!(
            driver_url("PostgreSQL://u:p@h/db", BackendKind::Postgres),
            "postgres://u:p@h/db"
        );
        assert_eq!(
            driver_url("mariadb://u:p@h/db", BackendKind::MySql),
            "mysql://u:p@h/db"
        );
        assert_eq!(
            driver_url("sqlite://x.db", BackendKind::Sqlite),
            "sqlite://x.db?mode=rwc"
        );
    }
}
