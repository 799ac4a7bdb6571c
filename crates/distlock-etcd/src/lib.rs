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
//! - **One queue for every mode.** An acquire puts an entry key under
//!   `<prefix>/<escaped name>/`, its mode in the key: `<lease id hex>-<random
//!   hex>` for the mutex (the writer), `s/…` for a reader, `#<n>/…` for a
//!   permit of a semaphore of `n`. Entries queue in create-revision order,
//!   and an entry goes when it fits beside every entry before it by the
//!   core's rule ([`Mode::fits`](distlock_core::Mode::fits)): a writer when
//!   it is first, a reader when no writer or permit is before it, a permit
//!   when nothing but fewer than `n` permits of its count are before it. A
//!   permit request that finds permits of another count among the oldest
//!   permits is refused with
//!   [`PermitMismatch`](distlock_core::LockError::PermitMismatch). The
//!   random suffix lets one client (one lease) queue several acquires of the
//!   same name.
//! - **Fencing token** = the entry's create revision: etcd's global
//!   revision, so it strictly increases over every grant of every mode (an
//!   entry is granted only once every entry before it that it conflicts
//!   with is gone, and an entry created later has a greater revision);
//!   readers granted together hold distinct entries, so distinct tokens.
//! - **A waiter that dies costs the line its waiter-liveness window**
//!   (`waiter_timeout`, default 1 s), not a session timeout. An entry that
//!   must wait is put as a *waiter* (a waiting mark as value, on the
//!   client's waiter lease) and claims its turn (one transaction: the
//!   holder value, on the client's etcd lease) before it holds. The client
//!   that lets a turn in, and a waiter behind another waiter, pass over a
//!   turn not claimed within its window (a delete guarded by its create and
//!   mod revisions); the waiter lease (ttl: the window, raised by etcd to its
//!   minimum) frees a dead waiter's key that nobody passes over. A waiter
//!   passed over while alive queues again, with twice its window.
//! - **Fair (FIFO).** No entry overtakes an earlier one it does not fit
//!   beside: a reader arriving while a writer waits queues behind it, and
//!   permits go in arrival order.
//! - **Waiters are notified, not polling, with no herd.** A writer watches
//!   the key just before its own, a reader the last writer or permit before
//!   it, a permit the key that decides its turn: the last writer or reader
//!   before it; as the first permit waiting, the permits' range (for
//!   deletes); further back, the permit just before it, which rewrites its
//!   key when it is granted. A release wakes the waiters it lets in and no
//!   others (only the first permit waiting also wakes, needlessly, when a
//!   waiter behind it gives up). The watch is always *synced* (it starts at the member's current
//!   revision; a watch starting in the past is served by etcd's 100 ms
//!   catch-up loop), and when others wrote between our read and the watch,
//!   one local read at the watch's start revision closes the gap.
//! - **Upgrade** (reader to writer) is atomic: a writer entry queued behind
//!   the reader's own entry (in a transaction that checks the reader still
//!   holds) goes once nothing else is before it; the pair then holds the
//!   name exclusively, with a new, greater token. Readers arriving meanwhile
//!   queue behind it. An upgrade cannot jump a writer that queued behind the
//!   read lock before it began (tokens follow the queue order): it waits
//!   for that writer to give up, or for its own wait to run out.
//! - **Leader election and observers.** An elected leader's entry holds
//!   `<owner token>\n<identity>` as its value; extend and release check the
//!   owner with a value range that covers both forms (see `keys`). `status`
//!   reads the values: an exclusive holder's label and own create revision
//!   (the term). Change notices are one etcd watch on the name's key range
//!   (every put and delete, etcd lease expiries included).
//! - **Lock-at-least-for.** A lease released before its minimum moves its
//!   key to a fresh etcd lease of the time owed (whole seconds, rounded up;
//!   etcd raises it to its minimum), in one transaction guarded by create
//!   revision and owner (a put keeps the create revision: same place, same
//!   token, same value). The key no longer ends with this client; etcd
//!   deletes it when that lease expires.
//! - **Cancellation.** Dropping an `acquire` (or an upgrade) deletes its
//!   queue key in the background, also when the creating transaction was
//!   still in flight; a dropped upgrade leaves the read lock held.
//!
//! Options, lease checks, owner tokens, lease validity, the batching of
//! `extend_many` and the tracing and metrics of every operation are the
//! core's ([`distlock_core::layer`]); this crate is the algorithm.
//!
//! ## Round trips
//!
//! | operation | cost |
//! |---|---|
//! | acquire (any mode), free | 1 Txn (put + read what decides its turn) |
//! | acquire `NoWait` (writer, reader), held | 1 Txn (compare "no blocking key under the name") |
//! | acquire `NoWait` (permit), not fitting | 1 Txn + 1 DeleteRange (1 Txn when a writer or reader is there) |
//! | acquire, waiting | 1 Txn + per wait 1 Watch (+ 1 local Range if the revision moved) + 1 local read when it fires; + 1 Txn to claim the turn |
//! | waiting behind a waiter | + 1 local Range per `waiter_timeout` |
//! | upgrade | 1 Txn (compare reader, put writer entry, read) + waits as above |
//! | extend | 1 Txn (compare create revision and owner token) |
//! | `extend_many` | 1 Txn per 100 leases (nested transactions) |
//! | release | 1 Txn (compare, then delete; an upgraded lease's two keys); in the background 1 local Range (+ 1 local Range and 1 Txn per silent turn) |
//! | status | 1 Range (the name's keys and values) |
//! | elect | as acquire (the identity is in the put value) |
//! | change notices (`watch`) | 1 Watch, then none per notice |
//! | release before a lock-at-least-for minimum | 1 LeaseGrant + 1 Txn |
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
//! request, default 5 s), `connect_timeout=<duration>`,
//! `waiter_timeout=<duration>` (default 1 s), `prefix` (or the
//! path; default `distlock`), `tls=<bool>`, `ca=<PEM file>` (legacy
//! `cacert`), `cert=<PEM file>&key=<PEM file>` (a client certificate; each
//! implies TLS, see [`EtcdConfig::from_url`]); credentials as userinfo (legacy `user`/`username`
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
mod changes;
mod cluster;
mod config;
mod connect;
mod errors;
mod hold;
mod keys;
mod lock_backend;
mod release;
mod renew;
mod session;
mod status;

pub use backend::EtcdBackend;
pub use config::{
    EtcdConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_SESSION_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_WAITER_TIMEOUT,
};
