//! # distlock
//!
//! Distributed locks with pluggable backends. One trait,
//! [`DistributedLock`], real backends behind it, and one conformance suite
//! that holds every backend to the same contract.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> distlock::Result<()> {
//! use distlock::prelude::*;
//!
//! let client = LockClient::connect("memory://docs").await?;
//! let guard = client.lock("contribution-total").await?; // waits up to 30 s
//! assert!(guard.fencing_token().get() >= 1);
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! [`LockClient::connect`](Connect::connect) is [`connect`] (URL → backend)
//! followed by [`LockClient::new`]; it comes with the [`Connect`] trait,
//! which the [`prelude`] brings into scope.
//!
//! ## Backends
//!
//! Pick backends with Cargo features (default: `memory` and `sqlite`) and a
//! connection URL. The scheme picks the backend through the one list of
//! schemes, [`registry`]; each backend crate is re-exported under its
//! feature as `distlock::memory`, `distlock::sql`, `distlock::redis`,
//! `distlock::etcd` and `distlock::zookeeper`, and documents the rest of its
//! URL.
//!
//! | backend | feature | URL | what it is |
//! |---|---|---|---|
//! | Memory | `memory` | `memory://[store]` | in-process (tests, single process) |
//! | SQLite | `sqlite` | `sqlite://path/to/file.db[?table=…]` | a locks table in a SQLite file shared by local processes |
//! | PostgreSQL | `postgres` | `postgres://user:pw@host:port/db[?strategy=…&table=…]` (or `postgresql://`) | advisory locks held by the client's sessions, waiters queued in the server (`strategy=session`, default); or a locks table, waiters woken by LISTEN/NOTIFY (`strategy=table`) |
//! | MySQL / MariaDB | `mysql` | `mysql://user:pw@host:port/db[?strategy=…&table=…]` (or `mariadb://`) | GET_LOCK held by the client's sessions, waiters queued in the server (`strategy=session`, default); or a locks table with a queue of polling waiters (`strategy=table`) |
//! | Redis | `redis` | `redis://[:pw@]host:port[/db][?prefix=…&fair=true]` (or `rediss://`) | one Redis instance: fencing, fair queue, waiters woken by pub/sub |
//! | Redis Sentinel | `redis` | `redis+sentinel://[user:pw@]s1:p1,s2:p2/master[?db=…&prefix=…]` | one Redis primary found through its sentinels and followed across failovers: the one-instance backend's fencing and fair queue |
//! | Redis Cluster | `redis` | `redis+cluster://[user:pw@]n1:p1,n2:p2[?prefix=…&replicas=…]` | a Redis Cluster: each lock on the primary of its slot, followed across failovers and resharding; the one-instance backend's fencing and fair queue |
//! | Redlock | `redis` | `redlock://h1:p1,h2:p2,h3:p3[?prefix=…]` | Redlock over N independent Redis instances (majority quorum) |
//! | ZooKeeper | `zookeeper` | `zk://[user:pw@]h1:p1,h2:p2[/chroot][?session_timeout=…&prefix=…]` (or `zookeeper://`) | ephemeral sequential nodes on a ZooKeeper ensemble, waiters woken by predecessor watches |
//! | etcd | `etcd` | `etcd://[user:pw@]h1:p1,h2:p2[/prefix][?session_timeout=…&tls=true]` | leases + create-revision queue on an etcd v3 cluster, waiters woken by watches |
//!
//! (This table is [`registry::docs_table()`]; a test keeps them equal.)
//!
//! The `fenced` feature (on by default) adds `distlock::fenced`: stores that
//! refuse a write carrying a fencing token lower than the highest they have
//! recorded — the in-memory model, and Redis and SQL stores when their
//! backend features are on (`docs/safety.md`, "Using the fencing token").
//!
//! Every backend reads the same URL parameters where they apply: userinfo
//! for credentials, `timeout`, `connect_timeout` and `session_timeout` as
//! durations (`2s`, `500ms`), `prefix`, and TLS as
//! [`TlsSettings`] reads it (`tls`, `ca`, `cert`, `key`; `docs/security.md`).
//! Unknown parameters are refused, naming the parameter. Unknown schemes and backends whose feature
//! is off are clear errors, and passwords never appear in them:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let err = distlock::connect("gopher://user:secret@x").await.unwrap_err();
//! assert!(err.to_string().contains("unknown scheme `gopher`"));
//! assert!(!err.to_string().contains("secret"));
//! # }
//! ```
//!
//! ## One vocabulary
//!
//! - `lock(name)` / `lock_with(name, &options)` wait for the lock (30 s by
//!   default) and return a self-extending [`LockGuard`]; they fail with
//!   `Timeout` when the wait runs out, and with `Held` when the wait was zero
//!   and someone else holds the lock.
//! - `try_lock` / `try_lock_with` answer `Ok(None)` instead of an error.
//! - `with_lock` / `with_lock_with` run work under the lock and release it;
//!   `try_with_lock` runs it only if the lock is free now;
//!   `with_lock_fallible` takes work returning `Result<T, E>` and answers one
//!   flat `Result<T, E>`; `with_lock_until_lost` drops the work the moment
//!   the lock is lost.
//! - A guard: `fencing_token()`, `lost()` / `is_lost()`, `extend(ttl)`,
//!   `release()`, `detach()` (export the lease to another process, which
//!   `adopt`s it).
//! - [`AcquireOptions::new(ttl)`](AcquireOptions::new) waits 30 s,
//!   [`AcquireOptions::try_once(ttl)`](AcquireOptions::try_once) tries once;
//!   setters are `with_ttl`, `with_wait`, `with_backoff`.

#![warn(missing_docs)]

mod connect;
pub mod prelude;

pub use connect::{connect, Connect};
pub use distlock_core::*;

/// The in-process backend (`memory://`): the whole contract in one file,
/// handy in tests.
#[cfg(feature = "memory")]
pub use distlock_memory as memory;

/// The SQL backends (`sqlite://`, `postgres://`, `mysql://`).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use distlock_sql as sql;

/// The Redis backends: one instance (`redis://`) and Redlock
/// (`redlock://`).
#[cfg(feature = "redis")]
pub use distlock_redis as redis;

/// The etcd backend (`etcd://`).
#[cfg(feature = "etcd")]
pub use distlock_etcd as etcd;

/// The ZooKeeper backend (`zk://`).
#[cfg(feature = "zookeeper")]
pub use distlock_zookeeper as zookeeper;

/// Fenced writes: stores that refuse a write whose fencing token is lower
/// than the highest they recorded (in-memory; Redis and SQL with their
/// backend features).
#[cfg(feature = "fenced")]
pub use distlock_fenced as fenced;

/// The README's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
