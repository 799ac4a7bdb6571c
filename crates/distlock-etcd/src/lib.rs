//! # distlock-etcd
//!
//! Distributed locks on an etcd v3 cluster (tested against etcd 3.4).
//!
//! ## What it guarantees
//!
//! - **Liveness is one etcd lease per backend client.** [`EtcdBackend`]
//!   grants one lease (ttl [`EtcdConfig::session_timeout`], default 10 s)
//!   and one task keeps it alive with a keep-alive every
//!   `session_timeout / 3`, however many locks the client holds. Every lock
//!   is a key attached to that lease, so a client that dies (SIGKILL, power
//!   loss, partition) loses all its locks when the lease expires: at most
//!   `session_timeout` after its last keep-alive.
//!   [`DistributedLock::liveness`](distlock_core::DistributedLock::liveness)
//!   reports `Suspended` while keep-alives go unanswered and `Lost` once the
//!   lease may have expired on the server (judged conservatively on the local
//!   monotonic clock with the one drift rule of
//!   [`distlock_core::validity`]: never later than the server can expire it)
//!   or the server says it is gone. A guard reports `lost()` then, *before*
//!   another client can take the lock. The next acquire grants a fresh lease.
//! - **The acquire ttl is the validity the lease reports**, not a server-side
//!   expiry (`ttl_expiry = false`): a live client holds its locks until it
//!   releases them or its etcd lease ends. The core computes that validity
//!   from the instant the granting (or extending) request was sent, with the
//!   drift rule of [`distlock_core::validity`]. Extending confirms the key
//!   still exists. Code using the trait directly (not
//!   [`distlock_core::LockGuard`]) must watch `liveness()` to learn of a lost
//!   etcd lease before the reported validity ends.
//! - **Mutual exclusion and order.** An acquire puts a key
//!   `<prefix>/<escaped name>/<lease id hex>-<random hex>`; the key with the
//!   lowest create revision holds the lock. The random suffix lets one client
//!   (one lease) queue several acquires of the same name.
//! - **Fencing token** = the key's create revision: etcd's global revision,
//!   so successive holders of a name get strictly increasing tokens.
//! - **Fair (FIFO).** Waiters are served in the order their keys were
//!   created.
//! - **Waiters are notified, not polling.** Each waiter watches only the key
//!   just before its own (no herd) for deletion. The watch is always *synced*
//!   (it starts at the member's current revision; a watch starting in the
//!   past is served by etcd's 100 ms catch-up loop), and when others wrote
//!   between our read and the watch, one local read at the watch's start
//!   revision closes the gap. The event arrives as soon as the key is
//!   deleted.
//! - **Cancellation.** Dropping an `acquire` deletes its queue key in the
//!   background, also when the creating transaction was still in flight.
//!
//! Options, lease checks, owner tokens, lease validity, the batching of
//! `extend_many` and the tracing and metrics of every operation are the
//! core's ([`distlock_core::layer`]); this crate is the algorithm.
//!
//! ## Round trips
//!
//! | operation | cost |
//! |---|---|
//! | acquire, free lock | 1 Txn (put if absent + read the predecessor) |
//! | acquire `NoWait`, held lock | 1 Txn (compare "no key under the name") |
//! | acquire, waiting | 1 Txn + per predecessor 1 Watch (+ 1 local Range if the revision moved) + 1 local Range when it goes |
//! | extend | 1 Txn (compare create revision and owner token) |
//! | `extend_many` | 1 Txn per 100 leases (nested transactions) |
//! | release | 1 Txn (compare, then delete) |
//! | status | 1 Range |
//!
//! ## On a partition
//!
//! A client cut off from the cluster's majority gets `Unavailable` errors
//! (requests require a leader; each is bounded by the request timeout) and
//! its guards turn `Suspended`, then `Lost` once the etcd lease may have
//! expired; the majority frees its locks when the lease expires there. A
//! leader change inside the cluster does not lose leases (etcd extends them
//! on election).
//!
//! ## URL
//!
//! ```text
//! etcd://[user:password@]host[:port][,host[:port]…][/prefix][?parameter=value&…]
//! ```
//!
//! In the one URL grammar of [`distlock_core::BackendUrl`] (port 2379 by
//! default; IPv6 hosts in brackets): `session_timeout=<duration>` (whole
//! seconds; legacy `lease_ttl=<seconds>`; etcd raises values below its
//! minimum of 1.5 × the election timeout), `timeout=<duration>` (per
//! request, default 5 s), `connect_timeout=<duration>`, `prefix` (or the
//! path; default `distlock`), `tls=<bool>`, `ca=<PEM file>` (legacy
//! `cacert`; implies TLS); credentials as userinfo (legacy `user`/`username`
//! and `password` parameters). Unknown parameters are refused. Passwords
//! never appear in errors, logs or `Debug` output. Connecting grants the
//! lease and reads the prefix once, so a wrong password, missing credentials
//! or a missing permission on the prefix is an `InvalidConfig` error at
//! connect, naming the user.
//!
//! ## Failover
//!
//! Requests go to one member at a time; a transport failure moves on to the
//! next. Requests that never left, reads and compare-only transactions are
//! retried on the next member at once; anything that may have been applied
//! is reported as `Unavailable` (release and key cleanup, being idempotent
//! deletes, are retried up to three times).
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use distlock_core::LockClient;
//! use distlock_etcd::EtcdBackend;
//!
//! let backend = EtcdBackend::connect("etcd://127.0.0.1:2379,127.0.0.1:22379/app?session_timeout=5s").await?;
//! let client = LockClient::new(std::sync::Arc::new(backend));
//! let guard = client.lock("reports/daily").await?;
//! // … pass guard.fencing_token() to the protected store …
//! guard.release().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod acquire;
mod backend;
mod cluster;
mod config;
mod connect;
mod errors;
mod keys;
mod lock_backend;
mod release;
mod renew;
mod session;
mod status;

pub use backend::EtcdBackend;
pub use config::{
    EtcdConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_SESSION_TIMEOUT, DEFAULT_TIMEOUT,
};
