//! Connection settings: the URL, read with the one URL grammar
//! ([`BackendUrl`]), and the builder setters.

use std::fmt;
use std::time::Duration;

use distlock_core::{
    percent_decode, percent_encode, redact_url, BackendUrl, LockError, Result, TlsSettings,
};

mod session;
mod tls;

pub(crate) use session::SessionSettings;
pub use session::Strategy;

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
        self.backend_name()
    }

    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "sqlite" => Some(Database::Sqlite),
            "postgres" | "postgresql" => Some(Database::Postgres),
            "mysql" | "mariadb" => Some(Database::MySql),
            _ => None,
        }
    }

    /// The query parameters handed on to the sqlx driver (everything else
    /// is either distlock's or refused).
    fn driver_parameters(self) -> &'static [&'static str] {
        match self {
            Database::Sqlite => &["mode", "cache", "immutable", "vfs"],
            Database::Postgres => &[
                "sslmode",
                "ssl-mode",
                "sslrootcert",
                "ssl-root-cert",
                "ssl-ca",
                "sslcert",
                "ssl-cert",
                "sslkey",
                "ssl-key",
                "statement-cache-capacity",
                "application_name",
                "options",
            ],
            Database::MySql => &[
                "sslmode",
                "ssl-mode",
                "sslca",
                "ssl-ca",
                "sslcert",
                "ssl-cert",
                "sslkey",
                "ssl-key",
                "charset",
                "collation",
                "statement-cache-capacity",
                "timezone",
                "time-zone",
            ],
        }
    }
}

/// The default locks table.
pub const DEFAULT_TABLE: &str = "distlock_locks";

/// The default bound on each statement.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest table name: `<table>_holders` must fit in 63 bytes.
const MAX_TABLE_LEN: usize = 63 - "_holders".len();

/// The default (and largest) connection pool.
const DEFAULT_POOL_SIZE: u32 = 4;
const MAX_POOL_SIZE: u32 = 1000;

/// Everything the SQL backend needs to know; built from a URL with
/// [`SqlConfig::from_url`] and adjusted with the `with_*` setters.
///
/// URL parameters read by distlock (the shared vocabulary of every
/// backend; they never reach the database driver):
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `table` | `distlock_locks` | the locks table (`[A-Za-z_][A-Za-z0-9_]{0,54}`); its holders table is `<table>_holders` |
/// | `create_table` | `true` | create the table if it is missing |
/// | `pool_size` | `4` | most connections the backend opens (1..=1000) |
/// | `timeout` (legacy `timeout_ms=<ms>`) | `5s` | bound on each statement |
/// | `connect_timeout` (legacy `connect_timeout_ms`) | the `timeout` | bound on connecting (PostgreSQL, MySQL) |
/// | `waiter_timeout` | `1s` | the table strategy's queue (MySQL, SQLite): how long a waiter's place lives unless its waiter keeps it, so how long a waiter that died in line holds the others up (30ms..=1h) |
/// | `strategy` | `session` (PostgreSQL, MySQL), `table` (SQLite) | how locks are held: the database's session locks, or rows of the locks table (see the crate docs) |
/// | `sessions` | `8` | `strategy=session`: most session connections the backend opens (1..=1000), beside the pool |
/// | `session_timeout` | `5s` | `strategy=session`: how long the database keeps a session, and its locks, after it last heard from the client (1s..=1h) |
/// | `session_ping` | `250ms` | `strategy=session`: how often a session holding locks is checked (at most a quarter of `session_timeout`) |
/// | `tls`, `ca`, `cert`, `key`, `danger_accept_invalid_certs` | off | PostgreSQL, MySQL: TLS, verified against `ca` (or the roots sqlx ships) with the server's name checked; a client certificate; no verification (tests only). Needs the `tls-rustls` feature ([`SqlConfig::with_tls`]) |
///
/// The driver's own parameters pass through: `mode`, `cache`, `immutable`,
/// `vfs` for SQLite; `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
/// `statement-cache-capacity`, `application_name`, `options` for
/// PostgreSQL; `ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`, `charset`,
/// `collation`, `statement-cache-capacity`, `timezone` for MySQL (with
/// sqlx's alternative spellings). Any other parameter is refused, by name.
///
/// ```
/// use std::time::Duration;
/// use distlock_sql::{Database, SqlConfig, Strategy};
/// let config = SqlConfig::from_url("postgres://app:pw@db/locks?table=app_locks&timeout=2s&sslmode=disable")?;
/// assert_eq!(config.database(), Database::Postgres);
/// assert_eq!(config.table(), "app_locks");
/// assert_eq!(config.timeout(), Duration::from_secs(2));
/// assert!(!format!("{config:?}").contains("pw@"));
/// assert_eq!(config.strategy(), Strategy::Session);
/// let config = config.with_pool_size(8).with_create_table(false).with_strategy(Strategy::Table)?;
/// assert_eq!(config.pool_size(), 8);
/// assert_eq!(config.strategy(), Strategy::Table);
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct SqlConfig {
    database: Database,
    /// The URL handed to the driver (distlock's parameters removed). May
    /// hold a password: never printed except through `redact_url`.
    driver_url: String,
    /// The driver parameters in `driver_url`, decoded.
    driver_params: Vec<(String, String)>,
    in_memory: bool,
    table: String,
    create_table: bool,
    pool_size: u32,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    strategy: Strategy,
    sessions: SessionSettings,
    tls: Option<TlsSettings>,
    waiter_timeout: Duration,
    /// Broken on purpose: queue places live an hour, whatever the window.
    dead_places_kept: bool,
}

