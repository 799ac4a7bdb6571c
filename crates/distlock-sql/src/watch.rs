//! Change notices for observers: every notification heard about a key
//! (a labelled grant, a release) goes to every watcher of that key — not
//! to one, as a release goes to one waiter ([`notify`](crate::notify)).
//!
//! A watcher's notices coalesce: while one is pending, more add nothing
//! (a notice carries nothing; the observer reads the status again). When
//! notifications may have been missed (the listening connection dropped),
//! every watcher gets one.
// Only PostgreSQL notifies.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use distlock_core::sync::lock;
use distlock_core::ChangeNotices;
use futures::StreamExt;
use tokio::sync::mpsc;

/// The watchers of one backend's names, by key.
#[derive(Default)]
pub(crate) struct Watchers {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Per key, each watcher's channel by its id.
    keys: HashMap<Arc<str>, HashMap<u64, mpsc::Sender<()>>>,
}

impl Watchers {
    /// A new watcher of `key`: a stream of notices, in effect at once. It
    /// leaves the registry when dropped.
    pub fn watch(self: &Arc<Self>, key: &str) -> ChangeNotices {
        let (tx, rx) = mpsc::channel(1);
        let key: Arc<str> = Arc::from(key);
        let id = {
            let mut registry = lock(&self.registry);
            let id = registry.next_id;
            registry.next_id += 1;
            registry
                .keys
                .entry(Arc::clone(&key))
                .or_default()
                .insert(id, tx);
            id
        };
        let unwatch = Unwatch {
            watchers: Arc::clone(self),
            key,
            id,
        };
        futures::stream::unfold((rx, unwatch), |(mut rx, unwatch)| async move {
            rx.recv().await.map(|()| ((), (rx, unwatch)))
        })
        .boxed()
    }

    /// Something changed about `key`: a notice to each of its watchers.
    pub fn changed(&self, key: &str) {
        if let Some(watchers) = lock(&self.registry).keys.get(key) {
            for tx in watchers.values() {
                // Full: a notice is pending already, which says as much.
                let _ = tx.try_send(());
            }
        }
    }

    /// Notifications may have been missed: a notice to every watcher.
    pub fn missed(&self) {
        for watchers in lock(&self.registry).keys.values() {
            for tx in watchers.values() {
                let _ = tx.try_send(());
            }
        }
    }
}

/// Takes a watcher out of the registry when its stream is dropped.
struct Unwatch {
    watchers: Arc<Watchers>,
    key: Arc<str>,
    id: u64,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let mut registry = lock(&self.watchers.registry);
        if let Some(watchers) = registry.keys.get_mut(&self.key) {
            watchers.remove(&self.id);
            if watchers.is_empty() {
                registry.keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// Whether `notices` has a notice ready now.
    fn ready(notices: &mut ChangeNotices) -> bool {
        matches!(notices.next().now_or_never(), Some(Some(())))
    }

    #[tokio::test]
    async fn every_watcher_of_a_key_hears_its_changes_and_no_others() {
        let watchers = Arc::new(Watchers::default());
        let mut a = watchers.watch("k");
        let mut b = watchers.watch("k");
        let mut other = watchers.watch("other");
        watchers.changed("k");
        assert!(ready(&mut a) && ready(&mut b));
        assert!(!ready(&mut other));
        // Coalesced: two changes while one is pending make one notice.
        watchers.changed("k");
        watchers.changed("k");
        assert!(ready(&mut a));
        assert!(!ready(&mut a));
        watchers.missed();
        assert!(ready(&mut other));
    }

    #[tokio::test]
    async fn a_dropped_watcher_leaves_the_registry() {
        let watchers = Arc::new(Watchers::default());
        let a = watchers.watch("k");
        drop(a);
        assert!(lock(&watchers.registry).keys.is_empty());
    }
}
