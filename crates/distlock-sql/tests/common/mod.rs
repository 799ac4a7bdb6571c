//! Where the tests find their databases.
#![allow(dead_code)]

use std::path::PathBuf;

/// PostgreSQL from `scripts/services.sh`.
pub fn postgres_url() -> String {
    std::env::var("DISTLOCK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://distlock:distlock-pw@127.0.0.1:15432/distlock".into())
}

/// MariaDB from `scripts/services.sh`.
pub fn mysql_url() -> String {
    std::env::var("DISTLOCK_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://distlock:distlock-pw@127.0.0.1:13306/distlock".into())
}

/// `url` with the query parameters `params` (`a=1&b=2`) added.
pub fn with_params(url: &str, params: &str) -> String {
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}{params}")
}

/// PostgreSQL under the table strategy.
pub fn postgres_table_url() -> String {
    with_params(&postgres_url(), "strategy=table")
}

/// PostgreSQL under the session strategy (the default, said explicitly).
pub fn postgres_session_url() -> String {
    with_params(&postgres_url(), "strategy=session")
}

/// MariaDB under the table strategy.
pub fn mysql_table_url() -> String {
    with_params(&mysql_url(), "strategy=table")
}

/// MariaDB under the session strategy (the default, said explicitly).
pub fn mysql_session_url() -> String {
    with_params(&mysql_url(), "strategy=session")
}

/// A unique suffix for lock names and tables of one test run.
pub fn unique() -> String {
    format!("{}-{:016x}", std::process::id(), rand_u64())
}

/// The socket address of the (one) server a PostgreSQL or MySQL URL names.
pub async fn server_address(url: &str) -> std::net::SocketAddr {
    let parsed = distlock_core::BackendUrl::parse(url)
        .and_then(|u| u.hosts())
        .unwrap_or_else(|e| panic!("{e}"));
    let address = parsed[0].address();
    tokio::net::lookup_host(&address)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve {address}"))
}

/// `url` with its host and port replaced by `addr` (a fault proxy's),
/// keeping the credentials, database and parameters.
pub fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with `://`");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{tail}")
}

/// The SQLite file for the test running on this thread: one file per test
/// (libtest names each test's thread after the test). A child process
/// started by the cross-process case runs the same test, and uses its
/// parent's file, so both compete for the same locks.
pub fn sqlite_test_path() -> PathBuf {
    let child = is_conformance_child();
    let pid = if child {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    let test: String = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    test_dir().join(format!("distlock-sql-{pid}-{test}.db"))
}

/// Whether this process is the child of one of the suite's cross-process
/// cases (the holder that is killed, the leader that is killed, the holder
/// that releases early and exits): each sets a variable of its own, all
/// named `DISTLOCK_CONFORMANCE_CHILD_…`.
pub fn is_conformance_child() -> bool {
    std::env::var_os(distlock_conformance::cases::CHILD_ENV).is_some()
        || std::env::vars_os().any(|(name, _)| {
            name.to_string_lossy()
                .starts_with("DISTLOCK_CONFORMANCE_CHILD")
        })
}

/// Removes a test's SQLite file and its WAL companions.
pub fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The directory for test databases, cleared of files from earlier runs
/// (older than ten minutes) the first time it is asked for.
fn test_dir() -> PathBuf {
    static CLEANED: std::sync::Once = std::sync::Once::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&dir);
    CLEANED.call_once(|| {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let is_ours = entry
                .file_name()
                .to_string_lossy()
                .starts_with("distlock-sql-");
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            if is_ours && modified.is_some_and(|m| m < old) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
    dir
}

/// A fresh SQLite file for one test, removed (with its WAL companions)
/// when dropped.
pub struct SqliteFile {
    /// Its `sqlite://` URL.
    pub url: String,
}

impl SqliteFile {
    /// A fresh file whose name carries `tag`.
    pub fn new(tag: &str) -> Self {
        SqliteFile {
            url: fresh_sqlite_url(tag),
        }
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let path = self.url.strip_prefix("sqlite://").unwrap_or(&self.url);
        remove_sqlite_files(std::path::Path::new(path));
    }
}

/// A backend on `url`, or a panic saying how to start the server `what`.
pub async fn connect(what: &str, url: &str) -> distlock_sql::SqlBackend {
    match distlock_sql::SqlBackend::connect(url).await {
        Ok(b) => b,
        Err(e) => server_missing(what, url, &e),
    }
}

/// A fresh SQLite file for one test.
pub fn fresh_sqlite_url(tag: &str) -> String {
    let n: u64 = rand_u64();
    let path = test_dir().join(format!(
        "distlock-sql-{tag}-{}-{n:016x}.db",
        std::process::id()
    ));
    format!("sqlite://{}", path.display())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Panics with the fix when a server is missing.
pub fn server_missing(what: &str, url: &str, e: &dyn std::fmt::Display) -> ! {
    panic!(
        "cannot reach {what} at {} ({e}): start the servers with scripts/services.sh up",
        distlock_core::redact_url(url)
    )
}

/// In the child process of the cross-process case, libtest has already
/// printed `test <name> ... ` without a line break; end that line so the
/// child's "holds" line starts a line of its own, where the suite looks
/// for it.
pub fn child_output_on_fresh_line() {
    use std::io::Write;
    if is_conformance_child() {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

/// Drops the backend's tables on a server (a SQLite file goes with its
/// test).
pub async fn drop_tables(backend: &distlock_sql::SqlBackend) {
    let t = backend.config().table();
    #[cfg(feature = "postgres")]
    if let Some(pool) = backend.postgres_pool() {
        let drop = format!("DROP TABLE IF EXISTS \"{t}\", \"{t}_holders\"");
        distlock_sql::sqlx::query(&drop)
            .execute(pool)
            .await
            .unwrap();
        let drop = format!("DROP FUNCTION IF EXISTS \"{t}_token\"(text)");
        distlock_sql::sqlx::query(&drop)
            .execute(pool)
            .await
            .unwrap();
        let drop = format!("DROP SEQUENCE IF EXISTS \"{t}_fence\"");
        distlock_sql::sqlx::query(&drop)
            .execute(pool)
            .await
            .unwrap();
    }
    #[cfg(feature = "mysql")]
    if let Some(pool) = backend.mysql_pool() {
        let drop = format!("DROP TABLE IF EXISTS `{t}`, `{t}_holders`");
        distlock_sql::sqlx::query(&drop)
            .execute(pool)
            .await
            .unwrap();
    }
    let _ = t;
}
