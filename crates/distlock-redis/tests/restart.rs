//! Fencing tokens never go backwards across instances that forget their
//! counters: private servers without persistence (`--save ""
//! --appendonly no`) are stopped with `SHUTDOWN NOSAVE` and started again
//! empty on the same port, and every token granted after is above every
//! token granted before — on one instance (fair and `fair=false`) and on
//! Redlock (every instance restarted, or a minority), in every mode, and on
//! a private Redis Cluster whose every primary restarts empty (rejoining
//! with its slots from `nodes.conf`), and on a primary found through a
//! private sentinel. The backend that issues tokens from
//! the counter alone must fail the same check.

mod private_redis;

use std::sync::Arc;
use std::time::Duration;

use distlock_core::{AcquireOptions, DistributedLock, LockName, Mode, OwnerToken};
use distlock_redis::{RedisBackend, RedisConfig, RedlockBackend};
use private_redis::cluster::PrivateCluster;
use private_redis::PrivateRedis;

const TTL: Duration = Duration::from_secs(30);
const PREFIX: &str = "restart:";
/// Every mode a name can be held in (a permit of two).
const MODES: [Mode; 3] = [Mode::Exclusive, Mode::Shared, Mode::Permit { limit: 2 }];

/// How the backend under test issues tokens.
#[derive(Clone, Copy)]
enum Tokens {
    /// As shipped: max(counter + 1, server clock in µs).
    Shipped,
    /// Purpose-broken: the counter alone.
    CounterOnly,
}

/// A backend of the URL, shipped or purpose-broken.
async fn connect(url: &str, tokens: Tokens) -> Arc<dyn DistributedLock> {
    let config = RedisConfig::from_url(url).unwrap();
    let redlock = config.redlock;
    let connected: distlock_core::Result<Arc<dyn DistributedLock>> = match (redlock, tokens) {
        (false, Tokens::Shipped) => RedisBackend::from_config(config)
            .await
            .map(|b| Arc::new(b) as _),
        (false, Tokens::CounterOnly) => RedisBackend::from_config_counter_only_tokens(config)
            .await
            .map(|b| Arc::new(b) as _),
        (true, Tokens::Shipped) => RedlockBackend::from_config(config)
            .await
            .map(|b| Arc::new(b) as _),
        (true, Tokens::CounterOnly) => RedlockBackend::from_config_counter_only_tokens(config)
            .await
            .map(|b| Arc::new(b) as _),
    };
    connected.unwrap_or_else(|e| panic!("cannot reach the private redis at {url}: {e}"))
}

/// One name per mode (each mode's script is then the first to issue a
/// token after the restart).
fn names() -> Vec<(Mode, LockName)> {
    MODES
        .iter()
        .map(|m| {
            let n = format!("restart/{}/{}", m, OwnerToken::random());
            (*m, LockName::new(n).unwrap())
        })
        .collect()
}

/// Takes and releases a hold of `n` in `mode`; its token.
async fn token(c: &Arc<dyn DistributedLock>, n: &LockName, mode: Mode) -> u64 {
    let lease = c
        .acquire_as(n, mode, &AcquireOptions::try_once(TTL))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("a {mode} hold of `{n}` was refused"));
    c.release(&lease).await.unwrap();
    lease.fencing_token().0
}

/// Takes a reader hold of `n` and upgrades it; the writer's token.
async fn upgraded_token(c: &Arc<dyn DistributedLock>, n: &LockName) -> u64 {
    let once = AcquireOptions::try_once(TTL);
    let reader = c.acquire_as(n, Mode::Shared, &once).await.unwrap().unwrap();
    let writer = c.upgrade(&reader, &once).await.unwrap().unwrap();
    c.release(&writer).await.unwrap();
    writer.fencing_token().0
}

/// The tokens of three grants of each name in its mode, by name.
async fn take_tokens(c: &Arc<dyn DistributedLock>, names: &[(Mode, LockName)]) -> Vec<Vec<u64>> {
    let mut all = Vec::new();
    for (mode, n) in names {
        let mut tokens = Vec::new();
        for _ in 0..3 {
            tokens.push(token(c, n, *mode).await);
        }
        all.push(tokens);
    }
    all
}

/// Ok when the first token of each name after the restart is above every
/// token of that name before it.
fn rose(names: &[(Mode, LockName)], before: &[Vec<u64>], after: &[Vec<u64>]) -> Result<(), String> {
    for (((mode, n), b), a) in names.iter().zip(before).zip(after) {
        let (highest, first) = (b.iter().max(), a.first());
        if first <= highest {
            return Err(format!(
                "{mode} `{n}`: token {first:?} after the restart, {highest:?} before"
            ));
        }
    }
    Ok(())
}

/// Tokens before and after every server restarts empty; the URL is built
/// from the servers' addresses.
async fn across_restart(
    servers: &mut [&mut PrivateRedis],
    url: &str,
    tokens: Tokens,
) -> Result<(), String> {
    let names = names();
    let c = connect(url, tokens).await;
    let before = take_tokens(&c, &names).await;
    drop(c);
    for s in servers.iter_mut() {
        s.shutdown_nosave().await;
        s.restart();
    }
    let c = connect(url, tokens).await;
    let after = take_tokens(&c, &names).await;
    rose(&names, &before, &after)
}

fn single_url(server: &PrivateRedis, fair: bool) -> String {
    format!("redis://{}?prefix={PREFIX}&fair={fair}", server.addr())
}

fn redlock_url(servers: &[PrivateRedis]) -> String {
    let addrs: Vec<String> = servers.iter().map(PrivateRedis::addr).collect();
    format!("redlock://{}?prefix={PREFIX}", addrs.join(","))
}

