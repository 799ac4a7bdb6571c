//! What is particular to one database, as one trait: how it binds a value,
//! how its rows and answers read, and the few operations whose shape is
//! its own (creating the tables, extending a batch, notifications).
//!
//! Each database module (`sqlite`, `postgres`, `mysql`) implements
//! [`Flavor`] and builds its [`Sql`](crate::statement::Sql); the shared
//! code ([`tables`](crate::tables)) implements the
//! [`Dialect`](crate::dialect::Dialect) once on top of them.

mod json;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use distlock_core::ChangeNotices;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::dialect::{ttl_micros, Extension, Holder, Queue, Take};
use crate::holds::Held;
use crate::notify::Subscription;
use crate::statement::Outcome;

#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(unused_imports))]
pub(crate) use json::{json_rows, Cell};

/// A statement with its arguments, on database `DB`.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// A connection of database `DB`.
pub(crate) type Conn<DB> = <DB as Database>::Connection;

/// A boxed, sendable future.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// A database whose connections run statements: what the shared code needs
/// of sqlx, with sqlx's bounds stated once (every database of sqlx has it).
pub(crate) trait Runner: Database {
    /// Binds a number.
    fn bind_int(query: Query<'_, Self>, n: i64) -> Query<'_, Self>;

    /// Binds a string, as text.
    fn bind_str<'q>(query: Query<'q, Self>, text: &'q str) -> Query<'q, Self>;

    /// Binds a string or NULL, as text.
    fn bind_opt_str<'q>(query: Query<'q, Self>, text: Option<&'q str>) -> Query<'q, Self>;

    /// Executes `query` on `conn`.
    fn execute<'e>(
        query: Query<'e, Self>,
        conn: &'e mut Conn<Self>,
    ) -> Boxed<'e, Self::QueryResult>;

    /// Fetches at most one row of `query` on `conn`.
    fn fetch_optional<'e>(
        query: Query<'e, Self>,
        conn: &'e mut Conn<Self>,
    ) -> Boxed<'e, Option<Self::Row>>;

    /// Fetches every row of `query` on `conn`.
    fn fetch_all<'e>(query: Query<'e, Self>, conn: &'e mut Conn<Self>)
        -> Boxed<'e, Vec<Self::Row>>;
}

impl<DB> Runner for DB
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    fn bind_int(query: Query<'_, Self>, n: i64) -> Query<'_, Self> {
        query.bind(n)
    }

    fn bind_str<'q>(query: Query<'q, Self>, text: &'q str) -> Query<'q, Self> {
        query.bind(text)
    }

    fn bind_opt_str<'q>(query: Query<'q, Self>, text: Option<&'q str>) -> Query<'q, Self> {
        query.bind(text)
    }

    fn execute<'e>(
        query: Query<'e, Self>,
        conn: &'e mut Conn<Self>,
    ) -> Boxed<'e, Self::QueryResult> {
        Box::pin(query.execute(conn))
    }

    fn fetch_optional<'e>(
        query: Query<'e, Self>,
        conn: &'e mut Conn<Self>,
    ) -> Boxed<'e, Option<Self::Row>> {
        Box::pin(query.fetch_optional(conn))
    }

    fn fetch_all<'e>(
        query: Query<'e, Self>,
        conn: &'e mut Conn<Self>,
    ) -> Boxed<'e, Vec<Self::Row>> {
        Box::pin(query.fetch_all(conn))
    }
}

/// The two batched extensions of a table, in a database's terms.
pub(crate) struct Batches<B> {
    /// Of exclusive holds, in the locks table.
    pub exclusive: B,
    /// Of readers and permit holders, in the holders table.
    pub holders: B,
}

