//! The password-protected instance: credentials through the URL, clear
//! errors for wrong ones, and passwords never shown.

mod common;

use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockError, LockName};
use distlock_redis::{RedisBackend, RedlockBackend};

fn auth_addr() -> String {
    let url = std::env::var("DISTLOCK_REDIS_AUTH_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:16384".to_string());
    let rest = url
        .split_once("://")
        .map(|(_, r)| r.to_string())
        .unwrap_or(url);
    let rest = rest
        .rsplit_once('@')
        .map(|(_, h)| h.to_string())
        .unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or(&rest).to_string()
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn password() -> String {
    env_or("DISTLOCK_REDIS_AUTH_PASSWORD", "distlock-secret-pw")
}

fn acl_user() -> (String, String) {
    (
        env_or("DISTLOCK_REDIS_ACL_USER", "locker"),
        env_or("DISTLOCK_REDIS_ACL_PASSWORD", "locker-pw"),
    )
}

async fn require_up() {
    let addr = auth_addr();
    if tokio::net::TcpStream::connect(&addr).await.is_err() {
        panic!(
            "the password-protected redis at {addr} is not reachable; {}",
            common::START_SERVERS
        );
    }
}

async fn lock_and_unlock(backend: &dyn DistributedLock) {
    let name = LockName::new(format!("auth/{}", distlock_core::OwnerToken::random())).unwrap();
    let lease = backend
        .acquire(&name, &AcquireOptions::try_once(Duration::from_secs(5)))
        .await
        .expect("acquire with good credentials")
        .expect("free lock");
    backend.release(&lease).await.expect("release");
}

/// Asserts the error is a clear authentication failure that does not leak `secret`.
fn assert_auth_error(err: &LockError, secret: &str) {
    let shown = format!("{err} / {err:?}");
    let mut chain = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        chain.push_str(&format!("{s} / {s:?}"));
        source = s.source();
    }
    assert!(
        shown.to_lowercase().contains("authentication"),
        "not a clear authentication error: {err}"
    );
    assert!(!shown.contains(secret), "error output shows the password");
    assert!(!chain.contains(secret), "error source shows the password");
}

#[tokio::test]
async fn correct_password_works_and_is_never_shown() {
    require_up().await;
    let pw = password();
    let url = format!("redis://:{pw}@{}?prefix=auth-test:", auth_addr());
    let backend = RedisBackend::connect(&url)
        .await
        .expect("connect with the password");
    lock_and_unlock(&backend).await;
    assert!(
        !format!("{backend:?}").contains(&pw),
        "Debug shows the password"
    );
}

#[tokio::test]
async fn acl_user_works_and_is_never_shown() {
    require_up().await;
    let (user, pw) = acl_user();
    let url = format!("redis://{user}:{pw}@{}?prefix=auth-test:", auth_addr());
    let backend = RedisBackend::connect(&url)
        .await
        .expect("connect as the ACL user");
    lock_and_unlock(&backend).await;
    assert!(
        !format!("{backend:?}").contains(&pw),
        "Debug shows the password"
    );

    // The same credentials in a Redlock URL (one instance).
    let url = format!("redlock://{user}:{pw}@{}?prefix=auth-test:", auth_addr());
    let backend = RedlockBackend::connect(&url)
        .await
        .expect("redlock as the ACL user");
    lock_and_unlock(&backend).await;
    assert!(
        !format!("{backend:?}").contains(&pw),
        "Debug shows the password"
    );
}

#[tokio::test]
async fn wrong_password_is_a_clear_error_without_the_password() {
    require_up().await;
    let wrong = "not-the-right-pw-7f3a";
    let url = format!("redis://:{wrong}@{}", auth_addr());
    let err = RedisBackend::connect(&url).await.unwrap_err();
    assert_auth_error(&err, wrong);
    assert!(!matches!(err, LockError::Unavailable { .. }), "{err}");
    println!("wrong password: {err}");

    let (user, _) = acl_user();
    let url = format!("redis://{user}:{wrong}@{}", auth_addr());
    let err = RedisBackend::connect(&url).await.unwrap_err();
    assert_auth_error(&err, wrong);

    let url = format!("redlock://{user}:{wrong}@{}", auth_addr());
    let err = RedlockBackend::connect(&url).await.unwrap_err();
    assert_auth_error(&err, wrong);
}

#[tokio::test]
async fn missing_password_is_a_clear_error() {
    require_up().await;
    let url = format!("redis://{}", auth_addr());
    let err = RedisBackend::connect(&url).await.unwrap_err();
    assert_auth_error(&err, &password());
    println!("no password: {err}");
}

#[tokio::test]
async fn invalid_urls_do_not_show_the_password() {
    let secret = "hunter2-secret";
    for url in [
        format!("redis://:{secret}@127.0.0.1:notaport"),
        format!("redis://u:{secret}@127.0.0.1:1?bogus=1"),
        format!("redlock://u:{secret}@h1:1,,h2:2"),
    ] {
        let err = RedisBackend::connect(&url).await.unwrap_err();
        assert!(matches!(err, LockError::InvalidConfig { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains(secret));
    }
}