impl fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("database", &self.database)
            .field("url", &self.redacted_url())
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout())
            .field("strategy", &self.strategy)
            .field("sessions", &self.sessions)
            .field("tls", &self.tls)
            .field("waiter_timeout", &self.waiter_timeout)
            .finish()
    }
}

impl SqlConfig {
    /// Parses a connection URL: `sqlite://path`, `sqlite::memory:`,
    /// `postgres://user:pw@host[:port]/db`, `mysql://user:pw@host[:port]/db`
    /// (`postgresql://` and `mariadb://` are accepted too; the port
    /// defaults to 5432 and 3306). See the table above for the parameters.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` (with the URL's password redacted) for an unknown
    /// scheme, a missing path or host, more than one host, a bad value, or
    /// an unknown parameter (named in the message).
    pub fn from_url(url: &str) -> Result<Self> {
        if url.contains('#') {
            // The URL is not echoed: a `#` in an unencoded password would
            // defeat the redaction.
            return Err(LockError::invalid_config(
                "a `#` in the SQL backend URL starts a fragment, which it does not take; \
                 write it as `%23` in a password or path",
            ));
        }
        let mut url = BackendUrl::parse(url)?;
        let database = Database::from_scheme(url.scheme()).ok_or_else(|| {
            url.error(&format!(
                "unknown scheme `{}` for the SQL backend (expected sqlite, postgres or mysql)",
                url.scheme()
            ))
        })?;
        let mut config = SqlConfig::defaults(database);
        config.read_parameters(&mut url)?;
        config.driver_params = database
            .driver_parameters()
            .iter()
            .filter_map(|key| url.string(key).map(|v| (key.to_string(), v)))
            .collect();
        if database != Database::Sqlite {
            config.tls = tls::read(&mut url, &config.driver_params)?;
        }
        url.finish()?;
        config.driver_url = match database {
            Database::Sqlite => config.sqlite_driver_url(&url)?,
            Database::Postgres | Database::MySql => config.server_driver_url(&url)?,
        };
        Ok(config)
    }

    /// Every default for `database`, with no URL: for a backend on an
    /// application's own pool ([`SqlBackend::from_pg_pool`](crate::SqlBackend::from_pg_pool)
    /// and its siblings); adjust it with the `with_*` setters.
    ///
    /// ```
    /// use distlock_sql::{Database, SqlConfig, Strategy};
    /// let config = SqlConfig::new(Database::Postgres).with_table("app_locks")?;
    /// assert_eq!(config.strategy(), Strategy::Session);
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    pub fn new(database: Database) -> Self {
        Self::defaults(database)
    }

    fn defaults(database: Database) -> Self {
        SqlConfig {
            database,
            driver_url: String::new(),
            driver_params: Vec::new(),
            in_memory: false,
            table: DEFAULT_TABLE.to_string(),
            create_table: true,
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
            strategy: Strategy::default_for(database),
            sessions: SessionSettings::default(),
            tls: None,
            waiter_timeout: distlock_core::line::DEFAULT_WAITER_TIMEOUT,
            dead_places_kept: false,
        }
    }

    /// Reads distlock's own parameters.
    fn read_parameters(&mut self, url: &mut BackendUrl) -> Result<()> {
        if let Some(table) = url.string("table") {
            if let Some(why) = table_problem(&table) {
                return Err(url.error(&why));
            }
            self.table = table;
        }
        if let Some(create) = url.boolean("create_table")? {
            self.create_table = create;
        }
        if let Some(size) = url.number::<u32>("pool_size")? {
            if !(1..=MAX_POOL_SIZE).contains(&size) {
                return Err(url.error(&format!(
                    "`pool_size={size}` is out of range (1..={MAX_POOL_SIZE})"
                )));
            }
            self.pool_size = size;
        }
        if let Some(timeout) = positive(url, "timeout")? {
            self.timeout = timeout;
        }
        if let Some(window) = url.duration("waiter_timeout")? {
            distlock_core::line::check_waiter_timeout(window)?;
            self.waiter_timeout = window;
        }
        // Only a server has a connection to establish, and sessions.
        if self.database != Database::Sqlite {
            self.connect_timeout = positive(url, "connect_timeout")?;
            self.sessions.read(url, self.database)?;
        }
        if let Some(strategy) = SessionSettings::read_strategy(url, self.database)? {
            self.strategy = strategy;
        }
        Ok(())
    }

