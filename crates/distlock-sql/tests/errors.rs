//! Bad input gives clear errors, quickly, without secrets.
// Some imports serve only the tests of some database features.
#![allow(unused_imports)]

mod common;

use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName, Wait, DEFAULT_TTL};
use distlock_sql::{Database, SqlBackend, SqlConfig};

fn invalid_config(url: &str) -> String {
    match SqlConfig::from_url(url) {
        Err(LockError::InvalidConfig { reason }) => reason,
        other => panic!("{url}: expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn malformed_urls_are_invalid_config() {
    for url in [
        "sqlite:",
        "sqlite://",
        "postgres:/nohost",
        "postgres://",
        "postgres://u:pw@/db",
        "mysql://u:pw@h/db?pool_size=0",
        "mysql://u:pw@h/db?timeout_ms=soon",
        "mysql://u:pw@h/db?create_table=maybe",
        "sqlite://x.db?table=bad-name",
        "sqlite://x.db?table=1abc",
        "oracle://u:pw@h/db",
        "no scheme at all",
        "postgres://u:pw@h/db#frag",
    ] {
        invalid_config(url);
    }
}

#[test]
fn passwords_never_appear_in_url_errors() {
    for url in [
        "postgres://app:hunter2-secret@h/db?pool_size=zero",
        "mysql://app:hunter2-secret@h/db?table=no;drop",
        "oracle://app:hunter2-secret@h/db",
    ] {
        let reason = invalid_config(url);
        assert!(!reason.contains("hunter2"), "{reason}");
    }
}

#[test]
fn table_names_must_be_identifiers() {
    let config = SqlConfig::from_url("sqlite://x.db").unwrap();
    for bad in [
        "",
        "a b",
        "x\"; DROP TABLE y; --",
        &"t".repeat(56),
        "9lives",
    ] {
        assert!(
            matches!(
                config.clone().with_table(bad),
                Err(LockError::InvalidConfig { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(config.with_table("app_locks").unwrap().table(), "app_locks");
}

#[cfg(feature = "sqlite")]
#[test]
fn ddl_is_available_for_every_database() {
    let sqlite = distlock_sql::ddl(Database::Sqlite, "app_locks").unwrap();
    assert!(
        sqlite.contains("CREATE TABLE IF NOT EXISTS \"app_locks\""),
        "{sqlite}"
    );
    assert!(
        sqlite.contains("CREATE TABLE IF NOT EXISTS \"app_locks_holders\""),
        "the readers' and permits' table is part of the DDL: {sqlite}"
    );
    assert!(distlock_sql::ddl(Database::Sqlite, "no-good").is_err());
    assert!(distlock_sql::ddl(Database::Sqlite, &"t".repeat(56)).is_err());
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn missing_table_without_create_is_a_backend_error_naming_the_table() {
    let url = format!(
        "{}?table=never_created&create_table=false",
        common::fresh_sqlite_url("no-table")
    );
    let backend = SqlBackend::connect(&url).await.expect("connect");
    let name = LockName::new("x").unwrap();
    let result = backend
        .acquire(&name, &AcquireOptions::try_once(DEFAULT_TTL))
        .await;
    drop(backend);
    common::remove_sqlite_files(std::path::Path::new(sqlite_path(&url)));
    match result {
        Err(LockError::Backend { context, .. }) => {
            assert!(context.contains("never_created"), "{context}");
            assert!(context.contains("no such table"), "{context}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

/// The file path of a `sqlite://` URL from `fresh_sqlite_url`.
#[cfg(feature = "sqlite")]
fn sqlite_path(url: &str) -> &str {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    path.split('?').next().unwrap_or(path)
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn in_memory_sqlite_is_in_process_only() {
    let backend = SqlBackend::connect("sqlite::memory:")
        .await
        .expect("connect");
    assert!(!backend.capabilities().cross_process);
    let name = LockName::new("m").unwrap();
    let opts = AcquireOptions::try_once(Duration::from_secs(5));
    let lease = backend.acquire(&name, &opts).await.unwrap().expect("free");
    assert!(
        backend.acquire(&name, &opts).await.unwrap().is_none(),
        "held"
    );
    backend.release(&lease).await.unwrap();
}

/// Another process holding the file's write lock: an acquire waits for it
/// in the busy handler and gives up within the statement timeout with
/// `Unavailable` (not hanging, not a backend error); once the file is free
/// the lock is taken.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_file_kept_busy_is_unavailable_within_the_timeout() {
    use distlock_sql::sqlx::{Connection, Executor, SqliteConnection};
    let file = common::SqliteFile::new("busy");
    let timeout = Duration::from_millis(400);
    let url = format!("{}?timeout={}ms", file.url, timeout.as_millis());
    let backend = SqlBackend::connect(&url).await.expect("connect");
    let mut other = SqliteConnection::connect(&file.url).await.expect("open");
    other.execute("BEGIN IMMEDIATE").await.expect("write lock");

    let name = LockName::new("busy").unwrap();
    let opts = AcquireOptions::try_once(DEFAULT_TTL);
    let start = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), backend.acquire(&name, &opts))
        .await
        .expect("the acquire gives up on its own");
    let took = start.elapsed();
    let err = outcome.expect_err("the file's write lock is held");
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    assert!(
        took >= timeout,
        "gave up after {took:?}, before the timeout"
    );

    other.execute("COMMIT").await.expect("free the file");
    let waiting = AcquireOptions::new(DEFAULT_TTL).with_wait(Wait::For(Duration::from_secs(10)));
    let lease = backend
        .acquire(&name, &waiting)
        .await
        .expect("the file is free")
        .expect("nobody holds the lock");
    backend.release(&lease).await.unwrap();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_is_created_when_missing() {
    let url = common::fresh_sqlite_url("created");
    let path = std::path::Path::new(sqlite_path(&url));
    assert!(!path.exists());
    let backend = SqlBackend::connect(&url)
        .await
        .expect("connect creates the file");
    assert!(path.exists());
    assert!(backend.capabilities().cross_process);
    drop(backend);
    common::remove_sqlite_files(path);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn refused_connection_is_unavailable_without_the_password() {
    // Nothing listens on port 1.
    let start = Instant::now();
    let err = SqlBackend::connect(
        "postgres://distlock:hunter2-secret@127.0.0.1:1/distlock?timeout_ms=2000",
    )
    .await
    .expect_err("nothing listens there");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn silent_server_gives_unavailable_within_the_timeout() {
    use distlock_conformance::{FaultProxy, ProxyMode};
    let real = common::postgres_url();
    let proxy = FaultProxy::start(common::server_address(&real).await)
        .await
        .unwrap();
    // Same credentials and database, through the proxy.
    let url = format!("{}?timeout=800ms", common::through(&real, proxy.addr()));
    let backend = match SqlBackend::connect(&url).await {
        Ok(b) => b,
        Err(e) => common::server_missing("PostgreSQL", &real, &e),
    };
    let name = LockName::new(format!("silent/{}", std::process::id())).unwrap();
    let opts = AcquireOptions::new(Duration::from_secs(5))
        .with_wait(Wait::For(Duration::from_millis(300)));

    proxy.set_mode(ProxyMode::Blackhole);
    let start = Instant::now();
    let err = backend
        .acquire(&name, &opts)
        .await
        .expect_err("the server cannot answer");
    let took = start.elapsed();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    proxy.set_mode(ProxyMode::Reset);
    let err = backend
        .acquire(&name, &opts)
        .await
        .expect_err("connections are reset");
    assert!(err.is_transient(), "{err:?}");

    proxy.set_mode(ProxyMode::Pass);
    let healthy =
        AcquireOptions::new(Duration::from_secs(5)).with_wait(Wait::For(Duration::from_secs(10)));
    let lease = backend
        .acquire(&name, &healthy)
        .await
        .expect("works again once the network heals")
        .expect("free");
    backend.release(&lease).await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn table_without_privileges_is_a_clear_backend_error() {
    let real = common::postgres_url();
    let table = format!("distlock_noperm_{}", std::process::id());
    let owner = match SqlBackend::connect(&format!("{real}?table={table}&strategy=table")).await {
        Ok(b) => b,
        Err(e) => common::server_missing("PostgreSQL", &real, &e),
    };
    let pool = owner.postgres_pool().unwrap().clone();
    // The owner gives up every privilege on its table, as a role that was
    // never granted any would have none.
    sqlx_exec(
        &pool,
        &format!("REVOKE ALL ON TABLE \"{table}\" FROM CURRENT_USER, PUBLIC"),
    )
    .await;

    let backend = SqlBackend::connect(&format!("{real}?table={table}&strategy=table"))
        .await
        .expect("connecting needs no privilege on the table");
    let name = LockName::new("noperm").unwrap();
    let result = backend
        .acquire(&name, &AcquireOptions::try_once(DEFAULT_TTL))
        .await;
    sqlx_exec(&pool, &format!("DROP TABLE \"{table}\"")).await;
    sqlx_exec(&pool, &format!("DROP TABLE \"{table}_holders\"")).await;

    let err = result.expect_err("no privilege on the table");
    let LockError::Backend {
        context, source, ..
    } = &err
    else {
        panic!("expected a Backend error, got {err:?}");
    };
    assert!(
        context.contains(&table),
        "context names the table: {context}"
    );
    assert!(
        source.to_string().contains("permission denied"),
        "source says why: {source}"
    );
    let everything = format!("{err} {err:?} {source}");
    assert!(!everything.contains("distlock-pw"), "{everything}");
}

#[cfg(feature = "postgres")]
async fn sqlx_exec(pool: &distlock_sql::sqlx::PgPool, sql: &str) {
    distlock_sql::sqlx::query(sql).execute(pool).await.unwrap();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn wrong_mysql_password_is_a_backend_error_without_the_password() {
    let err = SqlBackend::connect("mysql://distlock:hunter2-wrong@127.0.0.1:13306/distlock")
        .await
        .expect_err("wrong password");
    let everything = format!("{err} {err:?}");
    assert!(!everything.contains("hunter2"), "{everything}");
    assert!(
        err.is_transient() || matches!(err, LockError::Backend { .. }),
        "{err:?}"
    );
}
