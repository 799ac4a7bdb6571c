//! The ZooKeeper floor.

use std::sync::Arc;

use distlock::{BackendUrl, LockName, Mode};
use zookeeper_client as zk;

use super::{addresses, zookeeper_modes, Floor, SPIN};
use crate::workload::{Contender, Primitive};

/// An ephemeral node per lock: `create` to take, `delete` to give back.
/// Its semaphore and reader-writer floors are in [`zookeeper_modes`].
pub struct ZkFloor {
    cluster: String,
}

impl ZkFloor {
    pub fn new(url: &BackendUrl) -> Result<Self, String> {
        Ok(ZkFloor {
            cluster: addresses(url)?.join(","),
        })
    }
}

struct ZkContender {
    client: zk::Client,
}

const DIR: &str = "/distlock-floor";

#[distlock::async_trait]
impl Floor for ZkFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        zookeeper_modes::recipe(primitive)
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        let client = zk::Client::connect(&self.cluster)
            .await
            .map_err(|e| format!("zookeeper floor: {e}"))?;
        if primitive != Primitive::Mutex {
            return zookeeper_modes::contender(client).await;
        }
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
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let mode = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        loop {
            match self.client.create(&path(name), &[], &mode).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NodeExists) => tokio::time::sleep(SPIN).await,
                Err(e) => return Err(format!("zookeeper floor: {e}")),
            }
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.client
            .delete(&path(name), None)
            .await
            .map_err(|e| format!("zookeeper floor: {e}"))
    }
}
