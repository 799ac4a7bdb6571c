//! The strategy (`strategy=session|table`) and the session strategy's
//! settings (`sessions`, `session_timeout`, `session_ping`), as the URL
//! and the setters give them.

use std::fmt;
use std::time::Duration;

use distlock_core::{BackendUrl, Result};

use super::Database;

/// How the SQL backend holds a lock: see the crate docs' "Strategies".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// The database's own session locks (PostgreSQL advisory locks,
    /// MySQL/MariaDB `GET_LOCK`): a mutex or writer is one statement to
    /// take and one to release, waiters queue in the server, and a hold
    /// lives as long as the database session that took it. The default on
    /// PostgreSQL and MySQL/MariaDB.
    Session,
    /// A row per name in the locks table, with a ttl on the database
    /// clock. The only strategy on SQLite.
    Table,
}

impl Strategy {
    /// The URL spelling: `session` or `table`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Session => "session",
            Strategy::Table => "table",
        }
    }

    /// The default for `database`: `session` where the database has
    /// session locks, `table` on SQLite.
    pub fn default_for(database: Database) -> Self {
        match database {
            Database::Sqlite => Strategy::Table,
            Database::Postgres | Database::MySql => Strategy::Session,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "session" => Some(Strategy::Session),
            "table" => Some(Strategy::Table),
            _ => None,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `strategy` cannot serve `database`, if it cannot.
pub(crate) fn strategy_problem(database: Database, strategy: Strategy) -> Option<String> {
    (database == Database::Sqlite && strategy == Strategy::Session).then(|| {
        "`strategy=session` needs the session locks of PostgreSQL or MySQL/MariaDB; \
         SQLite has none: use `strategy=table` (the default on SQLite)"
            .to_string()
    })
}

/// The default bound on session connections of one backend.
pub(crate) const DEFAULT_SESSIONS: u32 = 8;
/// The most session connections one backend may open.
pub(crate) const MAX_SESSIONS: u32 = 1000;
/// The default session timeout.
pub(crate) const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest session timeout (MySQL's `wait_timeout` counts whole seconds).
pub(crate) const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest session timeout.
pub(crate) const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// The default interval between checks of a session holding locks.
pub(crate) const DEFAULT_SESSION_PING: Duration = Duration::from_millis(250);
/// Presence slots of a name by default (MySQL/MariaDB).
pub(crate) const DEFAULT_SHARED_SLOTS: u32 = 8;
/// The most presence slots a name may have.
pub(crate) const MAX_SHARED_SLOTS: u32 = 64;
/// The shortest interval between checks.
pub(crate) const MIN_SESSION_PING: Duration = Duration::from_millis(10);

/// The session strategy's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionSettings {
    /// The most session connections one backend opens.
    pub max: u32,
    /// How long the database keeps a session (and its locks) after it last
    /// heard from the client.
    pub timeout: Duration,
    /// How often a session that holds locks is checked, at most.
    pub ping: Option<Duration>,
    /// Broken on purpose (tests only): sends a request for a key to a
    /// session that holds it, where the database's re-entrant locks grant
    /// it again.
    pub reentrant: bool,
    /// MySQL/MariaDB: how many presence slots a name has — how many
    /// sessions may hold its read locks or permits at once.
    pub slots: u32,
    /// Broken on purpose (tests only): MySQL's readers and permit holders
    /// take no presence slot, so writers that find every slot free miss
    /// them.
    pub unmarked: bool,
    /// Broken on purpose (tests only): PostgreSQL's fencing tokens come
    /// from the sequence alone, and fall back when it does.
    pub sequence_tokens: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            max: DEFAULT_SESSIONS,
            timeout: DEFAULT_SESSION_TIMEOUT,
            ping: None,
            reentrant: false,
            slots: DEFAULT_SHARED_SLOTS,
            unmarked: false,
            sequence_tokens: false,
        }
    }
}

impl SessionSettings {
    /// The interval between checks: the one given, else 250 ms, never more
    /// than a quarter of the timeout.
    pub fn ping(&self) -> Duration {
        self.ping
            .unwrap_or(DEFAULT_SESSION_PING)
            .min(self.timeout / 4)
            .max(MIN_SESSION_PING)
    }

