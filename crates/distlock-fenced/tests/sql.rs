//! The SQL stores on SQLite, PostgreSQL and MySQL/MariaDB pass every case,
//! and the fenced update works on a table of one's own.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "mysql"))]

mod common;

use std::sync::Arc;

use distlock_fenced::sql::{fence_column_ddl, FenceDatabase, FencedUpdate, FENCE_COLUMN_TYPE};
use distlock_fenced::sqlx::{self, Database, Pool};
use distlock_fenced::{suite, FenceError, FencedStore, FencingToken, SqlStore};

#[tokio::test]
async fn sqlite_store_passes_every_case() {
    let store = common::sqlite_store().await;
    let report = suite::run(&store, &common::unique("suite")).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn postgres_store_passes_every_case() {
    let store = common::postgres_store().await;
    let report = suite::run(&store, &common::unique("suite")).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn mysql_store_passes_every_case() {
    let store = common::mysql_store().await;
    let report = suite::run(&store, &common::unique("suite")).await;
    assert!(report.passed(), "{report}");
}

/// One pool per writer: writers on separate connections.
async fn separate_writers<DB: FenceDatabase, F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SqlStore<DB>>,
{
    let mut stores: Vec<Arc<dyn FencedStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(open().await));
    }
    common::writers_on_separate_stores(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_separate_sqlite_connections_leave_the_highest_tokens_value() {
    separate_writers(common::sqlite_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_separate_postgres_connections_leave_the_highest_tokens_value() {
    separate_writers(common::postgres_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_separate_mysql_connections_leave_the_highest_tokens_value() {
    separate_writers(common::mysql_store).await;
}

/// A table of one's own: created without a fence column, given one by
/// `fence_column_ddl`, written through `FencedUpdate`.
async fn fenced_update_of_an_own_table<DB>(pool: Pool<DB>, id_type: &str)
where
    DB: FenceDatabase,
    for<'c> &'c mut <DB as Database>::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<<DB as Database>::Row>,
{
    let table = common::unique("fenced_accounts").replace('-', "_");
    let d = DB::DIALECT;
    let create = format!(
        "CREATE TABLE {table} (id {id_type} PRIMARY KEY, balance BIGINT NOT NULL, note TEXT)"
    );
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query::<DB>(&create)
        .execute(&mut *conn)
        .await
        .unwrap();
    let ddl = fence_column_ddl(d, &table).unwrap();
    sqlx::query::<DB>(&ddl).execute(&mut *conn).await.unwrap();
    for id in ["alice", "bob"] {
        let insert = format!("INSERT INTO {table} (id, balance) VALUES ('{id}', 100)");
        sqlx::query::<DB>(&insert)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let update = FencedUpdate::<DB>::new(&table, "id", &["balance", "note"]).unwrap();

    // The first token writes; an equal one writes again; a lower one is
    // refused with both tokens and changes nothing.
    update
        .execute(&mut conn, "alice", FencingToken(7), |q| {
            q.bind(150_i64).bind("seven")
        })
        .await
        .unwrap();
    update
        .execute(&mut conn, "alice", FencingToken(7), |q| {
            q.bind(175_i64).bind("seven again")
        })
        .await
        .unwrap();
    let refused = update
        .execute(&mut conn, "alice", FencingToken(6), |q| {
            q.bind(0_i64).bind("six")
        })
        .await
        .unwrap_err();
    let stale = refused.stale().unwrap_or_else(|| panic!("{refused}"));
    assert_eq!(
        (stale.offered, stale.recorded),
        (FencingToken(6), FencingToken(7))
    );
    // Rows are fenced separately: bob's row has recorded nothing yet.
    update
        .execute(&mut conn, "bob", FencingToken(3), |q| {
            q.bind(1_i64).bind("three")
        })
        .await
        .unwrap();
    let missing = update
        .execute(&mut conn, "carol", FencingToken(9), |q| {
            q.bind(1_i64).bind("nine")
        })
        .await
        .unwrap_err();
    assert!(matches!(missing, FenceError::NotFound { .. }), "{missing}");

    let select = format!("SELECT balance, fence FROM {table} ORDER BY id");
    let rows: Vec<(i64, i64)> = sqlx::query_as::<DB, (i64, i64)>(&select)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(rows, vec![(175, 7), (1, 3)]);
    let drop = format!("DROP TABLE {}", table);
    sqlx::query::<DB>(&drop).execute(&mut *conn).await.unwrap();
    assert!(update.sql().contains("<= "), "{}", update.sql());
}

#[tokio::test]
async fn fenced_update_of_an_own_sqlite_table() {
    fenced_update_of_an_own_table(common::sqlite_pool().await, "TEXT").await;
}

#[tokio::test]
async fn fenced_update_of_an_own_postgres_table() {
    fenced_update_of_an_own_table(common::postgres_pool().await, "text").await;
}

#[tokio::test]
async fn fenced_update_of_an_own_mysql_table() {
    fenced_update_of_an_own_table(common::mysql_pool().await, "VARCHAR(64)").await;
}

#[tokio::test]
async fn bad_names_and_tokens_are_clear_errors() {
    let store = common::sqlite_store().await;
    for bad in ["", "x y", "t;DROP TABLE t", "\"t\"", "t`"] {
        let err = store.clone().with_table(bad).unwrap_err();
        assert!(matches!(err, FenceError::InvalidInput { .. }), "{err}");
        assert!(FencedUpdate::<sqlx::Sqlite>::new(bad, "id", &["v"]).is_err());
        assert!(FencedUpdate::<sqlx::Sqlite>::new("t", bad, &["v"]).is_err());
        assert!(FencedUpdate::<sqlx::Sqlite>::new("t", "id", &[bad]).is_err());
        assert!(fence_column_ddl(distlock_fenced::sql::Dialect::Sqlite, bad).is_err());
    }
    assert!(FencedUpdate::<sqlx::Sqlite>::new("t", "id", &[]).is_err());
    assert!(FencedUpdate::<sqlx::Sqlite>::new("t", "id", &["fence"]).is_err());
    assert!(FencedUpdate::<sqlx::Sqlite>::new("t", "id", &["id"]).is_err());
    let r = common::unique("huge-token");
    let err = store
        .set(&r, FencingToken(u64::MAX), b"x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("above the largest"), "{err}");
    assert_eq!(store.read(&r).await.unwrap(), None);
    assert!(FENCE_COLUMN_TYPE.starts_with("BIGINT"));
}

#[tokio::test]
async fn cleared_resources_and_own_tables_on_postgres() {
    let store = common::postgres_store().await;
    let r = common::unique("clear");
    store.set(&r, FencingToken(5), b"a").await.unwrap();
    store.clear(&r).await.unwrap();
    assert_eq!(store.read(&r).await.unwrap(), None);
    store.set(&r, FencingToken(1), b"b").await.unwrap();
    // A second store on another table keeps its own tokens.
    let other = SqlStore::new(store.pool().clone())
        .with_table("distlock_fenced_test_other")
        .unwrap();
    other.create_table().await.unwrap();
    other.set(&r, FencingToken(1), b"c").await.unwrap();
    assert!(store
        .ddl()
        .contains("CREATE TABLE IF NOT EXISTS \"distlock_fenced_test\""));
    assert_eq!(store.store_name(), "postgres");
}
