//! Shared test plumbing: where the ensemble is and fresh backends on it.

#![allow(dead_code)]

use std::net::{SocketAddr, ToSocketAddrs};
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

/// The socket address of one `host:port` of [`hosts`].
pub fn addr(host: &str) -> SocketAddr {
    host.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("`{host}` is not a socket address"))
}

/// A prefix no other test run uses.
pub fn unique_root() -> String {
    format!("/distlock-test-{:016x}", rand::random::<u64>())
}

/// Settings for the test ensemble under `root` with a short session.
pub fn config(root: &str, session: Duration) -> ZkConfig {
    config_for(hosts(), root, session)
}

/// Settings for `hosts` (proxies, say) under `root` with a short session.
pub fn config_for(hosts: Vec<String>, root: &str, session: Duration) -> ZkConfig {
    ZkConfig::new(hosts)
        .with_prefix(root)
        .expect("valid prefix")
        .with_session_timeout(session)
}

/// A connected backend, or a clear failure when the ensemble is not up.
pub async fn connect(config: ZkConfig) -> ZkBackend {
    match ZkBackend::from_config(config.clone()).await {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot reach the ZooKeeper ensemble {:?} ({e}): start the servers with scripts/services.sh up",
            config.hosts()
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
