//! Raw floors: for each backend, the bare commands an expert would issue by
//! hand to take and give back a lock, with no fencing, no owner check on the
//! way in, no queue and no validity bookkeeping. The benchmark runs its
//! workloads against these to show what distlock's guarantees cost.
//!
//! A floor waits for a held lock by retrying with a short sleep, the way a
//! hand-written spin lock would.

use std::sync::Arc;

use crate::bench::Contender;

/// How long a floor client sleeps before trying a held lock again.
const SPIN: std::time::Duration = std::time::Duration::from_millis(1);

/// The hosts of a `scheme://h1:p1,h2:p2/…?…` URL (credentials dropped).
fn hosts_of(url: &str) -> Result<Vec<String>, String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("`{}` is not a URL", distlock::redact_url(url)))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hosts: Vec<String> = authority
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    if hosts.is_empty() {
        return Err(format!("`{}` names no host", distlock::redact_url(url)));
    }
    Ok(hosts)
}

/// A backend's raw floor.
#[distlock::async_trait]
pub trait Floor: Send + Sync {
    /// A new independent client of the floor (own connection).
    async fn contender(&self) -> Result<Arc<dyn Contender>, String>;
}

/// The floor for `url`'s backend, if it has one.
pub async fn for_url(url: &str) -> Result<Option<Box<dyn Floor>>, String> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => Ok(Some(Box::new(memory::MemoryFloor::default()))),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Some(Box::new(sql::SqlFloor::connect(url).await?))),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Some(Box::new(sql::SqlFloor::connect(url).await?))),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(Some(Box::new(sql::SqlFloor::connect(url).await?))),
        #[cfg(feature = "redis")]
        "redis" => Ok(Some(Box::new(redis_floor::RedisFloor::new(url)?))),
        #[cfg(feature = "redis")]
        "redlock" => Ok(Some(Box::new(redis_floor::RedlockFloor::new(url)?))),
        #[cfg(feature = "zookeeper")]
        "zk" | "zookeeper" => Ok(Some(Box::new(zookeeper::ZkFloor::new(url)?))),
        #[cfg(feature = "etcd")]
        "etcd" => Ok(Some(Box::new(etcd::EtcdFloor::new(url)?))),
        _ => Ok(None),
    }
}

mod memory {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use distlock::LockName;

    use super::Floor;
    use crate::bench::Contender;

    /// A set of held names behind a mutex: the least a lock can be.
    #[derive(Default, Clone)]
    pub struct MemoryFloor {
        held: Arc<Mutex<HashSet<LockName>>>,
    }

    #[distlock::async_trait]
    impl Floor for MemoryFloor {
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
            Ok(Arc::new(self.clone()))
        }
    }

    #[distlock::async_trait]
    impl Contender for MemoryFloor {
        async fn take(&self, name: &LockName) -> Result<(), String> {
            loop {
                if self
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone())
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
        }

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            Ok(())
        }
    }
}

#[cfg(feature = "zookeeper")]
mod zookeeper {
    use std::sync::Arc;

    use distlock::LockName;
    use zookeeper_client as zk;

    use super::{hosts_of, Floor, SPIN};
    use crate::bench::Contender;

    /// An ephemeral node per lock: `create` to take, `delete` to give back.
    pub struct ZkFloor {
        cluster: String,
    }

    impl ZkFloor {
        pub fn new(url: &str) -> Result<Self, String> {
            Ok(ZkFloor {
                cluster: hosts_of(url)?.join(","),
            })
        }
    }

    struct ZkContender {
        client: zk::Client,
    }

    const DIR: &str = "/distlock-floor";

