//! The in-process floor.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock::sync::lock;
use distlock::LockName;

use super::Floor;
use crate::workload::Contender;

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
            if lock(&self.held).insert(name.clone()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
    }

    async fn give_back(&self, name: &LockName) -> Result<(), String> {
        lock(&self.held).remove(name);
        Ok(())
    }
}
