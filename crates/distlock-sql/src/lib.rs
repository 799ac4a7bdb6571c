//! # distlock-sql
//!
//! A distlock backend over SQLite, PostgreSQL or MySQL/MariaDB, through
//! [sqlx](https://docs.rs/sqlx): mutexes, reader-writer locks and
//! semaphores, held either with the database's own session locks
//! (PostgreSQL advisory locks, MySQL/MariaDB `GET_LOCK`; the default on
//! those two) or as rows of a locks table (the table strategy, the only one
//! on SQLite; see [Strategies](#strategies)). Each database is a Cargo
//! feature (`sqlite`, `postgres`, `mysql`) and a URL scheme:
//!
//! | URL | database |
//! |---|---|
//! | `sqlite://path/to/locks.db` | SQLite file (created if missing), shared by processes on this machine |
//! | `sqlite:///absolute/path.db` | the same, absolute path |
//! | `sqlite::memory:` | in-memory SQLite, this process only (`cross_process = false`) |
//! | `postgres://user:password@host:5432/db` (or `postgresql://`) | PostgreSQL |
//! | `mysql://user:password@host:3306/db` (or `mariadb://`) | MySQL or MariaDB |
//!
//! Query parameters `table`, `create_table`, `pool_size`, `timeout` (legacy
//! `timeout_ms`), `strategy` and, for servers, `connect_timeout`,
//! `sessions`, `session_timeout`, `session_ping` and (MySQL)
//! `shared_slots` are read by distlock
//! and never reach the driver, nor do the TLS parameters `tls`, `ca`,
//! `cert`, `key`, `danger_accept_invalid_certs` (mapped onto the driver's
//! options; [`SqlConfig::with_tls`]; TLS needs the `tls-rustls` feature);
//! the driver's own parameters (`sslmode=…` and so on) pass through, and any other
//! parameter is refused by name (see [`SqlConfig`]). The port defaults to
//! 5432 (PostgreSQL) and 3306 (MySQL); IPv6 hosts go in brackets.
//!
//! ```no_run
//! # async fn demo() -> distlock_core::Result<()> {
//! use distlock_core::LockClient;
//! use distlock_sql::SqlBackend;
//!
//! let backend = SqlBackend::connect("sqlite://target/locks.db").await?;
//! let client = LockClient::new(std::sync::Arc::new(backend));
//! let guard = client.lock("reports/daily").await?;
//! // … write to the protected resource, passing guard.fencing_token() …
//! guard.release().await?;
//! let reader = client.read_lock("reports/daily").await?; // beside other readers
//! reader.release().await?;
//! let slots = client.semaphore("exports", 3)?; // at most 3 at once
//! let permit = slots.acquire().await?;
//! permit.release().await?;
//! # Ok(()) }
//! ```
//!
//! ## Strategies
//!
//! `strategy=session|table` in the URL, or [`SqlConfig::with_strategy`]:
//!
//! | | `session` (default: PostgreSQL, MySQL/MariaDB) | `table` (SQLite; any database) |
//! |---|---|---|
//! | a mutex or writer is | the name's session lock, on one of the backend's session connections | the name's row of the locks table, with a ttl on the database clock |
//! | take / release | one statement each (fencing token included) | one statement each when free |
//! | a waiter | waits in the server's queue: served in arrival order, at once on release | is woken by `NOTIFY` (PostgreSQL) or polls |
//! | a holder that vanishes | frees its locks when its connection closes (a killed process: at once), or after `session_timeout` without a word from it | frees them after their ttl |
//! | a lease's liveness | its session: `lost()` fires when the session ends | its ttl, renewed by the client |
//! | upgrade (reader to writer) | no | yes |
//! | a lease handed to another process | no | yes |
//! | behind PgBouncer in transaction mode | no (detected: see below) | yes |
//! | connections | the pool, plus up to `sessions` held open | the pool |
//! | a leader's label | a row beside the session lock | a column of the lock's row |
//! | released before its lock-at-least-for minimum | kept by the server: PostgreSQL, a statement sleeping on the hold's own session; MySQL, a row | its expiry set to the minimum |
//!
//! Choose `session` for throughput and prompt hand-over under contention;
//! choose `table` to renew or release a lease from another process, to
//! upgrade readers, to go through a transaction-mode pooler, or to bound a
//! crashed holder by its ttl rather than by its connection. Every client
//! of one table must use the same strategy: a session lock and a row do not
//! exclude each other.
//!
//! ## The session strategy
//!
//! - **Keys.** A name's session lock is derived from SHA-256(`<table>` 0x00
//!   `<name>`): on PostgreSQL its first 8 bytes as the `bigint` key of an
//!   advisory lock, on MySQL/MariaDB `dl:` and its first 20 bytes in hex
//!   as the `GET_LOCK` name (43 of the 64 characters allowed). Two names
//!   share a PostgreSQL key with probability about n²/2⁶⁵ for n names in
//!   use (10⁶ names: 3·10⁻⁸); they would then exclude each other, nothing
//!   worse. `GET_LOCK` names are server-wide: two databases on one server
//!   whose tables share a name share their locks (they exclude each other;
//!   pick different `table=` names to keep them apart).
//! - **Mutex and writer.** PostgreSQL: `pg_try_advisory_lock` for a try,
//!   else one statement that sets `lock_timeout` to the remaining wait and
//!   waits in `pg_advisory_lock`; either draws the fencing token from the
//!   sequence `<table>_fence` in the same statement, after the grant.
//!   Release: `pg_advisory_unlock`. MySQL/MariaDB: `GET_LOCK(name,
//!   timeout)` and, in the same statement, a look at the name's presence
//!   slots (`IS_FREE_LOCK`, no table read); the token is `UUID_SHORT()`.
//!   While some slot is held it asks for live readers' and permits' rows;
//!   while readers are in, the writer keeps the lock (no new reader comes
//!   in: writers are not starved) and asks again, polling, until they
//!   leave. Release: `RELEASE_LOCK`.
//! - **Readers and permits** keep the table strategy's rows in the holders
//!   table (so the core's rule decides among them, with
//!   [`PermitMismatch`](distlock_core::LockError::PermitMismatch) and
//!   expiry as below), behind a gate on the name's session lock:
//!   PostgreSQL's shared advisory lock, held for the hold's life (a
//!   writer's exclusive request waits for every reader's; shared requests
//!   queue behind a waiting writer); MySQL's `GET_LOCK`, held only around
//!   the row's grant (one statement more), under which the reader also
//!   takes one of the name's `shared_slots` presence slots (default 8;
//!   one per backend and name, kept while the backend has holders of it;
//!   at most that many backends hold one name's read locks or permits at
//!   once). The token is drawn with the gate. A reader's or permit's row
//!   lives by its ttl, renewed as under the table strategy, and the lease
//!   also by its session (PostgreSQL: the shared lock's; MySQL: the
//!   slot's).
//! - **Sessions.** Each backend opens at most `sessions` (default 8)
//!   connections for its session locks, beside its pool (`pool_size`,
//!   default 4) and, on PostgreSQL, one listening connection: at most
//!   `pool_size + sessions + 1` connections per client. One session holds
//!   any number of locks (10,000 on one client are fine); a session is
//!   kept while it holds one and closed after a minute unused. Session
//!   locks are re-entrant, so a request never goes to a session that holds
//!   (or is taking) its name: two local holders of one mutex are
//!   impossible. A waiting acquire occupies a session that holds nothing
//!   until the server answers; at most `sessions - 1` wait so at once,
//!   and further waiters try on the other sessions, polling with their
//!   backoff (so the server's arrival order holds among at most that many
//!   waiters of one client). Waiting for a session counts against the
//!   acquire's wait.
//! - **Liveness.** The server ends a session it has not heard from for
//!   `session_timeout` (default 5 s; `idle_session_timeout` on
//!   PostgreSQL 14 and later, `wait_timeout` on MySQL/MariaDB), freeing its
//!   locks. The backend proves each session alive: every statement the
//!   server answers counts, and a session holding locks is pinged when it
//!   has had none for `session_ping` (default 250 ms). A session that does
//!   not answer for three pings is `Suspended`; once `session_timeout`,
//!   less the core's drift allowance, has passed since the server last
//!   heard from it, it is `Lost` — before the server can have freed its
//!   locks for anyone else. A session found ended (killed with
//!   `pg_terminate_backend` or `KILL`, the server restarted) is lost at
//!   once: within a ping. Every lease on a lost session is lost
//!   ([`LockBackend::session`](distlock_core::LockBackend::session) feeds
//!   the guards' `lost()`), and renewing it answers `NotHeld`. Renewing a
//!   session lock costs no round trip while its session is known alive
//!   (the renewal reports when the server last heard from it). A session
//!   lock has no ttl (`ttl_expiry = false`): the lease's ttl is only how
//!   long the client trusts it between renewals.
//! - **Fencing.** PostgreSQL: the sequence `<table>_fence` (created with
//!   the tables) starts at 2⁵², above any token the table strategy can
//!   have issued for a name, so tokens keep rising when a name moves from
//!   `strategy=table` to `strategy=session` (not the other way round); a
//!   sequence never goes back, restarts included. MySQL/MariaDB:
//!   `UUID_SHORT()`, which rises across the server's restarts as long as
//!   its `server_id` stays the same, its clock does not step back across a
//!   restart, and fewer than 2²⁴ tokens a second of uptime were drawn on
//!   average. Every grant of every mode draws from the same source.
//! - **Cancellation.** A dropped wait closes its session connection (it
//!   holds nothing else; PostgreSQL drops a waiter whose client left, and
//!   frees a lock granted to it meanwhile). A dropped try, or a lock taken
//!   and not yet returned, is given back in the background on the same
//!   session, after the statement; the name stays reserved on that
//!   session until then.
//! - **Poolers.** Session locks need every statement of a session on one
//!   server session. Behind PgBouncer in transaction mode (or ProxySQL
//!   multiplexing) they would be taken and given back on arbitrary server
//!   sessions: a new session connection checks that the same server
//!   session answers twice, and every ping checks it again; a mismatch
//!   fails the connection, or loses the session, with a message naming the
//!   pooler. Use session pooling, a direct connection, or
//!   `strategy=table`.
//!
//! Round trips under the session strategy:
//!
//! | operation | PostgreSQL | MySQL/MariaDB |
//! |---|---|---|
//! | mutex/writer acquire (try, or wait in the server) | 1 | 1 (+1 per look while a presence slot is held) |
//! | mutex/writer release | 1 | 1 |
//! | mutex/writer extend, one or a batch | 0 (1 ping per session not heard from lately) | the same |
//! | reader or permit acquire (per attempt) | 1 (the gate) + the table's grant transaction | 1 + 1 (the slot, for a backend's first holder of the name) + the grant transaction + 1 (the gate given back) |
//! | reader or permit extend | 1 (its row) | 1 |
//! | reader or permit release | 1 (row) and 1 (gate), at once | 1 (row) and 1 (the slot, for the last holder), at once |
//! | status | 1 (`pg_locks`; tells how many wait) | 1 |
//! | opening a session connection (once) | connection + 2 | connection + 3 |
//!
//! ## Leader election, observers, lock-at-least-for
//!
//! Both strategies claim `labels` and `at_least`, and `watch` on
//! PostgreSQL (labelled grants notify `<table>_granted`, releases the
//! table's channel; MySQL/MariaDB and SQLite observers poll). A leader's
//! label is written by the acquiring statement under the table strategy
//! (the `label` column), and is a row of kind `l` of the holders table
//! beside the session lock under the session strategy (one statement more
//! to take, renew and release; reported only while the lock is held). A
//! hold released before its minimum stays held with no client: under the
//! table strategy its expiry becomes the minimum; under the session
//! strategy the hold was taken on a session of its own,
//! whose last statement sleeps on the server until the minimum and then
//! gives the lock back (the grants read nothing for it), on MySQL as on
//! PostgreSQL. Costs and guarantees:
//! `docs/backends/sql.md`, *Leader election, observers and
//! lock-at-least-for*.
//!
//! The sections that follow, up to *Errors*, describe the table strategy.
//!
//! ## The primitives (table strategy)
//!
//! Every primitive is a mode of one name (the core's
//! [`Mode`](distlock_core::Mode)), and every grant of every mode gets the
//! name's next fencing token. The mutex and the writer are the same hold.
//!
//! - **Mutex / writer** (`Mode::Exclusive`): the holder lives in the name's
//!   row of the locks table (`owner`, `expires_at`). One upsert takes it when
//!   the row is absent, or released or expired *and* no reader or permit
//!   holder lives, incrementing `fence` in the same statement. The readers'
//!   check is the one extra on this path, inside the same statement: on
//!   PostgreSQL and MySQL two columns of the same row (`shared_count`,
//!   `shared_until`, kept by the readers' grants, renewals and releases), on
//!   SQLite one primary-key probe of the holders table. Round trips: 1 when
//!   free; when held, 1 on PostgreSQL, 2 on MySQL and SQLite (the second
//!   reads the holders' remaining time).
//! - **Reader** (`Mode::Shared`) and **semaphore permit**
//!   (`Mode::Permit { limit }`): one row each in the holders table
//!   (`<table>_holders`), with its own expiry. A grant is one transaction:
//!   lock the name's row (creating it if missing), delete the name's expired
//!   holders, read the rest, decide with the core's one compatibility rule
//!   ([`Mode::fits`](distlock_core::Mode::fits): readers beside readers only;
//!   permits beside permits of the same count while fewer than that many; a
//!   permit of another count is [`PermitMismatch`](distlock_core::LockError::PermitMismatch),
//!   refused at once) and whether a writer waits (below), then insert the
//!   holder and bump the name's `fence`. Round trips: PostgreSQL 5 (`BEGIN`,
//!   lock, read with the expired rows deleted, insert-and-count, `COMMIT`), 4
//!   when it must wait; MySQL 7 (`BEGIN`, lock, delete expired, read, insert,
//!   count, `COMMIT`), 5 when it must wait; SQLite the same statements as
//!   MySQL, in one `BEGIN IMMEDIATE` transaction.
//! - **Upgrade** (reader to writer, in place; capability `upgrade`): one
//!   transaction per attempt that turns the owner's reader row into the
//!   exclusive hold of the name's row, with the next fencing token, only
//!   when that reader is the only holder; while others hold it, the attempt
//!   records the upgrade's intent instead (new readers then wait) and waits
//!   for them to leave. Round trips per attempt as for a reader's grant. An
//!   attempt dropped after its transaction committed is undone in the
//!   background (the exclusive hold becomes the reader again), conditioned
//!   on the fencing token it took, so a later upgrade is never undone.
//! - **Renew and release**, per owner, in every mode: one statement (MySQL
//!   releases a reader or permit with two: mark it and count it, then delete
//!   the row). `extend_many` renews a batch with one statement per kind of
//!   lease in it (the exclusive ones, the readers and permits), the two at
//!   once, however many leases it holds (up to [`MAX_BATCH`]).
//!
//! ## Writers are not starved
//!
//! A writer that finds readers or permit
//! holders in its way records an *intent* in the holders table (kind `w`),
//! living one second on the database clock and refreshed by each of its
//! attempts (it polls, or waits for `NOTIFY`, at most 250 ms at a time while
//! it has one); while an intent lives, no new reader or permit is granted,
//! so the holders drain and the writer goes next. The intent is removed
//! when the writer is granted or gives up (one statement), or in the
//! background when its acquire is dropped; a writer that crashed holds
//! readers back for at most one second. Readers among themselves are served
//! in no particular order; writers among themselves take turns (see
//! [Waiting](#waiting)), but not strictly first come first served (`fifo =
//! false`).
//!
//! ## What it guarantees
//!
//! - **Exclusion** while a lease is valid, by mode: a writer alone; readers
//!   together; at most `limit` permits. Every change to a name's holds locks
//!   (or, on SQLite, write-locks the file around) the name's row first, so
//!   the database serialises them, and each transaction reads the holders
//!   after taking that lock.
//! - **Liveness by ttl**: a holder that vanishes, in any mode, frees its
//!   hold once its ttl passes. Expiry is judged by the database's own clock
//!   inside each statement (`now()` on PostgreSQL, `UTC_TIMESTAMP(6)` on
//!   MySQL, `julianday('now')` in milliseconds on SQLite), never by the
//!   application's. The backend reports the instant it *sent* the statement
//!   or transaction that took or extended the hold; the lease's validity is
//!   computed from it by the one drift rule of the core
//!   ([`distlock_core::validity`]). Since the database's "now" is read after
//!   the request was sent, and the ttl is rounded up to the database's
//!   resolution, the row always outlives the validity the lease reports.
//!   Whatever judges a hold expired and acts on it makes that final: a grant
//!   deletes the expired holders it skipped, the writer's upsert clears the
//!   readers' columns, a reader's grant clears an expired writer — so a
//!   renewal whose clock was read earlier can never bring one back.
//! - **Fencing**: the name's row keeps a `fence` counter that every grant of
//!   every mode increments under the row's lock. Rows are never deleted, so
//!   tokens rise across holders and modes forever.
//! - **Ownership**: renew and release are conditioned on the 128-bit random
//!   owner token (drawn by the core for each acquire) and on the hold not
//!   having expired, so an expired lease is never brought back, even when
//!   nobody took the lock since; a lease exported with `Lease::export` can be
//!   renewed and released from another process (`lease_handoff`).
//! - **Cancellation**: dropping an `acquire` (or `upgrade`) future leaves
//!   nothing held: an attempt whose outcome is unknown is followed, in the
//!   background, by a release conditioned on that acquire's owner token (for
//!   an upgrade: by undoing it, so the reader stays as it was) through the
//!   core's [`CleanupOnDrop`](distlock_core::cleanup::CleanupOnDrop), issued
//!   on the attempt's own connection so that it runs after the attempt's
//!   statements even when the database is still running them. A grant
//!   transaction left open is rolled back first, and that connection leaves
//!   the pool. A writer's intent and a waiter's queue place are removed in
//!   the background.
//!
//! It does not guarantee: safety across a jump of the database server's wall
//! clock (a clock stepped forward expires leases early, as with any
//! ttl-based lock; use fencing tokens for the resource); fairness among
//! readers, or strict arrival order among writers; availability beyond the
//! database's own (a database that does not answer within the timeout
//! gives `Unavailable`).
//!
//! ## Waiting
//!
//! - **PostgreSQL**: waiters are woken by `LISTEN`/`NOTIFY`. Every release
//!   (writer, reader, permit) and a writer's giving up call
//!   `pg_notify('<table>', <key>)`, delivered when they commit. Each backend
//!   opens one extra connection, on the first acquire that waits, that
//!   listens on the table's channel; its waiters of each key queue in the
//!   order they started waiting, and a release wakes the first of them that
//!   is not awake already, not all of them. A woken waiter that does not go
//!   on to try the lock (it gave up, timed out, failed or was dropped)
//!   passes the wake to the next one, so no waiter sleeps while the lock is
//!   free; a reader or permit holder that got in on a wake passes it on too.
//!   Every backend (process) hears each release and wakes one waiter of its
//!   own. A waiter joins before its first attempt, so a release in between
//!   is never missed. A hold abandoned without release sends nothing:
//!   waiters then retry when the remaining time of the holders in their way
//!   (reported by the attempt) runs out. If the listening connection drops,
//!   every waiter retries at once, and again once `LISTEN` is back in
//!   effect.
//! - **MySQL/MariaDB and SQLite** have no notification that a statement can
//!   send to another session, so waiters poll. So that the client that just
//!   released cannot take the lock again, and again, while others poll,
//!   exclusive waiters keep *places* in a queue on the database: rows of the
//!   holders table (kind `q`) whose `permits` column holds a ticket (on
//!   MySQL the database clock when the place was taken; on SQLite, whose
//!   clock is the machine's, the moment the acquire began), living one
//!   second on the database clock and kept by the waiter's attempts (each
//!   waiter attempts at least every 250 ms). The acquire statement takes a
//!   free lock only for the first live place, or when no place lives; a
//!   request that tries once never takes a place, and gives way to those
//!   who have one. A waiter with a place looks before it tries (one read,
//!   which locks nothing) and runs the acquire statement only when the lock
//!   is free and its place is first. It looks again after the acquire
//!   options' [`Backoff`](distlock_core::Backoff), started over whenever
//!   the line moved (a grant, or fewer places ahead) and stretched by the
//!   number of places ahead (at most nine times), never past the remaining
//!   time of the holders in its way as computed by the database, nor past
//!   250 ms. A place is removed with the waiter's intent when it is granted
//!   or gives up (one statement, which also removes the name's places that
//!   lapsed), or in the background when its acquire is dropped; a waiter
//!   that vanished holds the queue up for at most one second. Readers and
//!   permit holders keep no places.
//!
//! On MySQL, InnoDB may roll back one of two transactions that wait on each
//! other's gap locks (a deadlock, SQLSTATE 40001); the holders' statements
//! and transactions are then tried again, up to three times.
//!
//! ## Round trips per operation
//!
//! | operation | PostgreSQL | MySQL/MariaDB | SQLite |
//! |---|---|---|---|
//! | mutex/writer acquire, free | 1 | 1 | 1 statement |
//! | mutex/writer acquire, held, trying once | 1 | 1 | 1 statement |
//! | mutex/writer acquire, held (per attempt) | 1 | 2, +1 to take or keep the place (about every 250 ms) | 2 (+1) statements |
//! | … waiting with a place (per attempt) | — | 1 (the look), +1 when it is its turn | 1 (+1) statements |
//! | … with readers in the way: the intent | +1 per attempt, +1 at the end | +1 per attempt, +1 at the end (with the place's removal) | +1, +1 statement |
//! | … after waiting with a place | — | +1 at the end (the place's removal) | +1 statement |
//! | reader or permit acquire (per attempt) | 5 (4 when it waits) | 7 (5 when it waits) | 7 (5) statements, one transaction |
//! | upgrade (per attempt) | 5 | 7 (6 when it waits) | 7 (6) statements, one transaction |
//! | extend, any mode | 1 | 1 | 1 statement |
//! | extend_many, per batch of any size | 1 per kind of lease, at once | 1 per kind (2 when some lease was lost) | 1 statement per kind |
//! | release, mutex/writer | 1 (notification included) | 1 | 1 statement |
//! | release, reader or permit | 1 (notification included) | 2 | 1 statement |
//! | status | 1 | 1 | 1 statement |
//!
//! Every operation first takes one of the pool's connections. Waiting for
//! one is not waiting for the database: an acquire waits for a free
//! connection as long as its wait allows (never less than the timeout), and
//! the timeout applies to its statements once it has one; other operations
//! wait at most the timeout for a connection, then the timeout for their
//! statements. So a client with many acquisitions in flight queues them on
//! its pool rather than failing with `Unavailable`.
//!
//! `extend_many` extends a batch with one `UPDATE` joined to the batch's
//! `(key, owner, ttl)` rows, which travel as one parameter whatever their
//! number: three arrays on PostgreSQL, one JSON array read by `JSON_TABLE`
//! on MySQL/MariaDB (keys in hex) and by `json_each` on SQLite. It is
//! judged by the database clock like a single extend; PostgreSQL and
//! SQLite return the rows extended. MySQL cannot return rows from an
//! `UPDATE`: its matched-rows count says whether every lease was extended,
//! and only when it falls short does a second statement read which leases
//! are still held (their positions in the array; a lease is held then only
//! if the `UPDATE` extended it). A batch carries at most [`MAX_BATCH`]
//! leases (16 384: about 10 MB of JSON on MySQL at most, within MariaDB's
//! default `max_allowed_packet`); the core splits larger ones. 10 000
//! leases take well under a second on each database.
//!
//! On PostgreSQL an exclusive attempt on a visibly held lock is read-only (a
//! `NOT EXISTS` pre-check skips the upsert, which would otherwise lock the
//! holder's row and flush a commit). On MySQL the exclusive acquire reports
//! its outcome through `LAST_INSERT_ID(expr)` (MariaDB has no `RETURNING` on
//! `INSERT … ON DUPLICATE KEY UPDATE`), and so do the readers' grants; see
//! `src/sql/mysql/acquire.sql`.
//!
//! Connecting to PostgreSQL or MySQL opens one direct connection first, so
//! a refused connection or a wrong password is reported as such rather than
//! as a pool timeout, then checks that both tables exist and are current
//! (one round trip) and creates or updates what is missing, unless
//! `create_table=false`.
//!
//! ## The tables
//!
//! Default name `distlock_locks` (any identifier matching
//! `[A-Za-z_][A-Za-z0-9_]{0,54}` via `?table=`), and beside it
//! `distlock_locks_holders` (`<table>_holders`; the table name is kept
//! short enough for it to fit PostgreSQL's 63-byte identifiers). Lock names
//! are stored in a 255-byte key, bound as parameters (never spliced into
//! SQL) and compared case-sensitively on every database; names longer than
//! 255 bytes are shortened with
//! [`LockName::key_within`](distlock_core::LockName::key_within) (a prefix
//! plus 32 hex digits of the name's SHA-256). The DDL, which [`ddl`] also
//! returns for users who manage the schema themselves (`create_table=false`):
//!
//! SQLite:
//! ```sql
#![doc = include_str!("sql/sqlite/create.sql")]
//! ```
//! PostgreSQL:
//! ```sql
#![doc = include_str!("sql/postgres/create.sql")]
//! ```
//! MySQL/MariaDB:
//! ```sql
#![doc = include_str!("sql/mysql/create.sql")]
//! ```
//! (with `{table}` replaced by the table name).
//!
//! A locks table made by an earlier version (no readers) is brought up to
//! date on connect: SQLite gains the holders table; PostgreSQL and MySQL
//! also gain the `shared_count` and `shared_until` columns
//! (`src/sql/<database>/upgrade.sql`); tables from before leader election
//! gain their nullable `label` columns (the same file on PostgreSQL and
//! SQLite, `upgrade_label.sql` and `holders/upgrade_label.sql` on MySQL).
//! With `create_table=false`, run the holders table's `CREATE TABLE` above
//! and those `ALTER TABLE`s yourself.
//!
//! ## SQLite across processes
//!
//! The file is opened in WAL mode with `synchronous = FULL` (a committed
//! grant survives a power cut, so no fencing token is issued twice) and a
//! busy timeout equal to the operation timeout. Every statement of the
//! mutex path is one autocommit statement that takes SQLite's write lock up
//! front; the grants of readers and permits, which read before they write,
//! are `BEGIN IMMEDIATE` transactions, which take it up front too. So
//! concurrent processes queue on the busy handler instead of failing with
//! `SQLITE_BUSY`.
//!
//! ## Errors
//!
//! A malformed URL or table name is `InvalidConfig`; a database that does
//! not answer within the timeout (default 5 s, `timeout=`; connecting is
//! bounded by `connect_timeout`, by default the same) or refuses the
//! connection is `Unavailable` (so is an operation that finds no free
//! connection of its pool within its bound, and says so); an error reported
//! by the database (for
//! example missing privileges on the table) is `Backend`, naming the
//! operation, the lock and the table, and carrying the database's message.
//! A permit request whose count differs from the name's holders' is
//! `PermitMismatch`. Passwords never appear in errors, logs or `Debug`
//! output.
//!
//! ## Code map
//!
//! `lock` is the entry point ([`LockBackend`](distlock_core::LockBackend),
//! each operation by mode); `acquire` is one acquire's attempts (the
//! writer's intent included), `upgrade` an upgrade's, both on `attempts`
//! (what the attempts of one request share: the waiting, the intent's
//! removal, an attempt's connection and its clean-up); `renew` the
//! renewals, `verdict` the decision on what a grant transaction read (the
//! core's rule plus the writer-waiting rule), `holds` what such a
//! transaction reads and decides. They use `store`, the tables with
//! timeouts and error context, which sees the database only through the
//! `dialect` trait. `tables` implements that trait once for every
//! database: it runs (`run`) the statements of a `statement::Sql`, and the
//! readers', permits' and intents' sequences of them (`grants`), on the
//! database's `flavor`; `sqlite`, `postgres` and `mysql` each give their
//! statements under `src/sql/` (what each binds, how each answers) and
//! implement `flavor::Flavor` (binding, rows, table creation, batches,
//! notifications). `session` is the session strategy (its own code map
//! is in its module docs). `backend` connects and picks the database;
//! `notify`
//! hands PostgreSQL's notifications to waiters, one per release, and
//! `watch` to observers, every one; `config`
//! reads the URL; `key` turns a name into a row key.
//!
//! More detail, and measured overhead against the raw statements, in
//! `docs/backends/sql.md`.

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("distlock-sql needs at least one of the features `sqlite`, `postgres`, `mysql`");