    /// `sqlite://<path>`: the path is everything after `//` (or after `:`),
    /// percent-decoded; `:memory:` is an in-memory database.
    fn sqlite_driver_url(&mut self, url: &BackendUrl) -> Result<String> {
        let authority = percent_decode(url.authority())
            .ok_or_else(|| url.error("bad percent escape in the database path"))?;
        let path = format!("{authority}{}", url.path());
        if path.is_empty() {
            return Err(url.error(
                "missing database path: use `sqlite://path/to/locks.db` or `sqlite::memory:`",
            ));
        }
        self.in_memory = path == ":memory:" || self.driver_param("mode") == Some("memory");
        let file = if path == ":memory:" {
            path
        } else {
            percent_encode(&path)
        };
        Ok(format!("sqlite://{file}{}", self.driver_query()))
    }

    /// `postgres|mysql://[user[:password]@]host[:port][/database]`, with
    /// the default port filled in.
    fn server_driver_url(&self, url: &BackendUrl) -> Result<String> {
        let hosts = url.hosts()?;
        let [host] = hosts.as_slice() else {
            return Err(url.error(&format!(
                "the SQL backend connects to one server; the URL names {}",
                hosts.len()
            )));
        };
        let userinfo = match (&host.user, host.password()) {
            (None, None) => String::new(),
            (user, None) => format!("{}@", percent_encode(user.as_deref().unwrap_or(""))),
            (user, Some(pw)) => format!(
                "{}:{}@",
                percent_encode(user.as_deref().unwrap_or("")),
                percent_encode(pw)
            ),
        };
        let name = url.path().trim_start_matches('/');
        let path = if name.is_empty() {
            String::new()
        } else {
            format!("/{}", percent_encode(name))
        };
        let scheme = self.database.backend_name(); // sqlx knows MariaDB as `mysql`
        Ok(format!(
            "{scheme}://{userinfo}{}{path}{}",
            host.address(),
            self.driver_query()
        ))
    }

    fn driver_query(&self) -> String {
        if self.driver_params.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self
            .driver_params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("?{}", pairs.join("&"))
    }

    /// Uses `table` instead of `distlock_locks`.
    ///
    /// # Errors
    ///
    /// `InvalidConfig` unless the name matches `[A-Za-z_][A-Za-z0-9_]{0,54}`.
    pub fn with_table(mut self, table: &str) -> Result<Self> {
        validate_table(table)?;
        self.table = table.to_string();
        Ok(self)
    }