#[tokio::test]
async fn single_instance_tokens_rise_across_a_restart_without_persistence() {
    let mut server = PrivateRedis::start(&[]);
    for fair in [true, false] {
        let url = single_url(&server, fair);
        let outcome = across_restart(&mut [&mut server], &url, Tokens::Shipped).await;
        assert_eq!(outcome, Ok(()), "fair={fair}");
    }
}

#[tokio::test]
async fn an_upgrade_token_rises_across_a_restart_without_persistence() {
    let mut server = PrivateRedis::start(&[]);
    let n = LockName::new(format!("restart/upgrade/{}", OwnerToken::random())).unwrap();
    for fair in [true, false] {
        let url = single_url(&server, fair);
        let before = upgraded_token(&connect(&url, Tokens::Shipped).await, &n).await;
        server.shutdown_nosave().await;
        server.restart();
        let after = upgraded_token(&connect(&url, Tokens::Shipped).await, &n).await;
        assert!(
            after > before,
            "fair={fair}: {after} after, {before} before"
        );
    }
}

#[tokio::test]
async fn redlock_tokens_rise_when_every_instance_restarts_empty() {
    let mut servers: Vec<PrivateRedis> = (0..3).map(|_| PrivateRedis::start(&[])).collect();
    let url = redlock_url(&servers);
    let mut all: Vec<&mut PrivateRedis> = servers.iter_mut().collect();
    let outcome = across_restart(&mut all, &url, Tokens::Shipped).await;
    assert_eq!(outcome, Ok(()));
}

#[tokio::test]
async fn redlock_tokens_rise_when_a_minority_restarts_empty() {
    let mut servers: Vec<PrivateRedis> = (0..3).map(|_| PrivateRedis::start(&[])).collect();
    let url = redlock_url(&servers);
    let outcome = across_restart(&mut [&mut servers[0]], &url, Tokens::Shipped).await;
    assert_eq!(outcome, Ok(()));
}

#[tokio::test]
async fn counter_only_tokens_go_back_across_a_restart() {
    let mut server = PrivateRedis::start(&[]);
    let url = single_url(&server, false);
    let outcome = across_restart(&mut [&mut server], &url, Tokens::CounterOnly).await;
    assert!(
        outcome.is_err(),
        "counter-only tokens rose across a restart"
    );
}

#[tokio::test]
async fn counter_only_redlock_tokens_go_back_when_every_instance_restarts_empty() {
    let mut servers: Vec<PrivateRedis> = (0..3).map(|_| PrivateRedis::start(&[])).collect();
    let url = redlock_url(&servers);
    let mut all: Vec<&mut PrivateRedis> = servers.iter_mut().collect();
    let outcome = across_restart(&mut all, &url, Tokens::CounterOnly).await;
    assert!(
        outcome.is_err(),
        "counter-only Redlock tokens rose across a restart"
    );
}

/// Tokens before and after every primary of a private three-primary
/// cluster (no replicas) restarts empty, on names spread over its slots.
async fn across_cluster_restart(tokens: Tokens) -> Result<(), String> {
    let mut cluster = PrivateCluster::start(3, 0).await;
    let url = cluster.url(&format!("prefix={PREFIX}"));
    let names: Vec<(Mode, LockName)> = (0..4).flat_map(|_| names()).collect();
    let c = connect(&url, tokens).await;
    let before = take_tokens(&c, &names).await;
    drop(c);
    for node in &mut cluster.nodes {
        node.shutdown_nosave().await;
        node.restart();
    }
    cluster.wait_ok().await;
    let c = connect(&url, tokens).await;
    let after = take_tokens(&c, &names).await;
    rose(&names, &before, &after)
}

#[tokio::test]
async fn cluster_tokens_rise_when_every_primary_restarts_empty() {
    assert_eq!(across_cluster_restart(Tokens::Shipped).await, Ok(()));
}

#[tokio::test]
async fn counter_only_cluster_tokens_go_back_when_every_primary_restarts_empty() {
    assert!(
        across_cluster_restart(Tokens::CounterOnly).await.is_err(),
        "counter-only cluster tokens rose across a restart"
    );
}

/// Tokens before and after the primary a private sentinel names restarts
/// empty.
async fn across_sentinel_restart(tokens: Tokens) -> Result<(), String> {
    let mut primary = PrivateRedis::start(&[]);
    let sentinel = PrivateRedis::sentinel(&primary, "locks");
    let url = format!("redis+sentinel://{}/locks?prefix={PREFIX}", sentinel.addr());
    across_restart(&mut [&mut primary], &url, tokens).await
}

#[tokio::test]
async fn sentinel_tokens_rise_when_the_primary_restarts_empty() {
    assert_eq!(across_sentinel_restart(Tokens::Shipped).await, Ok(()));
}

#[tokio::test]
async fn counter_only_sentinel_tokens_go_back_when_the_primary_restarts_empty() {
    assert!(
        across_sentinel_restart(Tokens::CounterOnly).await.is_err(),
        "counter-only tokens rose across the primary's restart"
    );
}

/// The raw value of the fencing counter of `n` on the server at `addr`.
async fn counter(addr: &str, n: &LockName) -> String {
    let client = redis::Client::open(format!("redis://{addr}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(format!("{{{PREFIX}{n}}}:fence"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_counter_holds_the_token_as_an_exact_integer() {
    let server = PrivateRedis::start(&[]);
    let c = connect(&single_url(&server, false), Tokens::Shipped).await;
    for (mode, n) in names() {
        let t = token(&c, &n, mode).await;
        assert_eq!(counter(&server.addr(), &n).await, t.to_string(), "{mode}");
    }
}
