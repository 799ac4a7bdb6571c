//! Settings shared by the Redis test files: where the servers are.
#![allow(dead_code)]

use std::sync::Arc;

use distlock_core::DistributedLock;
use distlock_redis::{RedisBackend, RedlockBackend};

pub const DEFAULT_URLS: &str = "redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381,redis://127.0.0.1:16382,redis://127.0.0.1:16383";
pub const START_SERVERS: &str = "start the servers with scripts/services.sh up";

/// `host:port` of each of the five independent instances.
pub fn instance_addrs() -> Vec<String> {
    let urls = std::env::var("DISTLOCK_REDIS_URLS").unwrap_or_else(|_| DEFAULT_URLS.to_string());
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
            rest.split(['/', '?']).next().unwrap_or(rest).to_string()
        })
        .collect()
}

pub fn single_url(prefix: &str) -> String {
    format!("redis://{}?prefix={prefix}", instance_addrs()[0])
}

pub fn redlock_url(addrs: &[String], prefix: &str) -> String {
    format!("redlock://{}?prefix={prefix}", addrs.join(","))
}

pub async fn single(prefix: &str) -> Arc<dyn DistributedLock> {
    let url = single_url(prefix);
    Arc::new(
        RedisBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach redis at {url}: {e}; {START_SERVERS}")),
    )
}

pub async fn redlock(addrs: &[String], prefix: &str) -> Arc<dyn DistributedLock> {
    let url = redlock_url(addrs, prefix);
    Arc::new(
        RedlockBackend::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach redis at {url}: {e}; {START_SERVERS}")),
    )
}

/// Fails (never skips) when an instance does not answer.
pub async fn require_all_up(addrs: &[String]) {
    for addr in addrs {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            panic!("redis instance {addr} is not reachable; {START_SERVERS}");
        }
    }
}