    #[distlock::async_trait]
    impl Floor for ZkFloor {
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
            let client = zk::Client::connect(&self.cluster)
                .await
                .map_err(|e| format!("zookeeper floor: {e}"))?;
            let mode = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            match client.create(DIR, &[], &mode).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(format!("zookeeper floor: {e}")),
            }
            Ok(Arc::new(ZkContender { client }))
        }
    }

    fn path(name: &LockName) -> String {
        format!("{DIR}/{}", name.digest_hex())
    }

    #[distlock::async_trait]
    impl Contender for ZkContender {
        async fn take(&self, name: &LockName) -> Result<(), String> {
            let mode = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
            loop {
                match self.client.create(&path(name), &[], &mode).await {
                    Ok(_) => return Ok(()),
                    Err(zk::Error::NodeExists) => tokio::time::sleep(SPIN).await,
                    Err(e) => return Err(format!("zookeeper floor: {e}")),
                }
            }
        }

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            self.client
                .delete(&path(name), None)
                .await
                .map_err(|e| format!("zookeeper floor: {e}"))
        }
    }
}

#[cfg(feature = "etcd")]
mod etcd {
    use std::sync::Arc;

    use distlock::LockName;
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};

    use super::{hosts_of, Floor, SPIN};
    use crate::bench::Contender;

    /// A key per lock: a put-if-absent transaction to take, a delete to give back.
    pub struct EtcdFloor {
        endpoints: Vec<String>,
    }

    impl EtcdFloor {
        pub fn new(url: &str) -> Result<Self, String> {
            Ok(EtcdFloor {
                endpoints: hosts_of(url)?
                    .into_iter()
                    .map(|h| format!("http://{h}"))
                    .collect(),
            })
        }
    }

    struct EtcdContender {
        client: etcd_client::Client,
    }

    #[distlock::async_trait]
    impl Floor for EtcdFloor {
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
            let client = etcd_client::Client::connect(&self.endpoints, None)
                .await
                .map_err(|e| format!("etcd floor: {e}"))?;
            Ok(Arc::new(EtcdContender { client }))
        }
    }

    fn key(name: &LockName) -> String {
        format!("distlock-floor/{}", name.digest_hex())
    }

    #[distlock::async_trait]
    impl Contender for EtcdContender {
        async fn take(&self, name: &LockName) -> Result<(), String> {
            let key = key(name);
            loop {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.as_str(), "held", None)]);
                let resp = self
                    .client
                    .kv_client()
                    .txn(txn)
                    .await
                    .map_err(|e| format!("etcd floor: {e}"))?;
                if resp.succeeded() {
                    return Ok(());
                }
                tokio::time::sleep(SPIN).await;
            }
        }

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            self.client
                .kv_client()
                .delete(key(name), None)
                .await
                .map(|_| ())
                .map_err(|e| format!("etcd floor: {e}"))
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql {
    use std::sync::Arc;

    use distlock::LockName;
    use sqlx::AnyPool;

    use super::{Floor, SPIN};
    use crate::bench::Contender;

    /// A row per held lock: an insert that does nothing when the row exists
    /// to take, a delete to give back.
    pub struct SqlFloor {
        url: String,
        insert: &'static str,
        delete: &'static str,
    }

    impl SqlFloor {
        pub async fn connect(url: &str) -> Result<Self, String> {
            sqlx::any::install_default_drivers();
            let scheme = url.split(':').next().unwrap_or("");
            // Connection URLs as sqlx expects them.
            let url = match scheme {
                "postgresql" => url.replacen("postgresql", "postgres", 1),
                "mariadb" => url.replacen("mariadb", "mysql", 1),
                "sqlite" if !url.contains("mode=") => {
                    format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
                }
                _ => url.to_string(),
            };
            let (create, insert, delete) = match scheme {
                "sqlite" => (
                    "CREATE TABLE IF NOT EXISTS distlock_floor (name TEXT PRIMARY KEY)",
                    "INSERT INTO distlock_floor (name) VALUES ($1) ON CONFLICT DO NOTHING",
                    "DELETE FROM distlock_floor WHERE name = $1",
                ),
                "mysql" | "mariadb" => (
                    "CREATE TABLE IF NOT EXISTS distlock_floor (name VARCHAR(64) PRIMARY KEY)",
                    "INSERT IGNORE INTO distlock_floor (name) VALUES (?)",
                    "DELETE FROM distlock_floor WHERE name = ?",
                ),
                _ => (
                    "CREATE TABLE IF NOT EXISTS distlock_floor (name TEXT PRIMARY KEY)",
                    "INSERT INTO distlock_floor (name) VALUES ($1) ON CONFLICT DO NOTHING",
                    "DELETE FROM distlock_floor WHERE name = $1",
                ),
            };
            let pool = AnyPool::connect(&url)
                .await
                .map_err(|e| format!("sql floor: {e}"))?;
            sqlx::query(create)
                .execute(&pool)
                .await
                .map_err(|e| format!("sql floor: {e}"))?;
            Ok(SqlFloor {
                url,
                insert,
                delete,
            })
        }
    }

    struct SqlContender {
        pool: AnyPool,
        insert: &'static str,
        delete: &'static str,
    }

    #[distlock::async_trait]
    impl Floor for SqlFloor {
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(2)
                .connect(&self.url)
                .await
                .map_err(|e| format!("sql floor: {e}"))?;
            Ok(Arc::new(SqlContender {
                pool,
                insert: self.insert,
                delete: self.delete,
            }))
        }
    }

    #[distlock::async_trait]
    impl Contender for SqlContender {
        async fn take(&self, name: &LockName) -> Result<(), String> {
            let key = &name.digest_hex()[..32];
            loop {
                match sqlx::query(self.insert).bind(key).execute(&self.pool).await {
                    Ok(done) if done.rows_affected() == 1 => return Ok(()),
                    Ok(_) => {}
                    // A deadlock or serialization failure under contention
                    // (MySQL 1213, SQLSTATE 40001): not taken, try again.
                    Err(sqlx::Error::Database(e))
                        if e.code().is_some_and(|c| c == "40001" || c == "1213") => {}
                    Err(e) => return Err(format!("sql floor: {e}")),
                }
                tokio::time::sleep(SPIN).await;
            }
        }

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            sqlx::query(self.delete)
                .bind(&name.digest_hex()[..32])
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| format!("sql floor: {e}"))
        }
    }
}

