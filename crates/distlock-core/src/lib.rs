//! # distlock-core
//!
//! The contract of distlock: what a distributed lock is, independent of the
//! system that provides it.
//!
//! - [`LockName`]: validated names and their safe mapping into key spaces.
//! - [`AcquireOptions`], [`Wait`], [`Backoff`]: how long to hold and to wait.
//! - [`Lease`], [`OwnerToken`], [`FencingToken`]: what an acquire returns.
//! - [`DistributedLock`]: the trait applications use; [`LockBackend`]: the
//!   trait backends implement, wrapped by the core's checked [`layer`]
//!   (validation, lease validity, batching, tracing, metrics) into a
//!   `DistributedLock`. [`Capabilities`] say what a backend serves; [`Mode`]
//!   says which kind of hold an acquire asks for.
//! - [`LockError`]: the one error type.
//! - [`LockClient`] and [`LockGuard`]: what applications use — self-extending
//!   guards that report loss; [`MultiLockGuard`] for several names at once,
//!   [`Leadership`] and [`LeaderObserver`] for leader election.
//! - [`waiting`]: the shared retry loop for backends without a queue;
//!   [`line`]: the waiter-liveness rule of backends with one;
//!   [`cleanup`]: finishing what a dropped operation started;
//!   [`validity`]: the one drift rule; [`sync`]: the poison-tolerant lock.
//! - [`BackendUrl`]: the one URL grammar; [`registry`]: every known scheme;
//!   [`TlsSettings`]: the one TLS vocabulary of every network backend.
//!
//! ```
//! # async fn demo(backend: std::sync::Arc<dyn distlock_core::DistributedLock>) -> distlock_core::Result<()> {
//! use distlock_core::LockClient;
//! let client = LockClient::new(backend);
//! let guard = client.lock("reports/daily").await?;
//! // … work, passing guard.fencing_token() to the protected store …
//! guard.release().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backend;
mod backend_url;
mod capabilities;
pub mod cleanup;
mod client;
mod error;
pub mod layer;
mod lease;
pub mod line;
mod liveness;
mod mode;
mod multi;
mod name;
mod options;
mod redact;
pub mod registry;
pub mod sync;
pub mod tls;
pub mod validity;
pub mod waiting;

pub use backend::{ChangeNotices, DistributedLock, Liveness, LockStatus};
pub use backend_url::{BackendUrl, Host};
pub use capabilities::{Capabilities, CapabilitiesBuilder};
pub use client::{
    GuardHandle, GuardState, IntoLockName, Leader, LeaderObserver, Leadership, LockClient,
    LockGuard, LostReason, MultiLockGuard, Semaphore, OBSERVE_POLL,
};
pub use error::{BoxError, LockError, Result};
pub use layer::{AcquireRequest, Grant, LockBackend, Renewal, MAX_LABEL_LEN};
pub use lease::{FencingToken, Lease, OwnerToken};
pub use liveness::SessionLiveness;
pub use mode::{Fit, Mode};
pub use multi::lock_order;
pub use name::{percent_decode, percent_encode, LockName};
pub use options::{
    validate_ttl, AcquireOptions, Backoff, BackoffDelays, Wait, DEFAULT_TTL, DEFAULT_WAIT, MAX_WAIT,
};
pub use redact::redact_url;
pub use tls::{TlsFiles, TlsSettings};

/// Re-exported so backends implement the trait with the same macro version.
pub use async_trait::async_trait;
