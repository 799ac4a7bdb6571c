//! A locks table made by an earlier version is brought up to date when the
//! backend connects: one of the first layout (one row per name, no readers,
//! no permits) gains the reader columns and the holders table, one of the
//! layout before labels gains the label columns, and the rows they held keep
//! their fencing counters.
// Some functions serve only the tests of some database features.
#![allow(dead_code, unused_imports)]

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockName, Mode};
use distlock_sql::{sqlx, SqlBackend};

const TTL: Duration = Duration::from_secs(30);

/// A table name of its own for this run.
fn table(tag: &str) -> String {
    format!("distlock_old_{tag}_{}", std::process::id())
}

/// On a table of an earlier layout holding `name` with fence 41: the
/// backend connects, a reader, a writer and a leader work (the leader's
/// identity read back), and the next token is above 41.
async fn earlier_table_is_brought_up_to_date(what: &str, url: &str) {
    let backend = common::connect(what, url).await;
    let name = LockName::new("old/name").unwrap();
    let o = AcquireOptions::try_once(TTL);
    let reader = backend
        .acquire_as(&name, Mode::Shared, &o)
        .await
        .unwrap()
        .expect("a reader on the upgraded table");
    assert!(
        reader.fencing_token().get() > 41,
        "{what}: the counter was reset"
    );
    assert!(backend.acquire(&name, &o).await.unwrap().is_none());
    backend.release(&reader).await.unwrap();
    let writer = backend
        .acquire(&name, &o)
        .await
        .unwrap()
        .expect("free again");
    assert!(writer.fencing_token() > reader.fencing_token());
    backend.release(&writer).await.unwrap();
    let leader = backend
        .elect(&name, "node-1", &o)
        .await
        .unwrap()
        .expect("free again, for a leader");
    let status = backend.status(&name).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("node-1"), "{what}: no label");
    assert_eq!(status.fencing_token, Some(leader.fencing_token()));
    backend.release(&leader).await.unwrap();
    // Connecting again finds it current.
    let again = SqlBackend::connect(url).await.unwrap();
    assert!(!again.status(&name).await.unwrap().held);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_of_an_earlier_version_gains_the_holders_table() {
    let url = common::fresh_sqlite_url("old-table");
    let path = url.strip_prefix("sqlite://").unwrap_or(&url).to_string();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        for sql in [
            "CREATE TABLE distlock_locks (name TEXT NOT NULL PRIMARY KEY, owner TEXT, \
             fence INTEGER NOT NULL DEFAULT 0, expires_at INTEGER) WITHOUT ROWID",
            "INSERT INTO distlock_locks (name, owner, fence, expires_at) VALUES ('old/name', NULL, 41, NULL)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    earlier_table_is_brought_up_to_date("sqlite", &url).await;
    common::remove_sqlite_files(std::path::Path::new(&path));
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_from_before_labels_gains_the_label_column() {
    let url = common::fresh_sqlite_url("unlabelled-table");
    let path = url.strip_prefix("sqlite://").unwrap_or(&url).to_string();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        for sql in [
            "CREATE TABLE distlock_locks (name TEXT NOT NULL PRIMARY KEY, owner TEXT, \
             fence INTEGER NOT NULL DEFAULT 0, expires_at INTEGER) WITHOUT ROWID",
            "CREATE TABLE distlock_locks_holders (name TEXT NOT NULL, owner TEXT NOT NULL, \
             kind TEXT NOT NULL, permits INTEGER NOT NULL DEFAULT 0, \
             expires_at INTEGER NOT NULL, PRIMARY KEY (name, owner, kind)) WITHOUT ROWID",
            "INSERT INTO distlock_locks (name, owner, fence, expires_at) VALUES ('old/name', NULL, 41, NULL)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    earlier_table_is_brought_up_to_date("sqlite", &url).await;
    common::remove_sqlite_files(std::path::Path::new(&path));
}

/// The case on a server: a table of its own made in an earlier layout by
/// the statements `create` (`{t}` the table, `{q}` the identifier quote),
/// run through `run`, dropped afterwards with its holders table.
async fn server_table_of_an_earlier_version(
    what: &str,
    url: &str,
    q: char,
    create: &[&str],
    run: impl AsyncFn(&str),
) {
    let t = table(what);
    let mut setup = vec![
        format!("DROP TABLE IF EXISTS {q}{t}{q}"),
        format!("DROP TABLE IF EXISTS {q}{t}_holders{q}"),
    ];
    for statement in create {
        setup.push(statement.replace("{t}", &t).replace("{q}", &q.to_string()));
    }
    setup.push(format!(
        "INSERT INTO {q}{t}{q} (name, fence) VALUES ('old/name', 41)"
    ));
    for sql in &setup {
        run(sql).await;
    }
    // Brought up to date by the first to connect (the table strategy: the
    // locks table's label), then used under the session strategy too (the
    // holders table's label).
    for strategy in ["table", "session"] {
        let url = format!("{url}?table={t}&strategy={strategy}");
        earlier_table_is_brought_up_to_date(what, &url).await;
    }
    let mut cleanup = vec![
        format!("DROP TABLE {q}{t}{q}"),
        format!("DROP TABLE {q}{t}_holders{q}"),
    ];
    if q == '"' {
        // PostgreSQL's session strategy made its fencing sequence.
        cleanup.push(format!("DROP SEQUENCE IF EXISTS {q}{t}_fence{q}"));
    }
    for sql in cleanup {
        run(&sql).await;
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_table_of_an_earlier_version_gains_the_reader_columns() {
    let real = common::postgres_url();
    let pool = match sqlx::PgPool::connect(&real).await {
        Ok(p) => p,
        Err(e) => common::server_missing("PostgreSQL", &real, &e),
    };
    let create = "CREATE TABLE {q}{t}{q} (name text COLLATE \"C\" PRIMARY KEY, owner text, \
         fence bigint NOT NULL DEFAULT 0, expires_at timestamptz)";
    let run = async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    };
    server_table_of_an_earlier_version("postgres", &real, '"', &[create], run).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_table_from_before_labels_gains_the_label_columns() {
    let real = common::postgres_url();
    let pool = match sqlx::PgPool::connect(&real).await {
        Ok(p) => p,
        Err(e) => common::server_missing("PostgreSQL", &real, &e),
    };
    let create = [
        "CREATE TABLE {q}{t}{q} (name text COLLATE \"C\" PRIMARY KEY, owner text, \
         fence bigint NOT NULL DEFAULT 0, expires_at timestamptz, \
         shared_count bigint NOT NULL DEFAULT 0, shared_until timestamptz)",
        "CREATE TABLE {q}{t}_holders{q} (name text COLLATE \"C\" NOT NULL, owner text NOT NULL, \
         kind text NOT NULL, permits bigint NOT NULL DEFAULT 0, \
         expires_at timestamptz NOT NULL, PRIMARY KEY (name, owner, kind))",
    ];
    let run = async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    };
    server_table_of_an_earlier_version("postgres_unlabelled", &real, '"', &create, run).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_table_of_an_earlier_version_gains_the_reader_columns() {
    let real = common::mysql_url();
    let pool = match sqlx::MySqlPool::connect(&real).await {
        Ok(p) => p,
        Err(e) => common::server_missing("MariaDB", &real, &e),
    };
    let create = "CREATE TABLE {q}{t}{q} (name VARBINARY(255) NOT NULL PRIMARY KEY, \
         owner VARBINARY(32) NULL, fence BIGINT UNSIGNED NOT NULL DEFAULT 0, \
         expires_at DATETIME(6) NULL) ENGINE = InnoDB";
    let run = async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    };
    server_table_of_an_earlier_version("mariadb", &real, '`', &[create], run).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_table_from_before_labels_gains_the_label_columns() {
    let real = common::mysql_url();
    let pool = match sqlx::MySqlPool::connect(&real).await {
        Ok(p) => p,
        Err(e) => common::server_missing("MariaDB", &real, &e),
    };
    let create = [
        "CREATE TABLE {q}{t}{q} (name VARBINARY(255) NOT NULL PRIMARY KEY, \
         owner VARBINARY(32) NULL, fence BIGINT UNSIGNED NOT NULL DEFAULT 0, \
         expires_at DATETIME(6) NULL, shared_count BIGINT NOT NULL DEFAULT 0, \
         shared_until DATETIME(6) NULL) ENGINE = InnoDB",
        "CREATE TABLE {q}{t}_holders{q} (name VARBINARY(255) NOT NULL, \
         owner VARBINARY(32) NOT NULL, kind VARBINARY(1) NOT NULL, \
         permits BIGINT UNSIGNED NOT NULL DEFAULT 0, expires_at DATETIME(6) NOT NULL, \
         PRIMARY KEY (name, owner, kind)) ENGINE = InnoDB",
    ];
    let run = async |sql: &str| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    };
    server_table_of_an_earlier_version("mariadb_unlabelled", &real, '`', &create, run).await;
}