    /// How long a session that holds locks may go without an answer from
    /// the server before it is reported `Suspended`: three checks, at most
    /// half the timeout. Within it, a session is known alive.
    pub fn suspend_after(&self) -> Duration {
        (self.ping() * 3).min(self.timeout / 2)
    }

    /// Reads `sessions`, `session_timeout` and `session_ping` (servers only:
    /// on SQLite they stay unread, and so are refused as unknown), and
    /// `shared_slots` on MySQL/MariaDB (unread, and so refused, elsewhere).
    pub fn read(&mut self, url: &mut BackendUrl, database: Database) -> Result<()> {
        if database == Database::MySql {
            if let Some(n) = url.number::<u32>("shared_slots")? {
                self.slots = checked_slots(n).map_err(|why| url.error(&why))?;
            }
        }
        if let Some(n) = url.number::<u32>("sessions")? {
            if !(1..=MAX_SESSIONS).contains(&n) {
                return Err(url.error(&format!(
                    "`sessions={n}` is out of range (1..={MAX_SESSIONS})"
                )));
            }
            self.max = n;
        }
        if let Some(t) = url.duration("session_timeout")? {
            if !(MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&t) {
                return Err(url.error(&format!(
                    "`session_timeout={t:?}` is out of range ({MIN_SESSION_TIMEOUT:?}..={MAX_SESSION_TIMEOUT:?})"
                )));
            }
            self.timeout = t;
        }
        if let Some(p) = url.duration("session_ping")? {
            let most = self.timeout / 4;
            if !(MIN_SESSION_PING..=most).contains(&p) {
                return Err(url.error(&format!(
                    "`session_ping={p:?}` is out of range ({MIN_SESSION_PING:?}..={most:?}, \
                     a quarter of the session timeout)"
                )));
            }
            self.ping = Some(p);
        }
        Ok(())
    }

    /// Reads `strategy`, refusing an unknown one or one `database` lacks.
    pub fn read_strategy(url: &mut BackendUrl, database: Database) -> Result<Option<Strategy>> {
        let Some(text) = url.string("strategy") else {
            return Ok(None);
        };
        let strategy = Strategy::parse(&text).ok_or_else(|| {
            url.error(&format!(
                "`strategy={text}` is unknown (expected `session` or `table`)"
            ))
        })?;
        match strategy_problem(database, strategy) {
            Some(why) => Err(url.error(&why)),
            None => Ok(Some(strategy)),
        }
    }
}

/// `n` presence slots, if in range (1..=64).
pub(crate) fn checked_slots(n: u32) -> std::result::Result<u32, String> {
    if (1..=MAX_SHARED_SLOTS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "`shared_slots={n}` is out of range (1..={MAX_SHARED_SLOTS})"
        ))
    }
}

impl super::SqlConfig {
    /// MySQL/MariaDB under `strategy=session`: how many presence slots a
    /// name has (default 8; the URL's `shared_slots`). Each session with
    /// read locks or permits of a name holds one while it has them, so at
    /// most this many sessions hold one name's read locks or permits at
    /// once (more wait for a slot); a writer's statement checks every slot.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidConfig`](distlock_core::LockError::InvalidConfig)
    /// outside 1 to 64, or on another database.
    pub fn with_shared_slots(mut self, slots: u32) -> Result<Self> {
        if self.database != Database::MySql {
            return Err(distlock_core::LockError::invalid_config(format!(
                "`shared_slots` is for MySQL/MariaDB, not {}",
                self.database.backend_name()
            )));
        }
        self.sessions.slots =
            checked_slots(slots).map_err(distlock_core::LockError::invalid_config)?;
        Ok(self)
    }

    /// Breaks the session strategy on purpose, for the tests that prove
    /// they would catch it: MySQL's readers and permit holders take no
    /// presence slot, so a writer that finds every slot free takes the
    /// lock beside them. Never use it.
    #[doc(hidden)]
    pub fn with_presence_unmarked_broken_on_purpose(mut self) -> Self {
        self.sessions.unmarked = true;
        self
    }

    /// Breaks the session strategy on purpose, for the tests that prove
    /// they would catch it: PostgreSQL's fencing tokens come from the
    /// sequence alone, so a sequence brought back lower (a restart that
    /// lost its last writes) hands out tokens again. Never use it.
    #[doc(hidden)]
    pub fn with_sequence_tokens_broken_on_purpose(mut self) -> Self {
        self.sessions.sequence_tokens = true;
        self
    }
}
