//! # distlock-redis
//!
//! Distributed locks on Redis: [`RedisBackend`] on one instance, and
//! [`RedlockBackend`] over several *independent* instances (not replicas of
//! each other) using the Redlock algorithm, both with fencing tokens and with
//! waiters woken by pub/sub. Both serve every mode of a name: the mutex
//! (which is the write lock), readers and semaphore permits; one instance
//! also upgrades a reader to the writer in place. [`RedisBackend`] also
//! runs on a primary found through Redis Sentinel (`redis+sentinel://`),
//! following it across failovers, and on a Redis Cluster
//! (`redis+cluster://`), each lock on the primary of its slot.
//!
//! ## URLs
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?params]      one instance
//! rediss://[user[:password]@]host[:port][/db][?params]     one instance over TLS
//! redlock://[user[:password]@]h1[:p1],[user[:password]@]h2[:p2],…[/db][?params]
//! redis+sentinel://[user[:password]@]s1:p1[,s2:p2…]/<master>[?db=&user=&password=&params]
//! redis+cluster://[user[:password]@]n1:p1[,n2:p2…][?params]
//! ```
//!
//! - The port defaults to 6379, the database to 0. IPv6 hosts go in brackets.
//! - User and password are percent-decoded (write `@`, `:`, `,`, `/` in a
//!   password as `%40`, `%3A`, `%2C`, `%2F`). `redis://:pw@…` authenticates
//!   the `default` user with `pw` (`requirepass`); `redis://user:pw@…` an ACL
//!   user.
//! - In a `redlock://` URL each instance may carry its own credentials; an
//!   instance without any uses those of the *first* instance.
//! - In a `redis+sentinel://` URL the hosts are the *sentinels* (with their
//!   own credentials, if any, before the first host), the path is the name
//!   they monitor the primary under, and `db=`, `user=`, `password=` are the
//!   primary's database and credentials. The primary is asked for whenever
//!   the connection is (re)made: after a lost connection, a timeout, or a
//!   `READONLY` reply (a demoted primary; the call is then made once more on
//!   the new one). Everything else is the one-instance backend's. TLS is not
//!   supported with Sentinel. See [`SentinelConfig`] and
//!   `docs/backends/redis.md` for what a failover does to held locks.
//! - In a `redis+cluster://` URL the hosts are seed nodes of the cluster
//!   (any; the rest are found), with the credentials every node takes
//!   (given once). Each lock's scripts go to the primary of its slot (its
//!   keys share a hash tag), following `MOVED`/`ASK` through failovers and
//!   resharding. Release notices go on sharded channels (`SPUBLISH`,
//!   `SSUBSCRIBE` on the lock's shard). A dead waiter is dropped when its
//!   queue entry dies (the liveness channel check is per node), and each
//!   lease of an `extend_many` is extended by its own call. TLS is not supported with
//!   Cluster. See [`ClusterConfig`] and `docs/backends/redis.md`.
//! - Parameters (the core's one vocabulary, read by
//!   [`BackendUrl`](distlock_core::BackendUrl)):
//!   - `prefix=` key prefix, default `distlock:`, no `{` or `}`;
//!   - `timeout=` (duration: `2s`, `500ms`; legacy `timeout_ms=<ms>`) the
//!     bound on one request to a single instance and on the connection
//!     check, default 2 s;
//!   - `fair=` serve waiters in arrival order (Redlock: the writer and
//!     readers), default `true`;
//!   - `waiter_timeout=` (older names `queue_ttl=`, `queue_ttl_ms=`) fair
//!     mode: the waiter-liveness window, default 1 s (see *Waiter
//!     liveness*);
//!   - `min_instance_timeout=` / `max_instance_timeout=` (legacy `_ms`
//!     forms) Redlock: the per-instance timeout is `ttl / 10` clamped to
//!     these, default 50 ms and 500 ms;
//!   - `replicas=` (single instance) after each grant and extension,
//!     `WAIT` until that many replicas acknowledged it, within
//!     `replica_timeout=` (default 500 ms); fewer: the grant is given back
//!     and the acquire fails with `Unavailable` (see
//!     `docs/backends/redis.md` for what `WAIT` does not guarantee);
//!   - `tls=` TLS to every instance (`rediss://` does it for one instance),
//!     through rustls, verified against the system's root certificates or
//!     `ca=<PEM file>`; `cert=<PEM file>&key=<PEM file>` present a client
//!     certificate; `danger_accept_invalid_certs=true` skips verification
//!     (tests only). The core's [`TlsSettings`](distlock_core::TlsSettings)
//!     reads them; `docs/backends/redis.md` has the details.
//!
//!   Booleans are `true/false/1/0/on/off/yes/no` in any case; unknown
//!   parameters are refused, naming them. The same settings by hand:
//!   [`RedisConfig`] and its `with_*` setters, then
//!   [`RedisBackend::from_config`] / [`RedlockBackend::from_config`]; on
//!   the application's own `redis::Client`s (address, credentials and TLS
//!   from the client, the options from a [`RedisConfig`]):
//!   [`RedisBackend::from_client`] / [`RedlockBackend::from_clients`].
//!
//! Passwords never appear in errors, logs or `Debug` output.
//!
//! ## Keys
//!
//! A lock named `n` uses `{<prefix><n'>}:lock` (the writer's owner token,
//! expiring with the ttl), `{<prefix><n'>}:holders` (readers and permits: a
//! sorted set of `<mode>:<owner token>` by expiry, expiring with its latest
//! member), `{<prefix><n'>}:fence` (the fencing counter, kept forever),
//! `{<prefix><n'>}:holder` (the latest elected writer's `<owner>:<label>`,
//! kept, trusted only while the lock key holds that owner), the
//! channel `{<prefix><n'>}:released`, with Redlock permits
//! `{<prefix><n'>}:permit:<i>` (permit slot `i`), and in fair mode
//! `{<prefix><n'>}:queue` and `{<prefix><n'>}:waiters` (on every Redlock
//! instance; expiring when nobody waits) and, per client, the liveness
//! channel `<prefix>alive:<client id>`. `n'` is `n` with `%`, `{`, `}` percent-escaped (so the hash tag
//! cannot be broken and all keys of a lock share a cluster slot) and
//! shortened with a hash suffix when longer than 512 bytes.
//!
//! ## Modes
//!
//! Every primitive is a [`Mode`](distlock_core::Mode) of one name, served by
//! both backends (`shared` and `semaphore` are claimed; `upgrade` on one
//! instance only). The scripts apply the core's compatibility rule
//! ([`Mode::fits`](distlock_core::Mode::fits); in fair mode
//! [`Mode::admitted`](distlock_core::Mode::admitted) on the queue), written
//! once in `scripts/lib/holds.lua` and `scripts/lib/queue.lua` and checked
//! against the core's by a test.
//!
//! - **Mutex / writer** ([`Mode::Exclusive`](distlock_core::Mode::Exclusive)):
//!   the lock key, as ever; the acquire script refuses it while the holders
//!   set exists (one `EXISTS`, the only cost the mutex pays for the other
//!   modes). Round trips as below.
//! - **Reader** ([`Mode::Shared`](distlock_core::Mode::Shared)): a member of
//!   the holders set, refused while the lock key is held; one script per
//!   operation, one round trip. Redlock: the same on every instance with a
//!   majority (queued like the writer in fair mode); a reader majority and
//!   a writer majority share an instance, where the later of the two was
//!   refused, so they never overlap.
//! - **Semaphore** ([`Mode::Permit`](distlock_core::Mode::Permit)): one
//!   instance counts the holders set's members (at most `limit`); a request
//!   with another count than the holders or queued requests is
//!   [`PermitMismatch`](distlock_core::LockError::PermitMismatch). Redlock
//!   does *not* count (holders on {A,B}, {A,C}, {B,C} each have a majority of
//!   three while every instance counts two): permit `i` of `n` is a mutex on
//!   its own key `permit:<i>` taken on a majority, so at most `n` hold. Each
//!   instance takes the first free slot from a random start in the same
//!   script (one round trip); when instances gave different slots, the
//!   majority's slot is kept and the others given back (one more round
//!   trip). All slots share the name's fencing counter. Redlock permits do
//!   not queue (in fair mode too): they race for the slots, and may pass a
//!   queued writer.
//! - **Upgrade** (one instance): one script turns the reader's member into
//!   the lock key once it is the only holder; while it waits it is first in
//!   the queue. Not on Redlock (see `docs/backends/redis.md`).
//!
//! ## Leader election and lock-at-least-for
//!
//! Both backends claim `labels`, `watch` and `at_least`. A labelled grant
//! (an election; by the acquire script or a release's hand-over) writes the
//! `:holder` key and publishes `+` on the lock's channel; status reports the
//! label and the writer's own token (Redlock: only when a quorum names one
//! owner). Leader observers watch the lock's channel on the client's shared
//! pub/sub connection, woken by every release, hand-over and labelled grant.
//! A release before a lock-at-least-for minimum shortens the hold's expiry to
//! what is owed and publishes `*`, so waiters wait for the new expiry. See
//! `docs/backends/redis.md`.
//!
//! ## What it guarantees
//!
//! - **Mutual exclusion** while a lease is valid. The backend reports when
//!   it sent the request that took (or extended) the lock; the core turns
//!   that into the lease's validity with its one drift rule
//!   ([`distlock_core::validity`]: sent + ttl − drift, on the monotonic
//!   clock). With Redlock, a lock is only granted when a quorum (N/2 + 1) of
//!   instances granted it and validity remains after all round trips.
//! - **Liveness** is the ttl alone: a holder that vanishes frees the lock
//!   after at most its ttl. There are no sessions; [`LockClient`] guards
//!   extend themselves at a third of the ttl.
//! - **Fencing tokens** strictly increase over every grant of a name, in any
//!   mode (readers granted together get distinct tokens). Every script that
//!   grants issues `max(counter + 1, server clock in µs)` and stores it as
//!   the name's counter (one rule, `scripts/lib/fence.lua`). One instance:
//!   that is the token. Redlock: the client proposes its own clock (a
//!   little ahead) so that the instances issue the same value (an instance
//!   takes a proposal only above its own value and at most 100 ms ahead of
//!   its clock); the token is the highest value among the granting instances,
//!   and unless a quorum of them issued that value themselves, it is
//!   written back (raise-only, only while we hold there, and counted only
//!   where the write moved the counter up to it) to a quorum before the
//!   lease is returned. Two quorums intersect, so a grant requested later
//!   gets a higher token, and no two grants can both have moved one
//!   instance's counter to the same value. The counter makes this exact
//!   while the instances keep their data; the clock keeps tokens rising
//!   across instances that forget it (a restart without persistence, a
//!   failover to a replica that missed the last grant, any number of
//!   Redlock instances), as long as the clock of the instance(s) granting
//!   next has not stepped back by more than the time between the two
//!   grants (Redlock: less 100 ms, how far an accepted proposal may run
//!   ahead of a clock). A restarted empty instance still forgets its *locks* (see
//!   `docs/backends/redis.md`).
//! - **Waiting** is by notification: the release script `PUBLISH`es on the
//!   lock's channel. A waiter subscribes before its second attempt, and each
//!   wait ends on a release message or after the holder's remaining PTTL, so
//!   a crashed holder costs no more than its ttl. There is no fixed-interval
//!   polling (only while too few instances can be subscribed is a wait cut to
//!   a backoff delay). One pub/sub connection per instance per backend
//!   client is shared by all its waiters; one task fans messages out.
//! - **Fairness**: on one instance (by default) waiters queue on the server
//!   (a sorted set of owner tokens by arrival, with each one's mode) and a
//!   request goes only when it and every request before it fit together
//!   ([`Mode::admitted`](distlock_core::Mode::admitted)): a reader arriving
//!   while a writer waits queues behind it, permits go in order, readers at
//!   the head go together. The release script *hands the name over*: it
//!   grants every request the queue admits now (each with a new fencing
//!   token) and publishes `<owner>:<token>` to each, so exactly those
//!   waiters wake (no herd); each confirms its hold with its next attempt,
//!   which grants it the full ttl. A client that releases and re-acquires
//!   at once goes to the back of the line (`fifo = true`). A try without
//!   waiting does not queue and fails while anyone waits. Redlock (fair by
//!   default, `fifo = true`): every instance keeps such a queue for the
//!   writer and readers, ordered by the waiter's *ticket* — its client's
//!   clock in µs when the acquire began, then its owner token — the same
//!   on every instance, so all instances put the same waiters in the same
//!   order whenever each request reaches them, and a waiter that (re)joins
//!   an instance late takes the same place there. A release hands each
//!   instance to its head; the head, woken, confirms with one attempt on
//!   every instance and holds once a quorum granted it, with the fencing
//!   token settled as below (hand-overs are grants like any other, so the
//!   token rule and its argument are unchanged). The queue needs no quorum
//!   of its own: an instance whose queue lost a waiter (a missed request,
//!   an entry expired) hands over to the next one, whose attempt then
//!   fails there while the others hand over to the first; partial holds
//!   are given back (or, when a quorum still refused — the confirmation
//!   overtook the release there — kept once, shortened to the
//!   waiter-liveness window), and the waiter's next attempt rejoins at its
//!   ticket.
//!   Order is by the clients' clocks: a client whose clock runs behind
//!   gets ahead in line (never ahead of a holder). A holder leaves any
//!   queue it is still in when it releases. Readers queue too; Redlock
//!   permits do not. With `fair=false` there is no queue: every waiter
//!   wakes on a release and they race; each waiter is bounded only by its
//!   own wait, and nothing keeps readers from overtaking a waiting
//!   writer.
//! - **Waiter liveness** (fair mode, on each instance): a dead waiter delays
//!   the next live one by at most `waiter_timeout` (default 1 s), whatever
//!   its ttl. A
//!   waiter refreshes its queue entry every third of the window and is
//!   dropped once the entry is a window old; a waiter whose process died is
//!   skipped at once, since the server dropped its client's liveness
//!   channel subscription with the connection (`PUBSUB NUMSUB`); and a hold
//!   handed over lives only until the waiter's entry would have died,
//!   unless the waiter confirms it. Only a vanished *holder* costs its ttl.
//! - **Round trips** (every mode): acquire 1 per attempt (Redlock: 1, or 2
//!   when the counters of the granting quorum disagree, plus 1 to give back
//!   a partial hold or permit slots other than the majority's; fair mode:
//!   a hold handed over by a release costs the attempt that confirms it);
//!   upgrade as acquire; extend 1 for
//!   up to 256 leases (the core splits
//!   [`extend_many`](distlock_core::DistributedLock::extend_many) into
//!   batches of that size, each one script call per instance); release 1;
//!   status 1; a waiter's first wait adds one SUBSCRIBE unless the channel is
//!   still subscribed from an earlier wait (fair mode: one more on a new
//!   pub/sub connection, for the client's liveness channel); with
//!   `replicas`, one `WAIT` more per grant and extension. Redlock
//!   runs each round on all instances in parallel, each call bounded by the
//!   per-instance timeout, so a dead instance costs at most that timeout.
//! - **Partitions**: a holder cut off from its instances cannot extend; its
//!   guard reports loss when its validity passes, before the keys expire on
//!   the servers (validity ends the core's drift allowance earlier), so
//!   before anyone else can
//!   take the lock. With Redlock, a minority of instances down or cut off is
//!   tolerated; without a quorum, operations fail with `Unavailable`.
//! - **Not guaranteed**: safety across an instance that loses its data
//!   (restart without fsync'd AOF, failover to a lagging replica), or across
//!   clocks that jump on the servers (Redis expires keys by wall clock).
//!   Use fencing tokens at the protected resource for correctness that does
//!   not depend on timing.
//!
//! Option and lease checks, lease validity, `extend_many` batching, tracing
//! and metrics are the core's checked layer around this crate's
//! [`LockBackend`](distlock_core::LockBackend) implementations: this crate
//! is only the algorithm.
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use std::sync::Arc;
//! use distlock_core::LockClient;
//! use distlock_redis::RedlockBackend;
//!
//! let backend = RedlockBackend::connect("redlock://h1:6379,h2:6379,h3:6379").await?;
//! let client = LockClient::new(Arc::new(backend));
//! let guard = client.lock("billing/run").await?;
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! [`LockClient`]: distlock_core::LockClient

