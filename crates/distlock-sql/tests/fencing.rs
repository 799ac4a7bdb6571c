//! PostgreSQL's fencing tokens under the session strategy keep rising when
//! the fencing sequence falls back, as it does after a restart that lost its
//! last writes (a server without persistence, a replica promoted before it
//! had them): these tests do what such a restart does to one client — set
//! the sequence back and end every connection of the client — and show
//! that the next grant's token is above every earlier one, and that a
//! backend whose sessions do not set the sequence ahead of the clock when
//! they open (broken on purpose) would hand out lower ones.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_sql::{sqlx, SqlBackend, SqlConfig};

/// The sequence's first value (2^52): the lowest it can be set back to.
const SEQUENCE_START: i64 = 4_503_599_627_370_496;

/// A session-strategy backend on a table of its own (the test sets its
/// sequence back, which no other test may see).
/// Its connections carry the table's name as their `application_name`.
async fn backend(table: &str, broken: bool) -> SqlBackend {
    let url = common::with_params(
        &common::postgres_url(),
        &format!("strategy=session&table={table}&application_name={table}"),
    );
    let mut config = SqlConfig::from_url(&url).unwrap();
    if broken {
        config = config.with_sequence_tokens_broken_on_purpose();
    }
    match SqlBackend::from_config(config).await {
        Ok(b) => b,
        Err(e) => common::server_missing("PostgreSQL", &url, &e),
    }
}

/// Takes and gives back `name` `rounds` times, waiting as a waiting acquire
/// does (so both of the statements that draw tokens, the try and the wait,
/// run): the tokens, each checked to be above the one before.
async fn tokens(backend: &SqlBackend, name: &LockName, rounds: usize) -> Vec<u64> {
    let waiting =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(10)));
    let trying = AcquireOptions::try_once(Duration::from_secs(30));
    let mut out: Vec<u64> = Vec::new();
    for round in 0..rounds {
        let options = if round % 2 == 0 { &waiting } else { &trying };
        let lease = backend
            .acquire(name, options)
            .await
            .unwrap()
            .expect("a free lock is granted");
        let token = lease.fencing_token().get();
        if let Some(last) = out.last() {
            assert!(
                token > *last,
                "token {token} after {last}: tokens must rise"
            );
        }
        out.push(token);
        backend.release(&lease).await.unwrap();
    }
    out
}

/// Sets the backend's fencing sequence back to its start, as a restart that
/// lost its writes would.
async fn set_back(backend: &SqlBackend) {
    let pool = backend.postgres_pool().expect("a PostgreSQL backend");
    let sequence = format!("\"{}_fence\"", backend.config().table());
    let set: i64 = sqlx::query_scalar("SELECT setval($1::regclass, $2)")
        .bind(sequence)
        .bind(SEQUENCE_START)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(set, SEQUENCE_START);
}

/// Ends every connection of the backend on table `table` from the server's
/// side, as a restart does (other tests' connections live on): how many.
async fn end_connections(table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&common::postgres_url())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
         FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(table)
    .fetch_one(&pool)
    .await
    .unwrap()
}

/// The highest token of a burst of grants, and the first token after the
/// sequence was set back and the client's connections ended, as a restart
/// that lost the sequence's last writes would.
async fn before_and_after(broken: bool) -> (u64, u64) {
    let table = format!("fence_{}", common::unique().replace('-', "_"));
    let backend = backend(&table, broken).await;
    let name = LockName::new(format!("fencing/{}", common::unique())).unwrap();
    let before = tokens(&backend, &name, 40).await;
    set_back(&backend).await;
    let ended = end_connections(&table).await;
    assert!(ended >= 1, "the backend's session connection was ended");
    let after = tokens(&backend, &name, 1).await;
    common::drop_tables(&backend).await;
    let highest = before.iter().copied().max().unwrap_or(0);
    (highest, after[0])
}

#[tokio::test]
async fn tokens_keep_rising_when_the_sequence_falls_back() {
    let (highest, after) = before_and_after(false).await;
    assert!(
        after > highest,
        "after the sequence fell back the next token was {after}, not above {highest}"
    );
}

/// The test above would catch a backend whose tokens come from the
/// sequence alone: its next token falls with the sequence.
#[tokio::test]
async fn tokens_from_the_sequence_alone_fall_back_with_it() {
    let (highest, after) = before_and_after(true).await;
    assert!(
        after <= highest,
        "the sequence alone gave {after} after {highest}: the check above would not catch it"
    );
}