    /// Whether to create the table when it is missing (default `true`). Turn
    /// it off when the schema is managed elsewhere (see the crate docs for
    /// the DDL).
    pub fn with_create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// The most connections the backend opens (default 4; at least 1).
    pub fn with_pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.clamp(1, MAX_POOL_SIZE);
        self
    }

    /// Bound on each statement (default 5 s; at least 1 ms). An operation
    /// that cannot finish within it fails with `Unavailable`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Bound on connecting to a PostgreSQL or MySQL server (default: the
    /// statement timeout; at least 1 ms).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// Holds locks with `strategy` (default: [`Strategy::Session`] on
    /// PostgreSQL and MySQL/MariaDB, [`Strategy::Table`] on SQLite).
    ///
    /// # Errors
    ///
    /// `InvalidConfig` for [`Strategy::Session`] on SQLite, which has no
    /// session locks.
    pub fn with_strategy(mut self, strategy: Strategy) -> Result<Self> {
        if let Some(why) = session::strategy_problem(self.database, strategy) {
            return Err(LockError::invalid_config(why));
        }
        self.strategy = strategy;
        Ok(self)
    }

    /// The most session connections the backend opens under
    /// [`Strategy::Session`] (default 8; 1..=1000).
    pub fn with_sessions(mut self, n: u32) -> Self {
        self.sessions.max = n.clamp(1, session::MAX_SESSIONS);
        self
    }

    /// How long the database keeps a session, and the locks it holds, after
    /// it last heard from the client (default 5 s; 1 s..=1 h): the longest a
    /// client cut off from the database keeps its locks from others.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.sessions.timeout =
            timeout.clamp(session::MIN_SESSION_TIMEOUT, session::MAX_SESSION_TIMEOUT);
        self
    }

    /// The waiter-liveness window of the table strategy's queue (MySQL/MariaDB
    /// and SQLite; default 1 s, 30 ms to 1 h, URL `waiter_timeout`): a
    /// polling waiter keeps its queue place alive by looking at least every
    /// quarter of it, so a waiter that died in line holds the others up for
    /// at most this long, whatever the holder's ttl.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidConfig`] outside 30 ms to 1 h.
    pub fn with_waiter_timeout(mut self, window: Duration) -> Result<Self> {
        distlock_core::line::check_waiter_timeout(window)?;
        self.waiter_timeout = window;
        Ok(self)
    }

    /// The waiter-liveness window of the table strategy's queue.
    pub fn waiter_timeout(&self) -> Duration {
        self.waiter_timeout
    }

    /// Breaks the waiter-liveness window on purpose, for the tests that
    /// prove they would catch it: queue places live an hour whatever the
    /// window, so a waiter that died in line holds the others up that
    /// long. Never use it.
    #[doc(hidden)]
    pub fn with_dead_waiters_kept_broken_on_purpose(mut self) -> Self {
        self.dead_places_kept = true;
        self
    }

    /// How long queue places live: the window, unless broken on purpose.
    pub(crate) fn place_life(&self) -> Duration {
        match self.dead_places_kept {
            true => distlock_core::line::MAX_WAITER_TIMEOUT,
            false => self.waiter_timeout,
        }
    }

    /// How often a session that holds locks is checked (default 250 ms; at
    /// most a quarter of the session timeout, at least 10 ms).
    pub fn with_session_ping(mut self, every: Duration) -> Self {
        self.sessions.ping = Some(every);
        self
    }

    /// Breaks the session strategy on purpose, for the tests that prove
    /// they would catch it: requests for a key may go to a session that
    /// already holds it, and the database's re-entrant session locks grant
    /// them again (two local holders of one exclusive lock). Never use it.
    #[doc(hidden)]
    pub fn with_reentrant_sessions_broken_on_purpose(mut self) -> Self {
        self.sessions.reentrant = true;
        self
    }

    /// The database.
    pub fn database(&self) -> Database {
        self.database
    }

    /// The locks table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether a missing table is created.
    pub fn creates_table(&self) -> bool {
        self.create_table
    }

    /// The pool size.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// The bound on each statement.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bound on connecting.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.timeout)
    }

    /// How locks are held.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The most session connections (under [`Strategy::Session`]).
    pub fn sessions(&self) -> u32 {
        self.sessions.max
    }

    /// The session timeout (under [`Strategy::Session`]).
    pub fn session_timeout(&self) -> Duration {
        self.sessions.timeout
    }

    /// The interval between checks of a session holding locks (under
    /// [`Strategy::Session`]).
    pub fn session_ping(&self) -> Duration {
        self.sessions.ping()
    }

    /// The session strategy's settings.
    pub(crate) fn session_settings(&self) -> SessionSettings {
        self.sessions
    }

    /// True for an in-memory SQLite database (`sqlite::memory:` or
    /// `mode=memory`): this process only.
    pub fn in_memory(&self) -> bool {
        self.in_memory
    }

    /// The URL for the driver, password redacted (for messages).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.driver_url)
    }

    pub(crate) fn driver_url(&self) -> &str {
        &self.driver_url
    }

    /// A driver parameter given in the URL.
    pub(crate) fn driver_param(&self, key: &str) -> Option<&str> {
        self.driver_params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a duration parameter that must be longer than zero.
fn positive(url: &mut BackendUrl, key: &str) -> Result<Option<Duration>> {
    match url.duration(key)? {
        Some(d) if d.is_zero() => Err(url.error(&format!("`{key}` must be longer than zero"))),
        other => Ok(other),
    }
}

/// Checks a table name against `[A-Za-z_][A-Za-z0-9_]{0,54}`: it is the one
/// thing spliced into statement text (quoted), so nothing else may pass.
/// At most 55 characters, so that its holders table, `<table>_holders`,
/// still fits the 63 bytes of a PostgreSQL identifier (which PostgreSQL
/// would otherwise cut short, silently).
///
/// # Errors
///
/// `InvalidConfig` naming the refused table.
pub fn validate_table(table: &str) -> Result<()> {
    match table_problem(table) {
        None => Ok(()),
        Some(why) => Err(LockError::invalid_config(why)),
    }
}

/// Why `table` is not a plain identifier, if it is not.
fn table_problem(table: &str) -> Option<String> {
    let mut chars = table.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!(first_ok && rest_ok && table.len() <= MAX_TABLE_LEN)).then(|| {
        format!("table name {table:?} is not an identifier matching [A-Za-z_][A-Za-z0-9_]{{0,54}}")
    })
}

#[cfg(test)]
mod tests;