#[cfg(feature = "redis")]
mod redis_floor {
    use std::sync::Arc;

    use distlock::LockName;

    use super::{Floor, SPIN};
    use crate::bench::Contender;

    /// `SET NX PX` to take, a compare-and-delete script to give back: the
    /// classic single-instance Redis lock.
    pub struct RedisFloor {
        client: redis::Client,
    }

    impl RedisFloor {
        pub fn new(url: &str) -> Result<Self, String> {
            Ok(RedisFloor {
                client: redis::Client::open(url).map_err(|e| {
                    format!("redis floor: {}", distlock::redact_url(&e.to_string()))
                })?,
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
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
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
        async fn take(&self, name: &LockName) -> Result<(), String> {
            let key = key(name);
            while !set_nx(&self.conn, &key, &self.token).await? {
                tokio::time::sleep(SPIN).await;
            }
            Ok(())
        }

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            compare_and_delete(&self.conn, &self.release, &key(name), &self.token).await
        }
    }

    /// The same two commands on every instance at once, taken when a majority
    /// said yes; a minority hold is given back before trying again.
    pub struct RedlockFloor {
        clients: Vec<redis::Client>,
    }

    impl RedlockFloor {
        pub fn new(url: &str) -> Result<Self, String> {
            let clients = super::hosts_of(url)?
                .into_iter()
                .map(|h| redis::Client::open(format!("redis://{h}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("redlock floor: {e}"))?;
            Ok(RedlockFloor { clients })
        }
    }

    struct RedlockContender {
        conns: Vec<redis::aio::MultiplexedConnection>,
        token: String,
        release: redis::Script,
    }

    #[distlock::async_trait]
    impl Floor for RedlockFloor {
        async fn contender(&self) -> Result<Arc<dyn Contender>, String> {
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
        async fn take(&self, name: &LockName) -> Result<(), String> {
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

        async fn give_back(&self, name: &LockName) -> Result<(), String> {
            self.release_all(&key(name)).await
        }
    }
}
