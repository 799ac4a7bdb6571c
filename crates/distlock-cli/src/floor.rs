//! Raw floors: for each backend, the bare commands an expert would issue by
//! hand to take and give back a lock, with no fencing, no owner check on the
//! way in, no queue and no validity bookkeeping. The benchmark runs its
//! workloads against these to show what distlock's guarantees cost.
//!
//! A floor waits for a held lock by retrying with a short sleep, the way a
//! hand-written spin lock would.

use std::sync::Arc;

use crate::bench::Contender;

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
