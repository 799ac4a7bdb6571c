//! Where the tests find their servers (the `DISTLOCK_*` settings of
//! `scripts/services.sh`, or the addresses it gives them), and the stores
//! on them. A server that does not answer is a failure, never a skip.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use distlock_fenced::sqlx;
use distlock_fenced::{RedisStore, SqlStore};
use sqlx::{MySql, Postgres, Sqlite};

/// How to reach the servers when one does not answer.
const LOAD: &str = "start the test servers with `scripts/services.sh up` \
                    (their settings: `eval \"$(scripts/services.sh env)\"`)";

/// The table the SQL stores of the tests share (resources are unique per
/// test run, so tests running at once never meet).
pub const TABLE: &str = "distlock_fenced_test";

/// The value of the environment variable `name`, or `default`: the address
/// `scripts/services.sh` gives that server. A server that does not answer
/// there fails its test.
pub fn setting(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().to_string(),
        _ => default.to_string(),
    }
}

/// The first Redis instance of `DISTLOCK_REDIS_URLS`.
pub fn redis_url() -> String {
    let urls = setting("DISTLOCK_REDIS_URLS", "redis://127.0.0.1:16379");
    urls.split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The password-protected Redis instance (no password in the URL) and its
/// password.
pub fn redis_auth() -> (String, String) {
    (
        setting("DISTLOCK_REDIS_AUTH_URL", "redis://127.0.0.1:16384"),
        setting("DISTLOCK_REDIS_AUTH_PASSWORD", "distlock-secret-pw"),
    )
}

/// A name no other test and no earlier run uses: `tag`, this process, now.
pub fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// A fenced store on the first Redis instance.
pub async fn redis_store() -> RedisStore {
    let url = redis_url();
    RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}; {LOAD}"))
}

/// The SQLite file the SQLite stores of the tests share.
pub fn sqlite_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&dir);
    dir.join("distlock-fenced-tests.db")
}

/// A pool on the shared SQLite file.
pub async fn sqlite_pool() -> sqlx::SqlitePool {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let options = SqliteConnectOptions::new()
        .filename(sqlite_path())
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", sqlite_path().display()))
}

/// A pool on the PostgreSQL server of `DISTLOCK_POSTGRES_URL`.
pub async fn postgres_pool() -> sqlx::PgPool {
    let url = setting(
        "DISTLOCK_POSTGRES_URL",
        "postgres://distlock:distlock-pw@127.0.0.1:15432/distlock",
    );
    sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL at {}: {e}; {LOAD}",
            distlock_core::redact_url(&url)
        )
    })
}

/// A pool on the MySQL/MariaDB server of `DISTLOCK_MYSQL_URL`.
pub async fn mysql_pool() -> sqlx::MySqlPool {
    let url = setting(
        "DISTLOCK_MYSQL_URL",
        "mysql://distlock:distlock-pw@127.0.0.1:13306/distlock",
    );
    sqlx::MySqlPool::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach MySQL at {}: {e}; {LOAD}",
            distlock_core::redact_url(&url)
        )
    })
}

/// The shared table's store on `pool`, the table created.
async fn store_on<DB: distlock_fenced::sql::FenceDatabase>(pool: sqlx::Pool<DB>) -> SqlStore<DB> {
    let store = SqlStore::new(pool)
        .with_table(TABLE)
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("cannot create the table {TABLE}: {e}"));
    store
}

/// A fenced store in the shared SQLite file.
pub async fn sqlite_store() -> SqlStore<Sqlite> {
    store_on(sqlite_pool().await).await
}

/// A fenced store on PostgreSQL.
pub async fn postgres_store() -> SqlStore<Postgres> {
    store_on(postgres_pool().await).await
}

/// A fenced store on MySQL/MariaDB.
pub async fn mysql_store() -> SqlStore<MySql> {
    store_on(mysql_pool().await).await
}

/// Holders `1..=n`, one per store (each its own connection), write one
/// resource at once, each many times: the highest token's last value must
/// remain, every refusal must be of a lower token by a higher one, and the
/// highest holder must never be refused.
pub async fn writers_on_separate_stores(
    stores: Vec<std::sync::Arc<dyn distlock_fenced::FencedStore>>,
) {
    use distlock_fenced::{FenceError, FencingToken, Record};
    const WRITES: usize = 20;
    let r = unique("separate-writers");
    let n = stores.len() as u64;
    let first = stores[0].clone();
    let tasks: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let r = r.clone();
            tokio::spawn(async move {
                let holder = i as u64 + 1;
                let mut outcomes = Vec::new();
                for w in 0..WRITES {
                    let value = format!("holder {holder} write {w}");
                    let outcome = store.set(&r, FencingToken(holder), value.as_bytes()).await;
                    outcomes.push((holder, w, outcome));
                }
                outcomes
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        for (holder, w, outcome) in task.await.unwrap() {
            match outcome {
                Ok(()) => {}
                Err(FenceError::Stale(s)) => {
                    refused += 1;
                    assert!(
                        holder < n && s.offered == FencingToken(holder) && s.recorded > s.offered,
                        "holder {holder} write {w}: refused with {s}"
                    );
                }
                Err(e) => panic!("holder {holder} write {w}: {e}"),
            }
        }
    }
    let last = format!("holder {n} write {}", WRITES - 1);
    let expected = Record {
        value: last.into_bytes(),
        token: FencingToken(n),
    };
    assert_eq!(first.read(&r).await.unwrap(), Some(expected));
    println!("{refused} stale writes refused");
}
