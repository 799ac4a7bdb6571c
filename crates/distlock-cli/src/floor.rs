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