mod acquire;
mod attempts;
mod backend;
mod config;
mod dialect;
mod flavor;
mod grants;
mod holds;
mod key;
mod lock;
#[cfg(feature = "mysql")]
mod mysql;
mod notify;
#[cfg(feature = "postgres")]
mod postgres;
mod renew;
mod run;
mod session;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statement;
mod store;
mod tables;
mod upgrade;
mod verdict;
mod watch;

use distlock_core::Result;

#[doc(hidden)]
pub use backend::BrokenOnPurpose;
pub use backend::SqlBackend;
pub use config::{validate_table, Database, SqlConfig, Strategy, DEFAULT_TABLE, DEFAULT_TIMEOUT};
pub use key::MAX_KEY_BYTES;
pub use lock::MAX_BATCH;
/// The sqlx version this crate is built on (for the pool accessors).
pub use sqlx;

/// The `CREATE TABLE` statements for `database` and `table` (the locks
/// table and its holders table, `<table>_holders`, separated by `;`), as
/// the backend runs them when `create_table` is on; on PostgreSQL also the
/// session strategy's fencing sequence, `<table>_fence`.
///
/// ```
/// let sql = distlock_sql::ddl(distlock_sql::Database::Postgres, "app_locks")?;
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app_locks\""));
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app_locks_holders\""));
/// assert!(sql.contains("CREATE SEQUENCE IF NOT EXISTS \"app_locks_fence\""));
/// assert!(sql.contains("label"));
/// # Ok::<(), distlock_core::LockError>(())
/// ```
///
/// # Errors
///
/// `InvalidConfig` for a table name that is not a plain identifier, or a
/// database whose feature is not compiled in.
pub fn ddl(database: Database, table: &str) -> Result<String> {
    validate_table(table)?;
    match database {
        #[cfg(feature = "sqlite")]
        Database::Sqlite => Ok(sqlite::ddl(table)),
        #[cfg(feature = "postgres")]
        Database::Postgres => Ok(format!(
            "{};\n{}",
            postgres::ddl(table),
            session::sequence_ddl(table)
        )),
        #[cfg(feature = "mysql")]
        Database::MySql => Ok(mysql::ddl(table)),
        #[allow(unreachable_patterns)]
        other => Err(backend::not_compiled_in(other)),
    }
}
