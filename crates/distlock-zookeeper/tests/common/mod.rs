//! Shared test plumbing: where the ensemble is and fresh backends on it.

#![allow(dead_code)]

use std::time::Duration;

use distlock_zookeeper::{ZkBackend, ZkConfig};

/// The ensemble's `host:port` list (DISTLOCK_ZK_HOSTS, else the services.sh default).
pub fn hosts() -> Vec<String> {
    std::env::var("DISTLOCK_ZK_HOSTS")
        .unwrap_or_else(|_| "127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183".to_string())
        .split(',')
        .map(str::to_string)
        .collect()
}

/// A root no other test run uses.
pub fn unique_root() -> String {
    format!("/distlock-test-{:016x}", rand::random::<u64>())
}

/// Settings for the test ensemble under `root` with a short session.
pub fn config(root: &str, session: Duration) -> ZkConfig {
    ZkConfig::new(hosts())
        .root(root)
        .expect("valid root")
        .session_timeout(session)
}

/// A connected backend, or a clear failure when the ensemble is not up.
pub async fn connect(config: ZkConfig) -> ZkBackend {
    match ZkBackend::connect_with(config.clone()).await {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot reach the ZooKeeper ensemble {:?} ({e}): start the servers with scripts/services.sh up",
            config.hosts()
        ),
    }
}
