//! The in-process floor.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock::sync::lock;
use distlock::{LockName, Mode};

use super::counts::{Count, Step};
use super::Floor;
use crate::workload::{Contender, Primitive};

/// How long a memory floor client waits before trying again.
const SPIN: Duration = Duration::from_micros(50);

/// The semaphore floor's recipe.
const SEMAPHORE: &str =
    "a mutex-guarded map of holder counts, counted up while below the permits, spinning while full";
/// The reader-writer floor's recipe.
const READ_WRITE: &str = "a mutex-guarded map of counters (readers up and down, the writer -1, a waiting writer's flag keeping new readers out), spinning while refused";

/// The least a lock can be: a set of held names (the mutex) and a map of
/// holder counts (semaphores and reader-writer locks), each behind a mutex.
#[derive(Default, Clone)]
pub struct MemoryFloor {
    held: Arc<Mutex<HashSet<LockName>>>,
    counts: Arc<Mutex<HashMap<LockName, Count>>>,
}

#[distlock::async_trait]
impl Floor for MemoryFloor {
    fn recipe(&self, primitive: Primitive) -> Option<&'static str> {
        match primitive {
            Primitive::Mutex => None,
            Primitive::Semaphore => Some(SEMAPHORE),
            Primitive::ReadWrite => Some(READ_WRITE),
        }
    }

    async fn contender(&self, primitive: Primitive) -> Result<Arc<dyn Contender>, String> {
        Ok(match primitive {
            Primitive::Mutex => Arc::new(MemoryMutex(self.held.clone())),
            Primitive::Semaphore | Primitive::ReadWrite => {
                Arc::new(MemoryCounts(self.counts.clone()))
            }
        })
    }
}

/// The mutex: insert into the set to take, remove to give back.
struct MemoryMutex(Arc<Mutex<HashSet<LockName>>>);

#[distlock::async_trait]
impl Contender for MemoryMutex {
    async fn take(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        loop {
            if lock(&self.0).insert(name.clone()) {
                return Ok(());
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        lock(&self.0).remove(name);
        Ok(())
    }
}

/// Semaphores and reader-writer locks: the [`Count`] rule on a map entry.
struct MemoryCounts(Arc<Mutex<HashMap<LockName, Count>>>);

#[distlock::async_trait]
impl Contender for MemoryCounts {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        loop {
            {
                let mut counts = lock(&self.0);
                let count = counts.entry(name.clone()).or_default();
                match count.take(mode) {
                    Step::Taken(next) => {
                        *count = next;
                        return Ok(());
                    }
                    Step::Refused(next) => *count = next,
                }
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let mut counts = lock(&self.0);
        if let Some(count) = counts.get_mut(name) {
            *count = count.give_back(mode);
            if count.is_idle() {
                counts.remove(name);
            }
        }
        Ok(())
    }
}
