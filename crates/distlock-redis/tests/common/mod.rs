//! Settings shared by the Redis test files: where the servers are, and
//! clients of them (directly, or each instance behind its own fault proxy).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use distlock_conformance::{FaultProxy, ProxiedClient};
use distlock_core::DistributedLock;
use distlock_redis::{InstanceConfig, RedisBackend, RedlockBackend};

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
    single_at(&instance_addrs()[0], prefix).await
}

/// A single-instance client of the instance at `addr`.
pub async fn single_at(addr: &str, prefix: &str) -> Arc<dyn DistributedLock> {
    let url = format!("redis://{addr}?prefix={prefix}");
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

/// A connect-by-URL client of the one-instance backend (any of its
/// schemes), failing the test with `what` when it cannot connect.
pub async fn connected(url: &str, what: &str) -> Arc<dyn DistributedLock> {
    Arc::new(
        RedisBackend::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {what} {url}: {e}; {START_SERVERS}")),
    )
}

/// `host:port` addresses as instance settings.
pub fn instance_configs(addrs: &[String]) -> Vec<InstanceConfig> {
    addrs
        .iter()
        .map(|a| {
            let (host, port) = a
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("`{a}` is not host:port"));
            InstanceConfig::new(host, port.parse().unwrap_or_else(|e| panic!("`{a}`: {e}")))
        })
        .collect()
}

/// One fault proxy in front of each instance, in order.
pub async fn proxies_for(addrs: &[String]) -> Vec<FaultProxy> {
    let mut proxies = Vec::new();
    for a in addrs {
        let upstream: SocketAddr = a
            .parse()
            .unwrap_or_else(|e| panic!("`{a}` is not host:port: {e}"));
        let proxy = FaultProxy::start(upstream)
            .await
            .unwrap_or_else(|e| panic!("cannot start a fault proxy in front of {a}: {e}"));
        proxies.push(proxy);
    }
    proxies
}

/// The proxies' addresses, for a URL.
pub fn proxy_addrs(proxies: &[FaultProxy]) -> Vec<String> {
    proxies.iter().map(|p| p.addr().to_string()).collect()
}

/// A new single-instance client that reaches the instance through its own
/// fault proxy.
pub async fn proxied_single(prefix: &str) -> ProxiedClient {
    let proxies = proxies_for(&instance_addrs()[..1]).await;
    let client = single_at(&proxy_addrs(&proxies)[0], prefix).await;
    ProxiedClient { client, proxies }
}

/// A new Redlock client that reaches each of `addrs` through its own fault
/// proxy.
pub async fn proxied_redlock(addrs: &[String], prefix: &str) -> ProxiedClient {
    let proxies = proxies_for(addrs).await;
    let client = redlock(&proxy_addrs(&proxies), prefix).await;
    ProxiedClient { client, proxies }
}

/// Fails (never skips) when an instance does not answer.
pub async fn require_all_up(addrs: &[String]) {
    for addr in addrs {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            panic!("redis instance {addr} is not reachable; {START_SERVERS}");
        }
    }
}

/// Queues a waiter that never comes back on the instance at `addr`: ticket
/// 0 (first in line), its entry living 300 ms, asking for 30 s.
pub async fn plant_vanished_waiter(addr: &str, tag: &str) {
    let client = redis::Client::open(format!("redis://{addr}")).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    let ghost = "0".repeat(32);
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(format!("{tag}:queue"))
        .arg(0)
        .arg(&ghost)
        .ignore()
        .cmd("HSET")
        .arg(format!("{tag}:waiters"))
        .arg(&ghost)
        .arg(format!("{}:30000:x:", now_ms + 300))
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{tag}:queue"))
        .arg(5000)
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{tag}:waiters"))
        .arg(5000)
        .ignore()
        .query_async(&mut raw)
        .await
        .unwrap();
}
