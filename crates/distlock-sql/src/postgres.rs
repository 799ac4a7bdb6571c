//! PostgreSQL: the locks table plus LISTEN/NOTIFY for waiters and
//! observers.
//!
//! The release statements call `pg_notify(<table name>, <key>)`;
//! PostgreSQL delivers it when the release commits. Each backend keeps one
//! extra connection (opened on the first acquire that waits) that `LISTEN`s
//! on the table's channel and hands each release to its waiters of that
//! key, one waiter per release (see [`notify`](crate::notify)). Releases
//! of readers and permits, and a waiting writer giving up, notify the same
//! way. A labelled grant (an elected leader's) notifies the channel
//! `<table>_granted`, which the same connection listens on; both channels'
//! notifications go to every observer of the key ([`watch`](crate::watch)).
//!
//! A grant transaction (READ COMMITTED) locks the name's row with its first
//! statement; each later statement takes a fresh snapshot, so it sees every
//! change committed before the lock was granted, and none can come in until
//! the transaction ends. Single statements (release, renew) lock the row in
//! their first CTE and judge it on its latest version. The row's
//! `shared_count` and `shared_until` are what the exclusive acquire checks,
//! so that it stays one statement on one row.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgQueryResult, PgRow,
};
use sqlx::{Connection, Postgres, Row};
use tokio::sync::OnceCell;

use crate::config::SqlConfig;
use crate::dialect::{extended_of, fence, remaining_from_micros, statements, ttl_micros};
use crate::dialect::{ConnectError, Extension, Holder, Take};
use crate::flavor::{Batches, Flavor};
use crate::holds::Held;
use crate::notify::{Subscription, Waiters};
use crate::statement::Answer::{One, Row as Fetched};
use crate::statement::Param::{
    self, Channel, Count, Fence, Granted, Key, Kind, Label, Owner, Permits, Ttl,
};
use crate::statement::{granted_channel, HolderSql, Outcome, Sql, Statement};
use crate::tables::Tables;
use crate::watch::Watchers;
use distlock_core::ChangeNotices;

/// What is particular to PostgreSQL: the table's creation and batches, and
/// the release listener.
pub(crate) struct PgFlavor {
    options: PgConnectOptions,
    timeout: Duration,
    /// The LISTEN channel: the table name.
    channel: String,
    /// Both tables' `CREATE TABLE IF NOT EXISTS`.
    create: String,
    /// Brings a table of an earlier version up to date.
    upgrade: String,
    notifier: OnceCell<Notifier>,
}

/// Whether the table is ready (current, with its holders table), looked up
/// in the search path. Returns one boolean.
const TABLE_EXISTS: &str = include_str!("sql/postgres/table_exists.sql");

/// Serialises concurrent `CREATE TABLE IF NOT EXISTS` of the same table
/// (which can otherwise fail on a catalog unique index). Returns nothing.
const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('distlock-create-table'))::text";

/// The DDL for `table`.
pub(crate) fn ddl(table: &str) -> String {
    include_str!("sql/postgres/create.sql").replace("{table}", table)
}

/// Opens one direct connection first: its error (refused, bad password) is
/// the one to report, where a pool would retry until its timeout and then
/// say only that it timed out. The pool connects lazily.
pub(crate) async fn connect(config: &SqlConfig) -> Result<Tables<PgFlavor>, ConnectError> {
    let options = config.pg_connect_options()?;
    let probe = PgConnection::connect_with(&options).await?;
    let _ = probe.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size())
        .acquire_timeout(config.timeout())
        .connect_lazy_with(options);
    Ok(on_pool(pool, config))
}

/// The tables of `config` on `pool` (the one [`connect`] opened, or an
/// application's own); the release listener connects with the pool's
/// options.
pub(crate) fn on_pool(pool: PgPool, config: &SqlConfig) -> Tables<PgFlavor> {
    let options = (*pool.connect_options()).clone();
    let table = config.table();
    let load = |text: &str| text.replace("{table}", table);
    let batches = Batches {
        exclusive: load(include_str!("sql/postgres/extend_batch.sql")),
        holders: load(include_str!("sql/postgres/holders/extend_batch.sql")),
    };
    let flavor = PgFlavor {
        options,
        timeout: config.timeout(),
        channel: table.to_string(),
        create: ddl(table),
        upgrade: load(include_str!("sql/postgres/upgrade.sql")),
        notifier: OnceCell::new(),
    };
    Tables::new(pool, sql(table), batches, flavor)
}

