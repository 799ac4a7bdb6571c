//! The in-memory model of a fenced store: the whole contract in a few
//! lines, for tests and for processes that keep the protected value
//! themselves.
//!
//! Every other store is held to what this one does (the same
//! [`suite`](crate::suite) runs against all of them). It lives in one
//! process: holders in other processes cannot reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use distlock_core::sync::lock;
use distlock_core::FencingToken;

use crate::error::{check_resource, counter_of};
use crate::{FenceError, FencedStore, Record};

/// A fenced store in this process's memory. Clones share the same values.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), distlock_fenced::FenceError> {
/// use distlock_core::FencingToken;
/// use distlock_fenced::{FencedStore, MemoryStore};
///
/// let store = MemoryStore::new();
/// store.set("total", FencingToken(7), b"100").await?;
/// // A holder with an older token is refused, and changes nothing.
/// let refused = store.add("total", FencingToken(6), 5).await.unwrap_err();
/// assert_eq!(refused.stale().map(|s| s.recorded), Some(FencingToken(7)));
/// // The same holder may write again.
/// assert_eq!(store.add("total", FencingToken(7), 5).await?, 105);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<HashMap<String, Record>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes the resource's value and recorded token. For setting up and
    /// tearing down (tests, demos): a cleared resource accepts every token
    /// again, so never clear one that holders may still write.
    pub fn clear(&self, resource: &str) {
        lock(&self.records).remove(resource);
    }

    /// Runs `write` on the resource's current value (`None`: absent) if
    /// `token` is not lower than the recorded one; stores what it returns
    /// and records `token`. A refusal or an error of `write` changes
    /// nothing.
    fn fenced<T>(
        &self,
        resource: &str,
        token: FencingToken,
        write: impl FnOnce(Option<&[u8]>) -> Result<(Vec<u8>, T), FenceError>,
    ) -> Result<T, FenceError> {
        check_resource(resource)?;
        let mut records = lock(&self.records);
        let current = records.get(resource);
        if let Some(recorded) = current.map(|r| r.token).filter(|&r| token < r) {
            return Err(FenceError::stale_token(resource, token, recorded));
        }
        let (value, out) = write(current.map(|r| r.value.as_slice()))?;
        records.insert(resource.to_string(), Record { value, token });
        Ok(out)
    }
}

#[async_trait]
impl FencedStore for MemoryStore {
    fn store_name(&self) -> &'static str {
        "memory"
    }

    /// No round trip; cancel safe (it completes before its first poll
    /// returns).
    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError> {
        self.fenced(resource, token, |_| Ok((value.to_vec(), ())))
    }

    /// No round trip; cancel safe.
    async fn add(
        &self,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<i64, FenceError> {
        self.fenced(resource, token, |current| {
            let n = counter_of(current).ok_or_else(|| FenceError::NotAnInteger {
                resource: resource.to_string(),
            })?;
            let sum = n.checked_add(delta).ok_or_else(|| FenceError::Overflow {
                resource: resource.to_string(),
                delta,
            })?;
            Ok((sum.to_string().into_bytes(), sum))
        })
    }

    /// No round trip; cancel safe.
    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError> {
        check_resource(resource)?;
        Ok(lock(&self.records).get(resource).cloned())
    }
}
