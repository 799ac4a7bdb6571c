//! Raw floors: for each backend, the bare commands an expert would issue by
//! hand to take and give back a lock, with no fencing, no owner check on the
//! way in, no queue and no validity bookkeeping. The benchmark runs its
//! workloads against these to show what distlock's guarantees cost.
//!
//! The floor for a URL is picked by the registry's [`BackendKind`] for its
//! scheme. For the mutex, the registry's `floor` text says what it does; for
//! the semaphore and the reader-writer lock, each floor says it in
//! [`Floor::recipe`] (most keep a counter per name, the rule in [`counts`]).
//! A floor waits for a held lock by retrying with a short sleep, the way a
//! hand-written spin lock would.

use std::sync::Arc;

use distlock::registry::{self, BackendKind};
use distlock::BackendUrl;

use crate::workload::{Contender, Primitive};

mod counts;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
mod etcd_modes;
mod memory;
#[cfg(test)]
mod modes_tests;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_modes;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql_modes;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql_session;
#[cfg(feature = "zookeeper")]
mod zookeeper;
#[cfg(feature = "zookeeper")]
mod zookeeper_modes;

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
    /// What the floor does for the semaphore or the reader-writer lock, in
    /// one sentence; `None` when it has no floor for that primitive. (The
    /// mutex floor's recipe is the registry's, unless this names another.)
    fn recipe(&self, primitive: Primitive) -> Option<&'static str>;

    /// A new independent client of the floor (own connection) for
    /// `primitive`, one it has a recipe for.
    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String>;
}

/// A floor and what it does.
pub struct RawFloor {
    /// What the mutex floor does, from the registry.
    mutex_recipe: &'static str,
    /// The floor.
    floor: Box<dyn Floor>,
}

impl RawFloor {
    /// What the floor does for `primitive`; `None` when it has no floor for
    /// it.
    pub fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        match primitive {
            // A floor may name its own (the SQL session locks do).
            Primitive::Mutex => self.floor.recipe(primitive).or(Some(self.mutex_recipe)),
            Primitive::Semaphore | Primitive::ReadWrite => self.floor.recipe(primitive),
        }
    }

    /// A new independent client of the floor for `primitive`; `None` when
    /// it has no floor for it.
    pub async fn contender(
        &self,
        primitive: Primitive,
    ) -> Result<Option<Arc<dyn Contender>>, String> {
        match self.recipe(primitive) {
            Some(_) => self.floor.contender(primitive).await.map(Some),
            None => Ok(None),
        }
    }
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
        mutex_recipe: scheme.floor,
        floor,
    }))
}

/// `host:port` of every host in `url` (default ports from the registry).
#[cfg_attr(not(any(feature = "zookeeper", feature = "etcd")), allow(dead_code))]
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
    async fn memory_has_a_floor_and_its_recipe_for_every_primitive() {
        use distlock::Mode;
        let floor = for_url("memory://bench").await.unwrap().expect("a floor");
        assert_eq!(
            floor.recipe(Primitive::Mutex),
            Some(registry::lookup("memory").unwrap().floor)
        );
        let name = distlock::LockName::new("x").unwrap();
        for (primitive, mode) in [
            (Primitive::Mutex, Mode::Exclusive),
            (Primitive::Semaphore, Mode::Permit { limit: 2 }),
            (Primitive::ReadWrite, Mode::Shared),
            (Primitive::ReadWrite, Mode::Exclusive),
        ] {
            assert!(floor.recipe(primitive).is_some(), "{primitive:?}");
            let c = floor.contender(primitive).await.unwrap().expect("a client");
            c.take(&name, mode).await.unwrap();
            c.give_back(&name, mode).await.unwrap();
        }
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