/// The statements for `table`. The releases, the removal of an intent and
/// the undoing of an upgrade notify the waiters: each returns a row when it
/// did its work.
fn sql(table: &str) -> Sql {
    let exec = |text: &str, params| Statement::new(text, table, params, One);
    let fetch = |text: &str, params| Statement::new(text, table, params, Fetched);
    let notifying: &[Param] = &[Key, Owner, Channel];
    Sql {
        table: table.to_string(),
        granted: granted_channel(table),
        acquire: fetch(
            include_str!("sql/postgres/acquire.sql"),
            &[Key, Owner, Ttl, Label, Granted],
        ),
        holder: fetch(include_str!("sql/postgres/holder.sql"), &[Key]),
        extend: exec(include_str!("sql/postgres/extend.sql"), &[Key, Owner, Ttl]),
        keep: Some(fetch(
            include_str!("sql/postgres/keep.sql"),
            &[Key, Owner, Ttl, Channel],
        )),
        release: fetch(include_str!("sql/postgres/release.sql"), notifying),
        holders: HolderSql {
            // The driver's `BEGIN`; READ COMMITTED.
            begin: None,
            lock: exec(include_str!("sql/postgres/holders/lock.sql"), &[Key]),
            // The read deletes the expired holders.
            expire: None,
            read: fetch(include_str!("sql/postgres/holders/read.sql"), &[Key]),
            grant: vec![fetch(
                include_str!("sql/postgres/holders/grant.sql"),
                &[Key, Owner, Kind, Permits, Ttl, Count],
            )],
            upgrade: vec![fetch(
                include_str!("sql/postgres/holders/take_over.sql"),
                &[Key, Owner, Ttl],
            )],
            intent: exec(
                include_str!("sql/postgres/holders/intent.sql"),
                &[Key, Owner, Ttl],
            ),
            forget_intent: fetch(
                include_str!("sql/postgres/holders/forget_intent.sql"),
                notifying,
            ),
            release: fetch(include_str!("sql/postgres/holders/release.sql"), notifying),
            forget: None,
            // One statement.
            undo_begin: None,
            undo: vec![fetch(
                include_str!("sql/postgres/holders/downgrade.sql"),
                &[Key, Owner, Channel, Fence],
            )],
        },
        // Waiters are woken by notifications.
        queue: None,
    }
}

#[async_trait]
impl Flavor for PgFlavor {
    type Db = Postgres;
    /// The statement (three array parameters).
    type Batch = String;

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// One row, whether acquired or held: it reports the holders'
    /// remaining time too.
    fn take(outcome: Outcome<Postgres>) -> Result<Take, sqlx::Error> {
        let Some(row) = outcome.row() else {
            return Ok(Take::Held {
                remaining: None,
                shared: false,
            });
        };
        let acquired: bool = row.try_get("acquired")?;
        if acquired {
            return Ok(Take::Acquired(fence(row.try_get("fence")?)));
        }
        let exclusive = remaining_from_micros(row.try_get("remaining_us")?);
        let shared = remaining_from_micros(row.try_get("shared_us")?);
        Ok(Take::Held {
            remaining: match (exclusive, shared) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or_default().max(b.unwrap_or_default())),
            },
            shared: shared.is_some_and(|r| !r.is_zero()),
        })
    }

    fn fence(outcome: Outcome<Postgres>) -> Result<u64, sqlx::Error> {
        Ok(fence(outcome.one_row()?.try_get("fence")?))
    }

    fn holder(row: &PgRow) -> Result<Holder, sqlx::Error> {
        Ok(Holder {
            owner: row.try_get("owner")?,
            fence: fence(row.try_get("fence")?),
            label: row.try_get("label")?,
            remaining: remaining_from_micros(row.try_get("remaining_us")?),
            shared: remaining_from_micros(row.try_get("shared_us")?),
        })
    }

    fn held(row: &PgRow) -> Result<(Held, u64), sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let last_fence = fence(row.try_get("fence")?);
        let held = Held::from_row(
            kind.as_bytes(),
            row.try_get("permits")?,
            row.try_get("owner")?,
            remaining_from_micros(row.try_get("remaining_us")?).unwrap_or_default(),
        )?;
        Ok((held, last_fence))
    }

    fn cross_process(&self) -> bool {
        true
    }

    /// Round trips: one (the check) when both tables exist and are
    /// current, six more (lock, create both, add the reader and label
    /// columns to older tables, commit) when not.
    async fn create_table(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let ready: bool = sqlx::query_scalar(TABLE_EXISTS)
            .bind(&self.channel)
            .fetch_one(pool)
            .await?;
        if ready {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        sqlx::query(CREATE_LOCK).execute(&mut *tx).await?;
        for statement in statements(&self.create) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        for statement in statements(&self.upgrade) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// One statement, whatever the batch's size: the leases go as three
    /// arrays, and the statement returns the rows it extended.
    async fn extend_batch(
        pool: &PgPool,
        statement: &String,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
        let owners: Vec<&str> = batch.iter().map(|e| e.owner.as_str()).collect();
        let ttls: Vec<i64> = batch.iter().map(|e| ttl_micros(e.ttl)).collect();
        let extended: Vec<(String, String)> = sqlx::query_as(statement)
            .bind(keys)
            .bind(owners)
            .bind(ttls)
            .fetch_all(pool)
            .await?;
        Ok(extended_of(batch, &extended))
    }

    /// Round trips: none once the listener runs; the first call opens its
    /// connection and issues `LISTEN`.
    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        Ok(Some(self.notifier().await?.heard.waiters.subscribe()))
    }

    /// Round trips: none once the listener runs (the same as the
    /// waiters'); the first call opens its connection and issues `LISTEN`.
    async fn watch(&self, key: &str) -> Result<Option<ChangeNotices>, sqlx::Error> {
        Ok(Some(self.notifier().await?.heard.watchers.watch(key)))
    }

    fn postgres_pool(pool: &PgPool) -> Option<&PgPool> {
        Some(pool)
    }
}

