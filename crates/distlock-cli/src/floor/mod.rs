//! Raw floors: for each backend, the bare commands an expert would issue by
//! hand to take and give back a lock, with no fencing, no owner check on the
//! way in, no queue and no validity bookkeeping. The benchmark runs its
//! workloads against these to show what distlock's guarantees cost.
//!
//! The floor for a URL is picked by the registry's [`BackendKind`] for its
//! scheme, and the registry's `floor` text says what it does. A floor waits
//! for a held lock by retrying with a short sleep, the way a hand-written
//! spin lock would.

use std::sync::Arc;

use distlock::registry::{self, BackendKind};
use distlock::BackendUrl;

use crate::workload::Contender;

#[cfg(feature = "etcd")]
mod etcd;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "zookeeper")]
mod zookeeper;

/// How long a floor client sleeps before trying a held lock again.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis",
        feature = "zookeeper",
        feature = "etcd"
    )),
    allow(dead_code)
)]
const SPIN: std::time::Duration = std::time::Duration::from_millis(1);

/// A backend's raw floor.
#[distlock::async_trait]
pub trait Floor: Send + Sync {
    /// A new independent client of the floor (own connection).
    async fn contender(&self) -> Result<Arc<dyn Contender>, String>;
}

/// A floor and what it does.
pub struct RawFloor {
    /// What the floor does, from the registry.
    pub recipe: &'static str,
    /// The floor.
    pub floor: Box<dyn Floor>,
}

/// The floor for `url`'s backend, if it has one compiled in.
pub async fn for_url(url: &str) -> Result<Option<RawFloor>, String> {
    let parsed = BackendUrl::parse(url).map_err(|e| e.to_string())?;
    let Some(scheme) = registry::lookup(parsed.scheme()) else {
        return Ok(None);
    };
    let floor: Box<dyn Floor> = match scheme.kind {
        BackendKind::Memory => Box::new(memory::MemoryFloor::default()),
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => Box::new(sql::SqlFloor::connect(url, scheme.kind).await?),
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => Box::new(sql::SqlFloor::connect(url, scheme.kind).await?),
        #[cfg(feature = "mysql")]
        BackendKind::MySql => Box::new(sql::SqlFloor::connect(url, scheme.kind).await?),
        #[cfg(feature = "redis")]
        BackendKind::Redis => Box::new(redis::RedisFloor::new(url)?),
        #[cfg(feature = "redis")]
        BackendKind::Redlock => Box::new(redis::RedlockFloor::new(&parsed)?),
        #[cfg(feature = "zookeeper")]
        BackendKind::ZooKeeper => Box::new(zookeeper::ZkFloor::new(&parsed)?),
        #[cfg(feature = "etcd")]
        BackendKind::Etcd => Box::new(etcd::EtcdFloor::new(&parsed)?),
        _ => return Ok(None),
    };
    Ok(Some(RawFloor {
        recipe: scheme.floor,
        floor,
    }))
}

/// `host:port` of every host in `url` (default ports from the registry).
#[cfg_attr(
    not(any(feature = "redis", feature = "zookeeper", feature = "etcd")),
    allow(dead_code)
)]
fn addresses(url: &BackendUrl) -> Result<Vec<String>, String> {
    Ok(url
        .hosts()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.address())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_has_a_floor_and_its_recipe() {
        let floor = for_url("memory://bench").await.unwrap().expect("a floor");
        assert_eq!(floor.recipe, registry::lookup("memory").unwrap().floor);
        let c = floor.floor.contender().await.unwrap();
        let name = distlock::LockName::new("x").unwrap();
        c.take(&name).await.unwrap();
        c.give_back(&name).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_schemes_have_no_floor_and_garbage_is_an_error() {
        assert!(for_url("gopher://h").await.unwrap().is_none());
        assert!(for_url("no url").await.is_err());
    }

    #[test]
    fn addresses_get_default_ports() {
        let url = BackendUrl::parse("redlock://u:pw@h1,h2:7000,[::1]").unwrap();
        assert_eq!(
            addresses(&url).unwrap(),
            ["h1:6379", "h2:7000", "[::1]:6379"]
        );
    }
}
