//! # distlock-fenced
//!
//! Fenced writes: the protected resource itself refuses a write whose
//! fencing token is lower than the highest token it has recorded.
//!
//! A lock alone cannot stop a holder that was paused past its lease (a GC
//! pause, a stopped VM, a slow disk): when it resumes, its guard reports
//! the loss, but code that had already passed that check writes anyway.
//! Every distlock lease carries a [`FencingToken`] that strictly increases
//! across successive holders of a lock name; a store that records the
//! highest token it accepted and refuses lower ones turns that late write
//! into a [`StaleToken`] refusal. See `docs/safety.md`, "Using the fencing
//! token".
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::sync::Arc;
//!
//! use distlock_core::LockClient;
//! use distlock_fenced::{FencedStore, MemoryStore};
//!
//! # let backend = Arc::new(distlock_memory::MemoryBackend::new());
//! let client = LockClient::new(backend);
//! let store = MemoryStore::new(); // or RedisStore, SqlStore<Sqlite|Postgres|MySql>
//! let guard = client.lock("contribution-total").await?;
//! // …work that may stall for longer than the lease…
//! match store.add("contribution-total", guard.fencing_token(), 42).await {
//!     Ok(total) => println!("total is now {total}"),
//!     Err(refused) if refused.is_stale() => println!("a newer holder wrote first: {refused}"),
//!     Err(other) => return Err(other.into()),
//! }
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## Stores
//!
//! | store | feature | what a write is |
//! |---|---|---|
//! | [`MemoryStore`] | (always) | a map behind a mutex, in this process: the model the others are checked against |
//! | `RedisStore` | `redis` | one Lua script per call: check, write, record — set a value, `INCRBY` a counter, or run your own script |
//! | `SqlStore<DB>` | `sqlite`, `postgres`, `mysql` | a conditional `UPDATE … WHERE fence <= token` on a table of resources |
//! | `FencedUpdate<DB>` | `sqlite`, `postgres`, `mysql` | the same conditional update on a row of *your* table, given a `fence` column (`sql::fence_column_ddl`) |
//!
//! Through the `distlock` facade this crate is `distlock::fenced` (feature
//! `fenced`), with the store features that match the facade's backend
//! features.
//!
//! ## What a fenced store guarantees
//!
//! For every resource, atomically: a write carrying token `t` is applied
//! and `t` recorded if `t` is not lower than the highest token recorded for
//! that resource; otherwise nothing changes and the write fails with
//! [`FenceError::Stale`], carrying both tokens. An equal token passes: the
//! same holder may write several times under one lease. A write that fails
//! for another reason (not an integer, overflow, an error of your script
//! before it wrote) records nothing.
//!
//! What it does **not** guarantee:
//!
//! - Tokens are compared per resource, and mean something only among grants
//!   of **one lock name**: protect each resource with one lock name (using
//!   the lock's name as the resource's is the simple way).
//! - The store must be the single source of truth: a copy of the value
//!   (a cache, a replica read, a value written around the store) is not
//!   fenced.
//! - A read is not fenced: a stale holder can still read, and decide on,
//!   old data. Only its writes are refused.
//! - A first write of a resource accepts any token; clearing a resource
//!   (`clear`) forgets its recorded token.
//! - On Redis, the recorded token is as durable as the Redis data
//!   (persistence and replication settings decide what survives a restart
//!   or failover).
//!
//! ## Your own store
//!
//! Implement [`FencedStore`] with one atomic step per write: compare the
//! offered token with the recorded one, refuse if lower, otherwise write the
//! value **and** record the token together (a conditional put on object
//! storage carrying the token in metadata, a compare-and-swap, a
//! transaction, a file rewritten under a file lock). Then run
//! [`suite::run`] against it.

#![warn(missing_docs)]

mod error;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod sql;
pub mod suite;

use std::sync::Arc;

use async_trait::async_trait;

pub use distlock_core::FencingToken;
pub use error::{check_resource, FenceError, StaleToken, MAX_RESOURCE_LEN};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{FencedScript, RedisStore};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use sql::{FencedUpdate, SqlStore};
/// The sqlx version the SQL stores are built on (for their pools).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use sqlx;

/// A resource's value and the highest fencing token recorded for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The value, as stored. A counter is its decimal text (`b"-42"`).
    pub value: Vec<u8>,
    /// The highest token recorded; `FencingToken(0)` when the value was
    /// written without one (around the store), which every token passes.
    pub token: FencingToken,
}

impl Record {
    /// The value as a counter, when it is a decimal 64-bit integer.
    pub fn counter(&self) -> Option<i64> {
        error::counter_of(Some(&self.value))
    }
}

/// A store that refuses writes carrying a fencing token lower than the
/// highest it has recorded for the resource written.
///
/// Each write is one atomic step on the store: compare, write, record.
/// Values are bytes; [`add`](FencedStore::add) reads them as a decimal
/// 64-bit integer, as Redis `INCRBY` does. Resource names follow
/// [`check_resource`].
///
/// The trait is object safe: `Arc<dyn FencedStore>` is a store too.
#[async_trait]
pub trait FencedStore: Send + Sync {
    /// Which store this is (`memory`, `redis`, `sqlite`, `postgres`,
    /// `mysql`, or your own), for messages.
    fn store_name(&self) -> &'static str;

    /// Sets `resource` to `value`, if `token` is not lower than the highest
    /// token recorded for it, and records `token`.
    ///
    /// # Errors
    ///
    /// [`FenceError::Stale`] when a higher token was recorded (nothing
    /// changed); [`FenceError::InvalidResource`]; [`FenceError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the write done or not done, never
    /// half done: the value and the token are written together or not at
    /// all. Repeating the same `set` with the same token is harmless.
    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError>;

    /// Adds `delta` to the counter `resource` (absent: 0), if `token` is
    /// not lower than the highest token recorded for it, and records
    /// `token`. Returns the new value.
    ///
    /// # Errors
    ///
    /// [`FenceError::Stale`] when a higher token was recorded;
    /// [`FenceError::NotAnInteger`] when the value is not a decimal 64-bit
    /// integer; [`FenceError::Overflow`]; in all three nothing changed and
    /// no token was recorded. [`FenceError::InvalidResource`],
    /// [`FenceError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the addition done or not done, never
    /// half done. Unlike `set`, repeating it after an unknown outcome may
    /// add twice.
    async fn add(&self, resource: &str, token: FencingToken, delta: i64)
        -> Result<i64, FenceError>;

    /// The resource's value and recorded token; `None` when it has no
    /// value. Reads are not fenced: any holder, current or stale, may read.
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidResource`], [`FenceError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it changes nothing.
    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError>;
}

#[async_trait]
impl<S: FencedStore + ?Sized> FencedStore for Arc<S> {
    fn store_name(&self) -> &'static str {
        (**self).store_name()
    }

    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError> {
        (**self).set(resource, token, value).await
    }

    async fn add(
        &self,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<i64, FenceError> {
        (**self).add(resource, token, delta).await
    }

    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError> {
        (**self).read(resource).await
    }
}
