//! # distlock-zookeeper
//!
//! A [`LockBackend`](distlock_core::LockBackend) on a ZooKeeper ensemble,
//! built on the `zookeeper-client` crate with the classic queue recipe: every
//! contender creates an ephemeral sequential node tagged with its mode, the
//! head of the line that fits together holds the name, and everyone else
//! watches only the nodes that decide its turn. It serves every mode of a
//! name: the mutex (= the writer of a reader-writer lock), readers,
//! semaphore permits, and the upgrade of a reader to the writer.
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
//!
//! // Readers share the name; a writer (the same hold as `lock`) waits for them.
//! let reader = client.read_lock("reports/2026-11").await?;
//! reader.upgrade().await?; // now the writer, with a greater fencing token
//! reader.release().await?;
//!
//! // At most four holders at once.
//! let slots = client.semaphore("render-slots", 4)?;
//! let slot = slots.acquire().await?;
//! slot.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## URL
//!
//! `zk://[user:password@]host1:port1,host2:port2,…[/chroot][?session_timeout=…&prefix=…&timeout=…&connect_timeout=…&waiter_timeout=…]`
//! (`zookeeper://` works too; the legacy `session_timeout_ms`, `root`,
//! `user` and `password` query keys are still understood). TLS to the
//! servers' `secureClientPort` with `ca=<PEM file>` (required with TLS) and
//! optionally `cert=<PEM file>&key=<PEM file>`. See
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
//! Each contender's node is `<owner token>-<sequence>` (exclusive),
//! `<owner token>-s-<sequence>` (shared) or `<owner token>-p<limit>-<sequence>`
//! (a permit of a semaphore of `limit`); the owner token (random, drawn by
//! the core for each acquire) is the "protection" that lets a contender
//! whose create reply was lost find its own node, and the tag lets one list
//! of the directory show every node's mode.
//!
//! ## What it guarantees
//!
//! - **Compatibility** (the core's [`Mode::fits`](distlock_core::Mode::fits)
//!   rule, applied with [`Mode::admitted`](distlock_core::Mode::admitted)):
//!   a node holds once it and every node before it fit together — a writer
//!   when it is first, a reader when only readers are before it, a permit
//!   when only permits of its count, fewer than that count, are before it.
//!   A contender only considers itself holder after a read that follows its
//!   own create on the same session, so every earlier contender still
//!   present is visible to it. A permit whose count differs from the
//!   earliest permit before it deletes its node and fails with
//!   `PermitMismatch`.
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
//! - **Fencing token = the node's creation zxid (`czxid`)**, for every
//!   grant of every mode. Zxids increase across the whole ensemble and each
//!   node has its own, so readers granted together carry distinct tokens; a
//!   node created after another grant returned has a greater one, and a
//!   writer holds only once every node created before it is gone — also
//!   after the container directory was deleted and re-created, which resets
//!   the per-directory sequence numbers (the reason the sequence number is
//!   *not* used as the token).
//! - **A waiter that dies costs the line its waiter-liveness window**
//!   (`waiter_timeout`, default 1 s), not a session timeout. A node that
//!   must wait is *marked* (its data) and claims its turn (one `setData` of
//!   the holder data, checked against its version) before it holds. The
//!   client that lets a turn in, and a marked contender behind a node that
//!   may still have to claim, pass over a turn not claimed within its
//!   window (a delete at the version read; marked nodes are at even
//!   versions, claimed and kept ones at odd ones). A contender passed over
//!   while alive queues again, with twice its window.
//! - **FIFO.** Contenders are served in creation order and never overtake
//!   an earlier node that must wait (a reader behind a waiting writer waits,
//!   so writers are not starved). Waiters are woken by the deletion of a node
//!   they watch (no polling): a writer watches its predecessor, a reader the
//!   last writer or permit before it, a permit the last writer or reader
//!   before it or else the `limit` nodes right before it (no single one of
//!   them decides its turn), so one deletion wakes at most `limit` waiters.
//! - **Upgrade** (reader to writer) is atomic: a writer node with the
//!   reader's owner token queues behind the reader node, which stays; the
//!   writer node holds once the reader node is the only node before it.
//!   Later contenders queue behind the writer node, and no node created
//!   before it can overtake it, so no writer comes in between.
//! - **Cancellation.** Dropping an `acquire` (any mode) deletes its queued
//!   node in the background — by path once the create was answered, else
//!   found by owner token — and so does dropping a `release` before its
//!   answer. Dropping an `upgrade` deletes its writer node only: the read
//!   lock stays as it was.
//! - **Leader election and observers.** An elected leader's identity is
//!   its node's data (sent with the create); `status` reads the newest
//!   holder's data, so an exclusive holder's label and own token (the
//!   term) come back. Change notices are a persistent recursive watch on
//!   the lock's directory: every child created, deleted or written (a
//!   waiter claiming its turn writes its node), no re-arming.
//! - **Lock-at-least-for.** A lease released before its minimum hands its
//!   node to a session of its own whose timeout is the time owed: one
//!   multi-request deletes the node and creates it again at the same path
//!   (same place in line; its data keeps the token and label), ephemeral on
//!   the new session. That session is closed when the time has passed, or
//!   expires on the ensemble if this process exits first — never earlier.
//!   A minimum above the ensemble's `maxSessionTimeout` is refused at the
//!   acquire with `InvalidOptions` (see the `hold` module).
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
//! | acquire (any mode), uncontended | 3 (list, create, list; 2 without waiting) — plus 1–2 on a name's first use (container parents) |
//! | acquire, refused, `Wait::NoWait` | 3 (create, list, delete our node) |
//! | acquire, permit count mismatch | 3 (create, list, delete our node) |
//! | acquire, contended | list, create, list, watch (writer, reader: 1 node; permit: up to `limit` nodes, sent together); after each wake-up: list (+ watch); 1 `setData` to claim the turn |
//! | waiting behind a possible waiter | + 1 list and 1 multi-read per `waiter_timeout` |
//! | upgrade | as a writer's acquire: 2 when the reader is alone; 3 to give up |
//! | extend | 1 (`exists` of the node: still there, same czxid, same owner session) |
//! | `extend_many` | 1 per batch of up to 1024 leases (one multi-read) |
//! | release | 1 (delete; for an upgraded hold, one multi-request deleting both nodes); in the background 1 list and 1 multi-read (+ 1 `getData` and 1 `delete` per silent turn) |
//! | status | 2 (list, multi-read of the data of the nodes whose turn it is) |
//! | elect | as acquire (the identity is the create's data) |
//! | change notices (`watch`) | 1 (`addWatch`), then none per notice |
//! | release before a lock-at-least-for minimum | a session handshake, 1 multi-read, 1 multi-request; the close later |
//! | first acquire with a minimum | + a session handshake (learns the longest session) |
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
//! - An upgrade cannot overtake a writer or permit that queued behind its
//!   reader before the upgrade was asked: that node waits for the reader
//!   and the upgrade for it, until one of the two waits ends (overtaking it
//!   would hand out a smaller fencing token after a greater one). Take the
//!   write lock from the start when a writer may be needed.
//! - Reader and permit nodes are tagged; a client of this crate from before
//!   tags existed ignores them. Every client that takes a name in a shared
//!   or permit mode, or as a mutex beside one, must run this version.
//!
//! ## Reading the code
//!
//! `backend` (the [`LockBackend`](distlock_core::LockBackend) impl) hands
//! each operation to its module: `acquire` (create the node, find our place,
//! watch what decides it, claim the turn, pass over silent ones; also the
//! upgrade), `extend` (one `exists`, or one
//! multi-read per batch), `release`, `status`, and `cleanup` (deleting the
//! node of a cancelled acquire or an unanswered release). Below them:
//! `turn` (the compatibility rule on the line: who holds, who watches what),
//! `queue` (paths, node names and lease data), `node_data` (labels and kept
//! tokens), `changes` (change notices), `hold` (lock-at-least-for), `sessions` and `session` (the
//! session and its liveness), `rpc` (the time bound of each request),
//! `error`.

#![warn(missing_docs)]

mod acquire;
mod backend;
mod changes;
mod cleanup;
mod config;
mod error;
mod extend;
mod hold;
mod node_data;
mod queue;
mod release;
mod rpc;
mod session;
mod sessions;
mod status;
mod turn;

pub use backend::ZkBackend;
pub use config::{ZkConfig, DEFAULT_PREFIX, DEFAULT_SESSION_TIMEOUT, DEFAULT_WAITER_TIMEOUT};

/// Re-export of the client library, for callers of [`ZkBackend::zk_client`].
pub use zookeeper_client;
