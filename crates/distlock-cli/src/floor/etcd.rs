//! The etcd floor.

use std::sync::Arc;

use distlock::{BackendUrl, LockName, Mode};
use etcd_client::{Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnResponse};

use super::{addresses, etcd_modes, Floor, SPIN};
use crate::workload::{Contender, Primitive};

/// A key per lock: a put-if-absent transaction to take, a delete to give
/// back. Its semaphore and reader-writer floors are in [`etcd_modes`].
pub struct EtcdFloor {
    endpoints: Vec<String>,
    /// User and password from the URL's userinfo.
    credentials: Option<(String, String)>,
}

impl EtcdFloor {
    pub fn new(url: &BackendUrl) -> Result<Self, String> {
        let hosts = url.hosts().map_err(|e| e.to_string())?;
        let credentials = hosts.first().and_then(|h| {
            let user = h.user.clone()?;
            Some((user, h.password().unwrap_or_default().to_string()))
        });
        Ok(EtcdFloor {
            endpoints: addresses(url)?
                .into_iter()
                .map(|h| format!("http://{h}"))
                .collect(),
            credentials,
        })
    }
}

struct EtcdContender {
    client: etcd_client::Client,
}

#[distlock::async_trait]
impl Floor for EtcdFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        etcd_modes::recipe(primitive)
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        let options = self
            .credentials
            .as_ref()
            .map(|(user, password)| ConnectOptions::new().with_user(user, password));
        let client = etcd_client::Client::connect(&self.endpoints, options)
            .await
            .map_err(floor_error)?;
        if primitive != Primitive::Mutex {
            return Ok(etcd_modes::contender(client));
        }
        Ok(Arc::new(EtcdContender { client }))
    }
}

fn key(name: &LockName) -> String {
    format!("distlock-floor/{}", name.digest_hex())
}

/// An etcd client error, as the etcd floors report it.
pub(super) fn floor_error(e: etcd_client::Error) -> String {
    format!("etcd floor: {e}")
}

/// Runs `txn` on `client`'s connection: one round trip.
pub(super) async fn run_txn(client: &etcd_client::Client, txn: Txn) -> Result<TxnResponse, String> {
    client.kv_client().txn(txn).await.map_err(floor_error)
}

#[distlock::async_trait]
impl Contender for EtcdContender {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let key = key(name);
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), "held", None)]);
            if run_txn(&self.client, txn).await?.succeeded() {
                return Ok(());
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        self.client
            .kv_client()
            .delete(key(name), None)
            .await
            .map(|_| ())
            .map_err(floor_error)
    }
}