#![warn(missing_docs)]

mod cluster;
mod config;
mod engine;
mod instance;
mod keys;
mod notify;
mod redlock;
mod sentinel;
mod single;

use std::sync::Arc;

use distlock_core::{DistributedLock, Result};

pub use cluster::ClusterConfig;
pub use config::{
    Credentials, InstanceConfig, RedisConfig, DEFAULT_MAX_INSTANCE_TIMEOUT,
    DEFAULT_MIN_INSTANCE_TIMEOUT, DEFAULT_PREFIX, DEFAULT_REPLICA_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_WAITER_TIMEOUT,
};
/// The `redis` crate this backend is built on, for applications that share
/// their clients with it ([`RedisBackend::from_client`],
/// [`RedlockBackend::from_clients`]).
pub use redis;
pub use redlock::RedlockBackend;
pub use sentinel::SentinelConfig;
pub use single::RedisBackend;

/// The kind of the single-instance backend, recorded in its leases.
const REDIS: &str = "redis";
/// The kind of the Redlock backend, recorded in its leases.
const REDLOCK: &str = "redlock";

/// Connects to the backend a `redis://`, `rediss://`, `redis+sentinel://`,
/// `redis+cluster://` or `redlock://` URL names.
///
/// # Cancel safety
///
/// Dropping the future abandons the connection attempt; nothing is held.
pub async fn connect(url: &str) -> Result<Arc<dyn DistributedLock>> {
    let config = RedisConfig::from_url(url)?;
    if config.redlock {
        Ok(Arc::new(RedlockBackend::from_config(config).await?))
    } else {
        Ok(Arc::new(RedisBackend::from_config(config).await?))
    }
}
