//! `distlock::connect` with TLS URLs: every network backend reached over TLS
//! with the test CA and client certificate of scripts/services.sh, and a
//! wrong CA refused, through the one facade.

use std::time::Duration;

use distlock::prelude::*;

fn setting(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// A file of the test PKI: `$var`, else where scripts/services.sh makes it.
fn tls_file(var: &str, name: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| format!("{}/target/services/tls/{name}", env!("CARGO_MANIFEST_DIR")))
}

/// `ca`, `cert` and `key` as URL parameters, with the CA in `ca_var`.
fn tls_params(ca_var: &str, ca_name: &str) -> String {
    format!(
        "ca={}&cert={}&key={}",
        tls_file(ca_var, ca_name),
        tls_file("DISTLOCK_TLS_CERT", "client.pem"),
        tls_file("DISTLOCK_TLS_KEY", "client.key")
    )
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?', ','])
        .next()
        .unwrap_or(rest)
        .to_string()
}

/// The TLS URL of every compiled-in network backend (with `params`).
fn tls_urls(params: &str) -> Vec<String> {
    let mut urls = Vec::new();
    if cfg!(feature = "redis") {
        let redis = setting("DISTLOCK_REDIS_TLS_URL", "rediss://127.0.0.1:16385");
        urls.push(format!("{redis}?prefix=facade-tls:&{params}"));
        urls.push(format!(
            "redlock://{}?tls=true&prefix=facade-tls:&{params}",
            host_of(&redis)
        ));
    }
    if cfg!(feature = "etcd") {
        let etcd = setting("DISTLOCK_ETCD_TLS_ENDPOINTS", "https://127.0.0.1:12385");
        urls.push(format!("etcd://{}/facade-tls?{params}", host_of(&etcd)));
    }
    if cfg!(feature = "zookeeper") {
        let zk = setting("DISTLOCK_ZK_TLS_HOSTS", "127.0.0.1:12184");
        urls.push(format!("zk://{zk}?prefix=/facade-tls&{params}"));
    }
    if cfg!(feature = "postgres") {
        let pg = setting(
            "DISTLOCK_POSTGRES_TLS_URL",
            "postgres://distlock:distlock-pw@127.0.0.1:15433/distlock",
        );
        urls.push(format!("{pg}?table=facade_tls&{params}"));
    }
    if cfg!(feature = "mysql") {
        let my = setting(
            "DISTLOCK_MYSQL_TLS_URL",
            "mysql://distlock:distlock-pw@127.0.0.1:13307/distlock",
        );
        urls.push(format!("{my}?table=facade_tls&{params}"));
    }
    urls
}

#[tokio::test]
async fn connect_speaks_tls_to_every_network_backend() {
    for url in tls_urls(&tls_params("DISTLOCK_TLS_CA", "ca.pem")) {
        let client = LockClient::connect(&url).await.unwrap_or_else(|e| {
            panic!("{url}: {e}; start the servers with scripts/services.sh up")
        });
        let guard = client
            .lock_with("facade-tls", &AcquireOptions::new(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn connect_refuses_servers_signed_by_another_ca() {
    for url in tls_urls(&tls_params("DISTLOCK_TLS_OTHER_CA", "other-ca.pem")) {
        let err = distlock::connect(&url).await.expect_err("wrong CA");
        let mut shown = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            shown.push_str(&format!(" / {s}"));
            source = s.source();
        }
        assert!(shown.contains("UnknownIssuer"), "{url}: {shown}");
        assert!(
            !shown.contains("distlock-pw"),
            "{url} shows the password: {shown}"
        );
    }
}
