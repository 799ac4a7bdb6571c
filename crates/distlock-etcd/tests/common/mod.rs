//! Shared test setup: where the cluster is and how to reach it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use distlock_etcd::{EtcdBackend, EtcdConfig};

/// The cluster's client endpoints (from `scripts/services.sh env`).
pub fn endpoints() -> Vec<String> {
    std::env::var("DISTLOCK_ETCD_ENDPOINTS")
        .unwrap_or_else(|_| {
            "http://127.0.0.1:12379,http://127.0.0.1:12381,http://127.0.0.1:12383".into()
        })
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The endpoints as socket addresses, for fault proxies in front of them.
pub fn endpoint_addrs() -> Vec<SocketAddr> {
    endpoints()
        .iter()
        .map(|e| {
            e.trim_start_matches("http://")
                .parse()
                .unwrap_or_else(|err| panic!("endpoint `{e}` is not host:port: {err}"))
        })
        .collect()
}

/// The session timeout (etcd lease ttl) the tests use: short, so abandoned
/// locks free fast.
pub const TEST_SESSION_TIMEOUT: Duration = Duration::from_secs(3);

/// A key prefix no other test run shares.
pub fn unique_prefix(tag: &str) -> String {
    format!("distlock-test/{tag}/{:016x}", rand::random::<u64>())
}

/// Settings for the shared cluster under `prefix`.
pub fn config(prefix: &str) -> EtcdConfig {
    EtcdConfig::new(endpoints())
        .with_prefix(prefix)
        .with_session_timeout(TEST_SESSION_TIMEOUT)
        .with_timeout(Duration::from_secs(3))
}

/// Connects, failing the test with a hint when the cluster is not running.
pub async fn connect(config: EtcdConfig) -> EtcdBackend {
    match EtcdBackend::from_config(config).await {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot reach the etcd cluster at {:?}: {e}\n\
             start the servers with scripts/services.sh up",
            endpoints()
        ),
    }
}

/// Whether this process is the child of a cross-process case: the suite
/// re-runs this binary with one of its `DISTLOCK_CONFORMANCE_CHILD_*`
/// variables set (each case has its own).
pub fn is_child_process() -> bool {
    std::env::vars_os().any(|(key, _)| {
        key.to_str()
            .is_some_and(|k| k.starts_with("DISTLOCK_CONFORMANCE_CHILD"))
    })
}
