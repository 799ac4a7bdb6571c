//! # distlock-zookeeper
//!
//! A [`LockBackend`](distlock_core::LockBackend) on a ZooKeeper ensemble,
//! built on the `zookeeper-client` crate with the classic queue recipe: every
//! contender creates an ephemeral sequential node, the lowest sequence holds
//! the lock, and everyone else watches only the node right before theirs.
//! The core's checked layer makes it a
//! [`DistributedLock`](distlock_core::DistributedLock): it validates options
//! and leases, draws owner tokens, computes lease validity, batches
//! `extend_many`, and emits the tracing and metrics of every operation.
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use std::sync::Arc;
//! use distlock_core::LockClient;
//! use distlock_zookeeper::ZkBackend;
//!
//! let backend = ZkBackend::connect("zk://10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181/billing?session_timeout=6s").await?;
//! let client = LockClient::new(Arc::new(backend));
//! let guard = client.lock("invoices/2026-11").await?;
//! // … pass guard.fencing_token() to the protected store …
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## URL
//!
//! `zk://[user:password@]host1:port1,host2:port2,…[/chroot][?session_timeout=…&prefix=…&timeout=…&connect_timeout=…]`
//! (`zookeeper://` works too; the legacy `session_timeout_ms`, `root`,
//! `user` and `password` query keys are still understood). See
//! [`ZkConfig::from_url`]. The password is redacted from every error, log
//! line and `Debug` output.
//!
//! ## Layout
//!
//! Lock `name` lives in the directory `<chroot><prefix>/<escaped name>`
//! (prefix `/distlock` by default). The name is percent-escaped (so `/` never splits
//! it) and bounded to 240 bytes with a hash suffix for longer names. The prefix
//! and every directory are *container* nodes: the server deletes them once
//! they are empty, so names that are no longer used leave nothing behind.
//! Each contender's node is `<owner token>-<sequence>`; the owner token
//! (random, drawn by the core for each acquire) is the "protection" that
//! lets a contender whose create reply was lost find its own node.
//!
//! ## What it guarantees
//!
//! - **Mutual exclusion**: the holder is the lowest sequence in the
//!   directory. A contender only considers itself holder after a read that
//!   follows its own create on the same session, so every earlier contender
//!   still present is visible to it.
//! - **Liveness is the session.** Queue nodes are ephemeral: a holder that
//!   dies (SIGKILL, crash, partition) frees the lock when its session expires,
//!   at most the negotiated session timeout after the server last heard from
//!   it (plus the server's expiry tick). The lease's ttl is the caller's
//!   validity window, counted by the core's one validity rule
//!   ([`distlock_core::validity`]) from the moment the read that found the
//!   node first in line (or that re-confirmed it) was sent; the
//!   [`LockClient`](distlock_core::LockClient) watchdog re-confirms it at a
//!   third of the ttl.
//! - **Loss is reported.** [`liveness`](distlock_core::DistributedLock::liveness)
//!   hands every lease of a session the same channel: a disconnect is
//!   `Suspended` (the lock may still be ours: pause work), expiry or a
//!   disconnect that outlasts 45 % of the session timeout is `Lost` (see
//!   the `session` module docs for why 45 %: `lost()` fires before the
//!   server can expire the session and grant the lock to anyone else). A lost
//!   session is retired and the next operation opens a new one.
//! - **Fencing token = the node's creation zxid (`czxid`).** Zxids increase
//!   across the whole ensemble, and a contender only holds once every node
//!   created before it in its directory is gone, so successive holders carry
//!   increasing tokens — also after the container directory was deleted and
//!   re-created, which resets the per-directory sequence numbers (the reason
//!   the sequence number is *not* used as the token).
//! - **FIFO.** Contenders are served in creation order; waiters are woken by
//!   the deletion of their predecessor (no polling, no herd effect).
//! - **Cancellation.** Dropping an `acquire` deletes its queued node in the
//!   background (found by owner token if the create's reply was lost), and
//!   so does dropping a `release` before its answer.
//! - **Access control.** With credentials, the session authenticates
//!   with digest credentials and every node gets the ACL "this identity: all;
//!   everyone: read". ZooKeeper checks a delete against the *parent's* ACL, so
//!   another identity can neither take, delete nor release locks in that tree
//!   (it still can read `status`). Use one prefix per identity. Another client
//!   with the same identity (or any client, without credentials) can release
//!   an exported lease (`lease_handoff`).
//!
//! ## Round trips
//!
//! | operation | round trips |
//! |---|---|
//! | acquire, uncontended | 2 (create, list) — plus 1–2 on a name's first use (container parents) |
//! | acquire, held, `Wait::NoWait` | 3 (create, list, delete our node) |
//! | acquire, contended | create, list, watch predecessor; after each wake-up: list (+ watch) |
//! | extend | 1 (`exists` of the node: still there, same czxid, same owner session) |
//! | `extend_many` | 1 per batch of up to 1024 leases (one multi-read) |
//! | release | 1 (delete) |
//! | status | 2 (list, `exists` of the first node) |
//!
//! ## What it does not guarantee
//!
//! - Reads (list, extend) go to the server the session is connected to; they
//!   are sequentially consistent for the session, not linearizable. A lease
//!   confirmed by `extend` may already be lost if the session expired an
//!   instant later; the session liveness channel is the authoritative signal.
//! - During a partition, a client on the minority side cannot reach a quorum:
//!   its operations fail with `Unavailable` and its leases go `Suspended`,
//!   then `Lost`. Each request of an `acquire` gives up at the caller's
//!   deadline but gets at least 1 s (so a try-lock can do its round trips)
//!   and at most the request `timeout`: a bounded wait may overrun by up to
//!   1 s when the ensemble does not answer. `extend`, `release` and `status`
//!   are bounded by the request `timeout` (by default the session timeout).
//! - The lease ttl does not free the lock: an abandoned lock frees only when
//!   its session ends (`ttl_expiry` is false).
//!
//! ## Reading the code
//!
//! `backend` (the [`LockBackend`](distlock_core::LockBackend) impl) hands
//! each operation to its module: `acquire` (create the node, find the
//! predecessor, watch it), `extend` (one `exists`, or one multi-read per
//! batch), `release`, `status`, and `cleanup` (deleting the node of a
//! cancelled acquire or an unanswered release). Below them: `queue` (paths
//! and the place in line), `sessions` and `session` (the session and its
//! liveness), `rpc` (the time bound of each request), `error`.

#![warn(missing_docs)]

mod acquire;
mod backend;
mod cleanup;
mod config;
mod error;
mod extend;
mod queue;
mod release;
mod rpc;
mod session;
mod sessions;
mod status;

pub use backend::ZkBackend;
pub use config::{ZkConfig, DEFAULT_PREFIX, DEFAULT_SESSION_TIMEOUT};

/// Re-export of the client library, for callers of [`ZkBackend::zk_client`].
pub use zookeeper_client;
