//! The Redis store passes every case; fenced scripts of one's own run only
//! when the token passes; keys, errors and bad input.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use distlock_fenced::redis::client;
use distlock_fenced::{suite, FenceError, FencedScript, FencedStore, FencingToken, RedisStore};

/// A plain connection to the first instance, for looking at the keys.
async fn raw() -> client::aio::MultiplexedConnection {
    client::Client::open(common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(key: &str) -> Option<String> {
    client::cmd("GET")
        .arg(key)
        .query_async(&mut raw().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_store_passes_every_case() {
    let store = common::redis_store().await;
    let report = suite::run(&store, &common::unique("suite")).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_separate_redis_connections_leave_the_highest_tokens_value() {
    let mut stores: Vec<Arc<dyn FencedStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(common::redis_store().await));
    }
    common::writers_on_separate_stores(stores).await;
}

#[tokio::test]
async fn values_are_plain_redis_strings_under_a_shared_hash_tag() {
    let store = common::redis_store().await;
    let r = common::unique("tag {x} 100%");
    let escaped = r
        .replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D");
    assert_eq!(
        store.value_key(&r),
        format!("distlock:fenced:{{{escaped}}}")
    );
    assert_eq!(
        store.fence_key(&r),
        format!("{}:fence", store.value_key(&r))
    );
    // The seed's contribution amount: INCRBY on a plain string.
    assert_eq!(store.add(&r, FencingToken(4), 40).await.unwrap(), 40);
    assert_eq!(store.add(&r, FencingToken(4), 2).await.unwrap(), 42);
    assert_eq!(get(&store.value_key(&r)).await.as_deref(), Some("42"));
    assert_eq!(get(&store.fence_key(&r)).await.as_deref(), Some("4"));
    store.clear(&r).await.unwrap();
    assert_eq!(get(&store.value_key(&r)).await, None);
    assert_eq!(get(&store.fence_key(&r)).await, None);
    assert!(store.clone().with_prefix("bad{").is_err());
    let other = store.with_prefix("other:").unwrap();
    assert!(other.value_key(&r).starts_with("other:{"));
}

#[tokio::test]
async fn a_fenced_script_runs_only_when_the_token_passes() {
    let store = common::redis_store().await;
    let r = common::unique("script");
    let runs = format!("{}:runs", store.value_key(&r));
    let script = FencedScript::new(
        "redis.call('SET', KEYS[1], ARGV[1] .. ' by ' .. TOKEN)
         return redis.call('INCR', KEYS[2])",
    );
    let run = |token: u64, value: &'static str| {
        store
            .run(&script, &r, FencingToken(token))
            .key(runs.as_str())
            .arg(value)
            .invoke::<i64>()
    };
    assert_eq!(run(5, "first").await.unwrap(), 1);
    let refused = run(4, "stale").await.unwrap_err();
    let stale = refused.stale().unwrap_or_else(|| panic!("{refused}"));
    assert_eq!(
        (stale.offered, stale.recorded),
        (FencingToken(4), FencingToken(5))
    );
    // The refused script did not run: nothing changed.
    assert_eq!(get(&runs).await.as_deref(), Some("1"));
    let record = store.read(&r).await.unwrap().unwrap();
    assert_eq!(record.value, b"first by 5");
    assert_eq!(record.token, FencingToken(5));
    // The same token runs again; a higher one takes over.
    assert_eq!(run(5, "again").await.unwrap(), 2);
    assert_eq!(run(6, "newer").await.unwrap(), 3);
    assert!(run(5, "late").await.unwrap_err().is_stale());
    assert_eq!(get(&runs).await.as_deref(), Some("3"));
}

#[tokio::test]
async fn fenced_scripts_answer_nil_and_report_their_errors() {
    let store = common::redis_store().await;
    let r = common::unique("script-answers");
    let silent = FencedScript::new("redis.call('SET', KEYS[1], 'quiet')");
    let answer: Option<String> = store
        .run(&silent, &r, FencingToken(1))
        .invoke()
        .await
        .unwrap();
    assert_eq!(answer, None);
    let failing = FencedScript::new("error('deliberate failure')");
    let err = store
        .run(&failing, &r, FencingToken(1))
        .invoke::<Option<String>>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FenceError::Store { .. }) && err.to_string().contains("deliberate failure"),
        "{err}"
    );
    let broken = FencedScript::new("return (");
    let err = store
        .run(&broken, &r, FencingToken(1))
        .invoke::<Option<String>>()
        .await
        .unwrap_err();
    assert!(matches!(err, FenceError::Store { .. }), "{err}");
    let wrong_type = FencedScript::new("return 'text'");
    let err = store
        .run(&wrong_type, &r, FencingToken(1))
        .invoke::<i64>()
        .await
        .unwrap_err();
    assert!(matches!(err, FenceError::Store { .. }), "{err}");
}

#[tokio::test]
async fn a_fence_key_holding_anything_but_a_token_is_an_error() {
    let store = common::redis_store().await;
    let r = common::unique("corrupt");
    let _: () = client::cmd("SET")
        .arg(store.fence_key(&r))
        .arg("07")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    let _: () = client::cmd("SET")
        .arg(store.value_key(&r))
        .arg("v")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    let err = store.set(&r, FencingToken(9), b"x").await.unwrap_err();
    assert!(
        err.to_string().contains("does not hold a fencing token"),
        "{err}"
    );
    assert!(matches!(
        store.read(&r).await,
        Err(FenceError::Store { .. })
    ));
    assert_eq!(get(&store.value_key(&r)).await.as_deref(), Some("v"));
}

#[tokio::test]
async fn passwords_never_reach_errors_or_debug_output() {
    let secret = "fenced-secret-pw";
    let bad_url = format!("redis://:{secret}@127.0.0.1:notaport/0");
    let err = RedisStore::connect(&bad_url).await.unwrap_err();
    assert!(matches!(err, FenceError::InvalidInput { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    // The password-protected instance, with a wrong password.
    let (auth, _) = common::redis_auth();
    let address = auth.split_once("://").map_or(auth.as_str(), |(_, a)| a);
    let wrong = format!("redis://:{secret}@{address}");
    let err = RedisStore::connect(&wrong).await.unwrap_err();
    assert!(matches!(err, FenceError::Store { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    let client = client::Client::open(wrong.as_str()).unwrap();
    let store = RedisStore::new(client);
    assert!(!format!("{store:?}").contains(secret), "{store:?}");
}

#[tokio::test]
async fn the_right_password_works() {
    let (auth, password) = common::redis_auth();
    let address = auth.split_once("://").map_or(auth.as_str(), |(_, a)| a);
    let store = RedisStore::connect(&format!("redis://:{password}@{address}"))
        .await
        .unwrap();
    let r = common::unique("auth");
    assert_eq!(store.add(&r, FencingToken(1), 1).await.unwrap(), 1);
    assert!(!format!("{store:?}").contains(&password));
}

#[tokio::test]
async fn a_server_that_never_answers_is_an_error_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Accept connections and never answer.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = client::Client::open(format!("redis://{address}")).unwrap();
    let store = RedisStore::new(client).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = store.set("r", FencingToken(1), b"x").await.unwrap_err();
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}

#[tokio::test]
async fn tls_to_a_plain_server_is_an_error_not_a_panic() {
    let address = common::redis_url().replace("redis://", "rediss://");
    let store = RedisStore::open(&address)
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, FenceError::Store { .. }), "{err}");
}
