//! Connection settings: parsing the URL, validating the table name.

use std::fmt;
use std::time::Duration;

use distlock_core::{redact_url, LockError, Result};

/// Which database a [`SqlConfig`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Database {
    /// SQLite, embedded: a file shared by every process on the machine.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Database {
    /// The backend name leases carry (`sqlite`, `postgres`, `mysql`).
    pub fn backend_name(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
            Database::MySql => "mysql",
        }
    }

    /// The Cargo feature that compiles this database in.
    pub fn feature(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
            Database::MySql => "mysql",
        }
    }

    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Database::Sqlite),
            "postgres" | "postgresql" => Some(Database::Postgres),
            "mysql" | "mariadb" => Some(Database::MySql),
            _ => None,
        }
    }
}

/// The default locks table.
pub const DEFAULT_TABLE: &str = "distlock_locks";

/// Everything the SQL backend needs to know; built from a URL with
/// [`SqlConfig::from_url`] and adjusted with the builder methods.
///
/// URL parameters read by distlock (and removed before the URL is handed to
/// the database driver; every other parameter goes to the driver):
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `table` | `distlock_locks` | the locks table (`[A-Za-z_][A-Za-z0-9_]{0,62}`) |
/// | `create_table` | `true` | create the table if it is missing |
/// | `pool_size` | `4` | most connections the backend opens |
/// | `timeout_ms` | `5000` | bound on connecting and on each statement |
///
/// ```
/// use distlock_sql::{Database, SqlConfig};
/// let config = SqlConfig::from_url("postgres://app:pw@db/locks?table=app_locks&sslmode=disable")?;
/// assert_eq!(config.database(), Database::Postgres);
/// assert_eq!(config.table_name(), "app_locks");
/// assert!(!format!("{config:?}").contains("pw@"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct SqlConfig {
    database: Database,
    /// The URL handed to the driver (our parameters removed). May hold a
    /// password: never printed except through `redact_url`.
    driver_url: String,
    table: String,
    create_table: bool,
    pool_size: u32,
    timeout: Duration,
}

