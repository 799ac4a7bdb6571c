//! The Redis store over TLS, against the TLS instance of scripts/services.sh
//! (client certificates required): fenced writes with the test CA and a
//! client certificate; a wrong CA and a missing client certificate are
//! refused, without the password or the key in the error.
#![cfg(feature = "redis")]

use distlock_conformance::tls::{chain, key_material, setting, tls_file};
use distlock_fenced::{FenceError, FencedStore, FencingToken, RedisStore};

/// The TLS instance's URL and the client certificate, with `ca`.
fn url(ca: &str) -> String {
    let base = setting("DISTLOCK_REDIS_TLS_URL", || {
        "rediss://127.0.0.1:16385".into()
    });
    format!(
        "{base}?ca={ca}&cert={}&key={}",
        tls_file("DISTLOCK_TLS_CERT", "client.pem"),
        tls_file("DISTLOCK_TLS_KEY", "client.key")
    )
}

#[tokio::test]
async fn fenced_writes_over_tls() {
    let ca = tls_file("DISTLOCK_TLS_CA", "ca.pem");
    let store = RedisStore::connect(&url(&ca)).await.unwrap_or_else(|e| {
        panic!("TLS store: {e}; start the servers with scripts/services.sh up")
    });
    let resource = format!("tls-{}", distlock_core::OwnerToken::random());
    assert_eq!(store.add(&resource, FencingToken(5), 2).await.unwrap(), 2);
    let stale = store.add(&resource, FencingToken(4), 1).await.unwrap_err();
    assert!(matches!(stale, FenceError::Stale(_)), "{stale}");
    assert!(!format!("{store:?}").contains(&key_material()));
}

#[tokio::test]
async fn a_wrong_ca_or_no_client_certificate_is_refused() {
    let other = tls_file("DISTLOCK_TLS_OTHER_CA", "other-ca.pem");
    let with_password = url(&other).replacen("://", "://:hunter2-tls@", 1);
    let err = RedisStore::connect(&with_password).await.unwrap_err();
    let shown = chain(&err);
    assert!(
        shown.contains("UnknownIssuer"),
        "not a clear certificate error: {shown}"
    );
    assert!(
        !shown.contains("hunter2-tls"),
        "shows the password: {shown}"
    );
    assert!(!shown.contains(&key_material()), "shows the key: {shown}");

    let base = setting("DISTLOCK_REDIS_TLS_URL", || {
        "rediss://127.0.0.1:16385".into()
    });
    let ca = tls_file("DISTLOCK_TLS_CA", "ca.pem");
    let err = RedisStore::connect(&format!("{base}?ca={ca}"))
        .await
        .unwrap_err();
    assert!(chain(&err).contains("Certificate"), "{}", chain(&err));

    let err = RedisStore::open(&format!("{base}?cert={ca}")).unwrap_err();
    assert!(matches!(err, FenceError::InvalidInput { .. }), "{err}");
}
