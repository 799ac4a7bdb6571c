//! The Redis floors: one instance, and Redlock's majority.

use std::sync::Arc;

use distlock::{percent_encode, BackendUrl, Host, LockName, Mode};

use super::{redis_modes, Floor, SPIN};
use crate::workload::{Contender, Primitive};

/// `SET NX PX` to take, a compare-and-delete script to give back: the
/// classic single-instance Redis lock. Its semaphore and reader-writer
/// floors are in [`redis_modes`].
pub struct RedisFloor {
    client: redis::Client,
}

impl RedisFloor {
    pub fn new(url: &str) -> Result<Self, String> {
        Ok(RedisFloor {
            client: redis::Client::open(url)
                .map_err(|e| format!("redis floor: {}", distlock::redact_url(&e.to_string())))?,
        })
    }
}

struct RedisContender {
    conn: redis::aio::MultiplexedConnection,
    token: String,
    release: redis::Script,
}

#[distlock::async_trait]
impl Floor for RedisFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        redis_modes::recipe(primitive)
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        if primitive != Primitive::Mutex {
            return redis_modes::contender(&self.client).await;
        }
        let conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("redis floor: {e}"))?;
        Ok(Arc::new(RedisContender {
            conn,
            token: format!("{:032x}", rand::random::<u128>()),
            release: redis::Script::new(RELEASE),
        }))
    }
}

fn key(name: &LockName) -> String {
    format!("distlock-floor:{}", &name.digest_hex()[..32])
}

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// `SET key token NX PX 30000` on one connection: true if taken.
async fn set_nx(
    conn: &redis::aio::MultiplexedConnection,
    key: &str,
    token: &str,
) -> Result<bool, String> {
    let mut conn = conn.clone();
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("redis floor: {e}"))?;
    Ok(set.is_some())
}

/// Compare-and-delete on one connection.
async fn compare_and_delete(
    conn: &redis::aio::MultiplexedConnection,
    script: &redis::Script,
    key: &str,
    token: &str,
) -> Result<(), String> {
    let mut conn = conn.clone();
    let _: i64 = script
        .key(key)
        .arg(token)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| format!("redis floor: {e}"))?;
    Ok(())
}

#[distlock::async_trait]
impl Contender for RedisContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let key = key(name);
        while !set_nx(&self.conn, &key, &self.token).await? {
            tokio::time::sleep(SPIN).await;
        }
        Ok(())
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        compare_and_delete(&self.conn, &self.release, &key(name), &self.token).await
    }
}

/// The same two commands on every instance at once, taken when a majority
/// said yes; a minority hold is given back before trying again. Its
/// semaphore and reader-writer floors are the single-instance ones on the
/// first instance.
pub struct RedlockFloor {
    clients: Vec<redis::Client>,
}

impl RedlockFloor {
    pub fn new(url: &BackendUrl) -> Result<Self, String> {
        let clients = url
            .hosts()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| redis::Client::open(instance_url(h)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("redlock floor: {}", distlock::redact_url(&e.to_string())))?;
        Ok(RedlockFloor { clients })
    }
}

/// `redis://[user[:password]@]host:port` for one Redlock instance.
fn instance_url(host: &Host) -> String {
    let user = host.user.as_deref().map(percent_encode).unwrap_or_default();
    let userinfo = match host.password() {
        Some(pw) => format!("{user}:{}@", percent_encode(pw)),
        None if !user.is_empty() => format!("{user}@"),
        None => String::new(),
    };
    format!("redis://{userinfo}{}", host.address())
}

struct RedlockContender {
    conns: Vec<redis::aio::MultiplexedConnection>,
    token: String,
    release: redis::Script,
}

#[distlock::async_trait]
impl Floor for RedlockFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        redis_modes::redlock_recipe(primitive)
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        if primitive != Primitive::Mutex {
            let first = self.clients.first().ok_or("redlock floor: no instance")?;
            return redis_modes::contender(first).await;
        }
        let mut conns = Vec::new();
        for c in &self.clients {
            conns.push(
                c.get_multiplexed_async_connection()
                    .await
                    .map_err(|e| format!("redlock floor: {e}"))?,
            );
        }
        Ok(Arc::new(RedlockContender {
            conns,
            token: format!("{:032x}", rand::random::<u128>()),
            release: redis::Script::new(RELEASE),
        }))
    }
}

impl RedlockContender {
    async fn release_all(&self, key: &str) -> Result<(), String> {
        let all = self
            .conns
            .iter()
            .map(|c| compare_and_delete(c, &self.release, key, &self.token));
        for r in futures::future::join_all(all).await {
            r?;
        }
        Ok(())
    }
}

#[distlock::async_trait]
impl Contender for RedlockContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let key = key(name);
        let quorum = self.conns.len() / 2 + 1;
        loop {
            let all = self.conns.iter().map(|c| set_nx(c, &key, &self.token));
            let granted = futures::future::join_all(all)
                .await
                .into_iter()
                .filter(|r| matches!(r, Ok(true)))
                .count();
            if granted >= quorum {
                return Ok(());
            }
            if granted > 0 {
                self.release_all(&key).await?;
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.release_all(&key(name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_keep_credentials_and_default_ports() {
        let url = BackendUrl::parse("redlock://:p%40ss@h1,h2:7000").unwrap();
        let hosts = url.hosts().unwrap();
        assert_eq!(instance_url(&hosts[0]), "redis://:p%40ss@h1:6379");
        assert_eq!(instance_url(&hosts[1]), "redis://:p%40ss@h2:7000");
    }
}