impl fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("database", &self.database)
            .field("url", &redact_url(&self.driver_url))
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SqlConfig {
    /// Parses a connection URL: `sqlite://path`, `sqlite::memory:`,
    /// `postgres://user:pw@host:port/db`, `mysql://user:pw@host:port/db`
    /// (`postgresql://` and `mariadb://` are accepted too).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` (with the URL's password redacted) for an unknown
    /// scheme, a missing path or host, or a bad distlock parameter.
    pub fn from_url(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        let bad = |why: String| LockError::invalid_config(format!("`{shown}`: {why}"));
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(bad(
                "not a URL: expected `sqlite://path`, `postgres://…` or `mysql://…`".into(),
            ));
        };
        let database = Database::from_scheme(scheme).ok_or_else(|| {
            bad(format!(
                "unknown scheme `{scheme}` for the SQL backend (expected sqlite, postgres or mysql)"
            ))
        })?;
        let (base, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        if base.contains('#') {
            return Err(bad("fragments (`#…`) are not allowed".into()));
        }
        match database {
            Database::Sqlite => {
                let path = base.strip_prefix("//").unwrap_or(base);
                if path.is_empty() {
                    return Err(bad(
                        "missing database path: use `sqlite://path/to/locks.db` or `sqlite::memory:`"
                            .into(),
                    ));
                }
            }
            Database::Postgres | Database::MySql => {
                let Some(authority) = base.strip_prefix("//") else {
                    return Err(bad(format!("expected `{scheme}://host[:port]/database`")));
                };
                let host = authority.split('/').next().unwrap_or_default();
                let host = host.rsplit('@').next().unwrap_or_default();
                if host.is_empty() {
                    return Err(bad("missing host".into()));
                }
            }
        }

        let mut config = SqlConfig {
            database,
            driver_url: String::new(),
            table: DEFAULT_TABLE.to_string(),
            create_table: true,
            pool_size: 4,
            timeout: Duration::from_secs(5),
        };
        let mut driver_params = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "table" => {
                    validate_table(value)?;
                    config.table = value.to_string();
                }
                "create_table" => {
                    config.create_table = parse_bool(value).ok_or_else(|| {
                        bad(format!("create_table must be true or false, got `{value}`"))
                    })?;
                }
                "pool_size" => {
                    config.pool_size = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| bad(format!("pool_size must be 1..=1000, got `{value}`")))?;
                }
                "timeout_ms" => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .ok_or_else(|| {
                            bad(format!(
                                "timeout_ms must be a positive integer, got `{value}`"
                            ))
                        })?;
                    config.timeout = Duration::from_millis(ms);
                }
                _ => driver_params.push(pair),
            }
        }
        // sqlx knows MariaDB as `mysql://`.
        let driver_scheme = match database {
            Database::MySql => "mysql",
            Database::Postgres => "postgres",
            Database::Sqlite => "sqlite",
        };
        let mut driver_url = format!("{driver_scheme}:{base}");
        if !driver_params.is_empty() {
            driver_url.push('?');
            driver_url.push_str(&driver_params.join("&"));
        }
        config.driver_url = driver_url;
        Ok(config)
    }

    /// Uses `table` instead of `distlock_locks`.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` unless the name matches `[A-Za-z_][A-Za-z0-9_]{0,62}`.
    pub fn table(mut self, table: &str) -> Result<Self> {
        validate_table(table)?;
        self.table = table.to_string();
        Ok(self)
    }

    /// Whether to create the table when it is missing (default `true`). Turn
    /// it off when the schema is managed elsewhere (see the crate docs for
    /// the DDL).
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// The most connections the backend opens (default 4).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Bound on connecting and on each statement (default 5 s). An operation
    /// that cannot finish within it fails with `Unavailable`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The database.
    pub fn database(&self) -> Database {
        self.database
    }

    /// The locks table.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Whether a missing table is created.
    pub fn creates_table(&self) -> bool {
        self.create_table
    }

    /// The pool size.
    pub fn pool_size_value(&self) -> u32 {
        self.pool_size
    }

    /// The per-operation timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// The URL for the driver, password redacted (for messages).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.driver_url)
    }

    pub(crate) fn driver_url(&self) -> &str {
        &self.driver_url
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Checks a table name against `[A-Za-z_][A-Za-z0-9_]{0,62}`: it is the one
/// thing spliced into statement text (quoted), so nothing else may pass.
pub fn validate_table(table: &str) -> Result<()> {
    let mut chars = table.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && table.len() <= 63 {
        Ok(())
    } else {
        Err(LockError::invalid_config(format!(
            "table name {table:?} is not an identifier matching [A-Za-z_][A-Za-z0-9_]{{0,62}}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["distlock_locks", "_x", "A1", &"a".repeat(63)] {
            assert!(validate_table(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            &"a".repeat(64),
            "ä",
        ] {
            assert!(validate_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distlock_parameters_are_taken_out_of_the_driver_url() {
        let c = SqlConfig::from_url(
            "postgres://u:secret@h:5432/db?sslmode=disable&table=t1&pool_size=2&timeout_ms=250&create_table=false",
        )
        .unwrap();
        assert_eq!(c.table_name(), "t1");
        assert_eq!(c.pool_size_value(), 2);
        assert_eq!(c.timeout_value(), Duration::from_millis(250));
        assert!(!c.creates_table());
        assert_eq!(
            c.driver_url(),
            "postgres://u:secret@h:5432/db?sslmode=disable"
        );
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn mariadb_scheme_maps_to_the_mysql_driver() {
        let c = SqlConfig::from_url("mariadb://u@h/db").unwrap();
        assert_eq!(c.database(), Database::MySql);
        assert_eq!(c.driver_url(), "mysql://u@h/db");
    }
}