impl PgFlavor {
    /// The listening connection, started on first use.
    async fn notifier(&self) -> Result<&Notifier, sqlx::Error> {
        self.notifier
            .get_or_try_init(|| Notifier::start(self.options.clone(), self.timeout, &self.channel))
            .await
    }
}

/// The listening connection's task, and the waiters and watchers it
/// tells; the task stops when the dialect is dropped.
struct Notifier {
    heard: Arc<Heard>,
    task: tokio::task::AbortHandle,
}

/// Who hears what the listening connection hears: a release wakes one
/// waiter of its key and notifies every watcher of it; a labelled grant
/// notifies the watchers only.
struct Heard {
    waiters: Arc<Waiters>,
    watchers: Arc<Watchers>,
    /// The channel of releases (the table name).
    released: String,
}

impl Heard {
    /// A notification on `channel` about `key`.
    fn notified(&self, channel: &str, key: &str) {
        if channel == self.released {
            self.waiters.released(key);
        }
        self.watchers.changed(key);
    }

    /// Notifications may have been missed.
    fn missed(&self) {
        self.waiters.missed();
        self.watchers.missed();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifier {
    /// Listens on `channel` (releases) and on the channel of labelled
    /// grants.
    async fn start(
        options: PgConnectOptions,
        timeout: Duration,
        channel: &str,
    ) -> Result<Notifier, sqlx::Error> {
        // Its own pool of one, so the listener never takes a connection from
        // the statements' pool; the pool only serves reconnects.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let channels = [channel.to_string(), granted_channel(channel)];
        let listener = new_listener(&pool, &channels).await?;
        let heard = Arc::new(Heard {
            waiters: Arc::new(Waiters::default()),
            watchers: Arc::new(Watchers::default()),
            released: channel.to_string(),
        });
        let task = tokio::spawn(listen(listener, pool, channels, Arc::clone(&heard)));
        Ok(Notifier {
            heard,
            task: task.abort_handle(),
        })
    }
}

/// A listener with `LISTEN` in effect on `channels`.
async fn new_listener(pool: &PgPool, channels: &[String]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await?;
    Ok(listener)
}

/// Hands each release heard to the waiters of its key (one waiter per
/// release), and each release and labelled grant to the watchers of its
/// key (every one). Whenever notifications may have been missed (the
/// connection dropped), every waiter is woken and every watcher told —
/// once when the drop is seen and again once `LISTEN` is back in effect,
/// so a release during the outage never leaves a waiter asleep until its
/// bound.
async fn listen(mut listener: PgListener, pool: PgPool, channels: [String; 2], heard: Arc<Heard>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => heard.notified(n.channel(), n.payload()),
            // The connection dropped and was re-established, listening again.
            Ok(None) => {
                tracing::debug!("distlock.postgres.listener_reconnected");
                heard.missed();
            }
            Err(e) => {
                tracing::debug!(error = %e, "distlock.postgres.listener_lost");
                heard.missed();
                listener = relisten(&pool, &channels).await;
                tracing::debug!("distlock.postgres.listener_reconnected");
                heard.missed();
            }
        }
    }
}

/// Reconnects the listener, retrying every 250 ms until `LISTEN` is back.
async fn relisten(pool: &PgPool, channels: &[String]) -> PgListener {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match new_listener(pool, channels).await {
            Ok(fresh) => return fresh,
            Err(e) => tracing::debug!(error = %e, "distlock.postgres.listener_reconnect_failed"),
        }
    }
}