/// One database: its sqlx driver, and what the shared code cannot say for
/// every database.
#[async_trait]
pub(crate) trait Flavor: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Runner;

    /// A batched extension's statements ([`extend_batch`](Flavor::extend_batch)).
    type Batch: Send + Sync + 'static;

    /// Binds a key, owner token, kind or channel the way this database
    /// stores it; by default as text.
    fn bind_text<'q>(query: Query<'q, Self::Db>, text: &'q str) -> Query<'q, Self::Db> {
        Self::Db::bind_str(query, text)
    }

    /// Binds a holder's label (or NULL) the way this database stores it;
    /// by default as text.
    fn bind_label<'q>(query: Query<'q, Self::Db>, label: Option<&'q str>) -> Query<'q, Self::Db> {
        Self::Db::bind_opt_str(query, label)
    }

    /// `ttl` in the unit of this database's clock expressions, rounded up
    /// (so the database never keeps a hold for less than the lease says);
    /// by default whole microseconds.
    fn ttl(ttl: Duration) -> i64 {
        ttl_micros(ttl)
    }

    /// The rows a statement affected (MySQL: matched).
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// What the acquire statement's answer says.
    fn take(outcome: Outcome<Self::Db>) -> Result<Take, sqlx::Error>;

    /// The fencing token a grant's or an upgrade's last statement issued.
    fn fence(outcome: Outcome<Self::Db>) -> Result<u64, sqlx::Error>;

    /// A row of the holder statement (or of the waiting read, which has
    /// the same columns and more).
    fn holder(row: &<Self::Db as Database>::Row) -> Result<Holder, sqlx::Error>;

    /// Where the waiter stands in the queue, from a row of the waiting
    /// read ([`QueueSql::waiting`](crate::statement::QueueSql::waiting)),
    /// where waiters queue; a database without a queue never runs it.
    fn queue(row: &<Self::Db as Database>::Row) -> Result<Queue, sqlx::Error> {
        let _ = row;
        Ok(Queue::default())
    }

    /// A row of a grant transaction's read, and the name's fence on it.
    fn held(row: &<Self::Db as Database>::Row) -> Result<(Held, u64), sqlx::Error>;

    /// Whether a statement or transaction that ended in `outcome` may run
    /// again, after `tries` retries (counted here); by default never.
    fn retry_after<T>(outcome: &Result<T, sqlx::Error>, tries: &mut usize) -> bool {
        let _ = (outcome, tries);
        false
    }

    /// Whether several processes can share the table.
    fn cross_process(&self) -> bool;

    /// How many calls may use a pool of `size` connections at once; by
    /// default all of them.
    fn slots(size: usize) -> usize {
        size
    }

    /// Creates what is missing of the tables.
    async fn create_table(&self, pool: &Pool<Self::Db>) -> Result<(), sqlx::Error>;

    /// Extends every entry of `batch` (distinct `(key, owner)` pairs,
    /// sorted by key) by `statement`, whatever the batch's size (in one
    /// statement, unless its doc says otherwise); answers, in order, which
    /// were extended.
    async fn extend_batch(
        pool: &Pool<Self::Db>,
        statement: &Self::Batch,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error>;

    /// A subscription to release notifications, in effect when this
    /// returns; `None` when the database has none (waiters then poll).
    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        Ok(None)
    }

    /// Change notices of `key` (labelled grants, releases), in effect when
    /// this returns; `None` when the database has none (observers then
    /// poll).
    async fn watch(&self, key: &str) -> Result<Option<ChangeNotices>, sqlx::Error> {
        let _ = key;
        Ok(None)
    }

    /// The pool, on SQLite.
    #[cfg(feature = "sqlite")]
    fn sqlite_pool(pool: &Pool<Self::Db>) -> Option<&sqlx::SqlitePool> {
        let _ = pool;
        None
    }

    /// The pool, on PostgreSQL.
    #[cfg(feature = "postgres")]
    fn postgres_pool(pool: &Pool<Self::Db>) -> Option<&sqlx::PgPool> {
        let _ = pool;
        None
    }

    /// The pool, on MySQL/MariaDB.
    #[cfg(feature = "mysql")]
    fn mysql_pool(pool: &Pool<Self::Db>) -> Option<&sqlx::MySqlPool> {
        let _ = pool;
        None
    }
}
