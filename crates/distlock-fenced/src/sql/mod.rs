//! Fenced writes on SQL databases (SQLite, PostgreSQL, MySQL/MariaDB,
//! through sqlx): a conditional update on a `fence` column,
//!
//! ```sql
//! UPDATE t SET value = ?, fence = ? WHERE resource = ? AND fence <= ?
//! ```
//!
//! which writes the row and records the token in one statement, or matches
//! no row when a higher token was recorded. Two ways to use it:
//!
//! - [`SqlStore`]: a table of resources (`resource`, `value`, `counter`,
//!   `fence`; DDL from [`SqlStore::ddl`]) implementing
//!   [`FencedStore`];
//! - [`FencedUpdate`]: the same conditional update on a row of your own
//!   table, once it has a fence column ([`fence_column_ddl`]).
//!
//! Guarantees and limits: the check and the write are one statement, so
//! the database's row lock orders concurrent writers; tokens are stored as
//! `BIGINT`, so a token above `i64::MAX` is refused as invalid input
//! (distlock's tokens stay far below it). Only writes through the
//! conditional update are fenced: a plain `UPDATE` of the same row is not.

mod database;
mod update;

use std::fmt;

use distlock_core::FencingToken;
use sqlx::Pool;

pub use database::{check_identifier, Dialect, FenceDatabase, Query, MAX_IDENTIFIER_LEN};
pub use update::{fence_column_ddl, FencedUpdate, FENCE_COLUMN, FENCE_COLUMN_TYPE};

use crate::error::{check_resource, counter_of};
use crate::{FenceError, FencedStore, Record};

/// The resources table unless [`SqlStore::with_table`] names another.
pub const DEFAULT_TABLE: &str = "distlock_fenced";

/// How often a write retries when the row appears or changes between its
/// statements (a first write racing another).
const ATTEMPTS: usize = 4;

/// A fenced store in a table of resources, on a sqlx pool of `DB`
/// (`sqlx::Sqlite`, `sqlx::Postgres` or `sqlx::MySql`).
///
/// A value that is a decimal 64-bit integer is kept in the `counter`
/// column, so [`add`](FencedStore::add) is one `UPDATE … SET counter =
/// counter + ?`; any other value is kept as bytes in `value`.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn demo(token: distlock_core::FencingToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use distlock_fenced::{FencedStore, SqlStore};
///
/// let pool = sqlx::SqlitePool::connect("sqlite://target/app.db?mode=rwc").await?;
/// let store = SqlStore::new(pool);
/// store.create_table().await?;
/// store.add("contribution-total", token, 42).await?;
/// # Ok(()) }
/// ```
pub struct SqlStore<DB: FenceDatabase> {
    pool: Pool<DB>,
    table: String,
    sql: Statements,
}

impl<DB: FenceDatabase> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: self.sql.clone(),
        }
    }
}

impl<DB: FenceDatabase> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &DB::DIALECT.name())
            .field("table", &self.table)
            .finish()
    }
}

/// The statements of one table, in one database's form.
#[derive(Clone, Debug)]
struct Statements {
    create: String,
    set: String,
    add: String,
    insert: String,
    read: String,
    counter: String,
    clear: String,
}

impl Statements {
    fn new(dialect: Dialect, table: &str) -> Self {
        let quoted = dialect.quote(table);
        let sql = |template: &str| dialect.placeholders(&template.replace("{table}", &quoted));
        let create = match dialect {
            Dialect::Sqlite => include_str!("statements/create_sqlite.sql"),
            Dialect::Postgres => include_str!("statements/create_postgres.sql"),
            Dialect::MySql => include_str!("statements/create_mysql.sql"),
        };
        let mut add = include_str!("statements/add.sql").trim_end().to_string();
        if dialect.returning() {
            add.push_str("\nRETURNING counter");
        }
        Statements {
            create: sql(create),
            set: sql(include_str!("statements/set.sql")),
            add: sql(&add),
            insert: sql(include_str!("statements/insert.sql")),
            read: sql(include_str!("statements/read.sql")),
            counter: sql(include_str!("statements/counter.sql")),
            clear: sql(include_str!("statements/clear.sql")),
        }
    }
}

/// What one attempt at a write found.
enum Attempt<T> {
    /// Written; the answer.
    Done(T),
    /// The row is absent: create it.
    Absent,
    /// The row changed between two statements: try again.
    Again,
}

impl<DB: FenceDatabase> SqlStore<DB> {
    /// A store in the table [`DEFAULT_TABLE`] of `pool`'s database. Create
    /// the table with [`create_table`](Self::create_table) (or run
    /// [`ddl`](Self::ddl) in your migrations).
    pub fn new(pool: Pool<DB>) -> Self {
        SqlStore {
            pool,
            table: DEFAULT_TABLE.to_string(),
            sql: Statements::new(DB::DIALECT, DEFAULT_TABLE),
        }
    }

    /// Uses the table `table` instead.
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidInput`] when `table` is not a plain identifier
    /// ([`check_identifier`]).
    pub fn with_table(mut self, table: &str) -> Result<Self, FenceError> {
        check_identifier("table name", table)?;
        self.table = table.to_string();
        self.sql = Statements::new(DB::DIALECT, table);
        Ok(self)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `CREATE TABLE IF NOT EXISTS` for the table, in this database's form.
    pub fn ddl(&self) -> &str {
        &self.sql.create
    }

    /// Creates the table unless it exists.
    ///
    /// Round trips: 1.
    ///
    /// # Errors
    ///
    /// [`FenceError::Store`] with the database's error.
    ///
    /// # Cancel safety
    ///
    /// One statement: dropping the future leaves the table created or not.
    pub async fn create_table(&self) -> Result<(), FenceError> {
        let mut conn = self.connection().await?;
        let outcome = DB::execute(sqlx::query::<DB>(&self.sql.create), &mut *conn).await;
        match outcome {
            Ok(_) => Ok(()),
            // PostgreSQL: another connection created it at the same moment.
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(self.error("creating the table", e)),
        }
    }

    /// Removes the resource's row: value and recorded token. For setting
    /// up and tearing down (tests, demos): a cleared resource accepts every
    /// token again, so never clear one that holders may still write.
    ///
    /// Round trips: 1.
    ///
    /// # Cancel safety
    ///
    /// One statement: dropping the future leaves the row removed or kept.
    pub async fn clear(&self, resource: &str) -> Result<(), FenceError> {
        check_resource(resource)?;
        let mut conn = self.connection().await?;
        let query = DB::bind_text(sqlx::query::<DB>(&self.sql.clear), resource);
        DB::execute(query, &mut *conn)
            .await
            .map_err(|e| self.error("clearing a resource", e))?;
        Ok(())
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<DB>, FenceError> {
        self.pool
            .acquire()
            .await
            .map_err(|e| self.error("taking a connection from the pool", e))
    }

    fn error(&self, what: &str, e: sqlx::Error) -> FenceError {
        sql_error(
            DB::DIALECT.name(),
            &format!("{what} (table `{}`)", self.table),
            e,
        )
    }

    /// The row of `resource`.
    async fn stored(
        &self,
        conn: &mut DB::Connection,
        resource: &str,
    ) -> Result<Option<database::Stored>, FenceError> {
        let query = DB::bind_text(sqlx::query::<DB>(&self.sql.read), resource);
        DB::fetch_stored(query, conn)
            .await
            .map_err(|e| self.error("reading a resource", e))
    }

    /// Creates the row of `resource`; `false` when another write created
    /// it first.
    async fn insert(
        &self,
        conn: &mut DB::Connection,
        resource: &str,
        (value, counter): (Option<&[u8]>, Option<i64>),
        token: i64,
    ) -> Result<bool, FenceError> {
        let query = DB::bind_text(sqlx::query::<DB>(&self.sql.insert), resource);
        let query = DB::bind_i64(
            DB::bind_opt_i64(DB::bind_bytes(query, value), counter),
            token,
        );
        match DB::execute(query, conn).await {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(self.error("creating a resource", e)),
        }
    }

    /// Why a conditional update matched no row: absent, refused, or
    /// (`check`) not writable for a reason of the value.
    async fn unwritten<T>(
        &self,
        conn: &mut DB::Connection,
        resource: &str,
        token: FencingToken,
        check: impl FnOnce(&database::Stored) -> Result<(), FenceError>,
    ) -> Result<Attempt<T>, FenceError> {
        let Some(row) = self.stored(conn, resource).await? else {
            return Ok(Attempt::Absent);
        };
        let recorded = fence_of(resource, row.fence)?;
        if token < recorded {
            return Err(FenceError::stale_token(resource, token, recorded));
        }
        check(&row)?;
        Ok(Attempt::Again)
    }

    /// One attempt at a fenced set.
    async fn try_set(
        &self,
        conn: &mut DB::Connection,
        resource: &str,
        token: FencingToken,
        columns: (Option<&[u8]>, Option<i64>),
    ) -> Result<Attempt<()>, FenceError> {
        let t = token_i64(token)?;
        let query = DB::bind_opt_i64(
            DB::bind_bytes(sqlx::query::<DB>(&self.sql.set), columns.0),
            columns.1,
        );
        let query = DB::bind_i64(DB::bind_text(DB::bind_i64(query, t), resource), t);
        let written = DB::execute(query, &mut *conn)
            .await
            .map_err(|e| self.error("fenced set", e))?;
        if written > 0 {
            return Ok(Attempt::Done(()));
        }
        self.unwritten(conn, resource, token, |_| Ok(())).await
    }

    /// One attempt at a fenced addition: `UPDATE … RETURNING` where the
    /// database has it, else the update and a read in one transaction.
    async fn try_add(
        &self,
        conn: &mut DB::Connection,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<Attempt<i64>, FenceError> {
        let t = token_i64(token)?;
        // The counters to which `delta` can be added without overflow.
        let low = if delta < 0 {
            i64::MIN - delta
        } else {
            i64::MIN
        };
        let high = if delta > 0 {
            i64::MAX - delta
        } else {
            i64::MAX
        };
        let query = DB::bind_i64(DB::bind_i64(sqlx::query::<DB>(&self.sql.add), delta), t);
        let query = DB::bind_i64(DB::bind_i64(DB::bind_text(query, resource), t), low);
        let query = DB::bind_i64(query, high);
        let added = if DB::DIALECT.returning() {
            DB::fetch_i64(query, &mut *conn)
                .await
                .map_err(|e| self.error("fenced addition", e))?
                .flatten()
        } else {
            self.add_in_transaction(conn, query, resource).await?
        };
        if let Some(total) = added {
            return Ok(Attempt::Done(total));
        }
        self.unwritten(conn, resource, token, |row| match row.counter {
            None => Err(FenceError::NotAnInteger {
                resource: resource.to_string(),
            }),
            Some(n) if n < low || n > high => Err(FenceError::Overflow {
                resource: resource.to_string(),
                delta,
            }),
            Some(_) => Ok(()),
        })
        .await
    }

    /// The fenced addition and the read of its result in one transaction
    /// (MySQL: no `UPDATE … RETURNING`). Round trips: 4.
    async fn add_in_transaction(
        &self,
        conn: &mut DB::Connection,
        update: Query<'_, DB>,
        resource: &str,
    ) -> Result<Option<i64>, FenceError> {
        let fail = |e| self.error("fenced addition", e);
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        if DB::execute(update, &mut *tx).await.map_err(fail)? == 0 {
            tx.rollback().await.map_err(fail)?;
            return Ok(None);
        }
        let read = DB::bind_text(sqlx::query::<DB>(&self.sql.counter), resource);
        let total = DB::fetch_i64(read, &mut *tx).await.map_err(fail)?.flatten();
        tx.commit().await.map_err(fail)?;
        Ok(total)
    }
}

#[async_trait::async_trait]
impl<DB: FenceDatabase> FencedStore for SqlStore<DB> {
    fn store_name(&self) -> &'static str {
        DB::DIALECT.name()
    }

    /// Round trips: 1 when written; 2 when refused; 3 for the first write
    /// of a resource.
    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError> {
        check_resource(resource)?;
        let columns = match counter_of(Some(value)) {
            Some(n) => (None, Some(n)),
            None => (Some(value), None),
        };
        let mut conn = self.connection().await?;
        for _ in 0..ATTEMPTS {
            match self.try_set(&mut conn, resource, token, columns).await? {
                Attempt::Done(()) => return Ok(()),
                Attempt::Absent => {
                    if self
                        .insert(&mut conn, resource, columns, token_i64(token)?)
                        .await?
                    {
                        return Ok(());
                    }
                }
                Attempt::Again => {}
            }
        }
        Err(self.contended(resource))
    }

    /// Round trips: 1 when added (4 on MySQL); 2 when refused; 3 for the
    /// first write of a resource.
    async fn add(
        &self,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<i64, FenceError> {
        check_resource(resource)?;
        let mut conn = self.connection().await?;
        for _ in 0..ATTEMPTS {
            match self.try_add(&mut conn, resource, token, delta).await? {
                Attempt::Done(total) => return Ok(total),
                Attempt::Absent => {
                    if self
                        .insert(&mut conn, resource, (None, Some(delta)), token_i64(token)?)
                        .await?
                    {
                        return Ok(delta);
                    }
                }
                Attempt::Again => {}
            }
        }
        Err(self.contended(resource))
    }

    /// Round trips: 1.
    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError> {
        check_resource(resource)?;
        let mut conn = self.connection().await?;
        let Some(row) = self.stored(&mut conn, resource).await? else {
            return Ok(None);
        };
        let value = match (row.counter, row.value) {
            (Some(n), _) => n.to_string().into_bytes(),
            (None, value) => value.unwrap_or_default(),
        };
        Ok(Some(Record {
            value,
            token: fence_of(resource, row.fence)?,
        }))
    }
}

impl<DB: FenceDatabase> SqlStore<DB> {
    fn contended(&self, resource: &str) -> FenceError {
        FenceError::store(
            DB::DIALECT.name(),
            format!(
                "`{resource}` (table `{}`) kept changing between the statements of a write; \
                 nothing was written",
                self.table
            ),
            "contention",
        )
    }
}

/// A token as the `BIGINT` column holds it.
pub(crate) fn token_i64(token: FencingToken) -> Result<i64, FenceError> {
    i64::try_from(token.get()).map_err(|_| {
        FenceError::invalid_input(format!(
            "fencing token {token} is above the largest a SQL BIGINT holds ({})",
            i64::MAX
        ))
    })
}

/// A fence column's value as a token.
fn fence_of(resource: &str, fence: i64) -> Result<FencingToken, FenceError> {
    u64::try_from(fence).map(FencingToken).map_err(|_| {
        FenceError::store(
            "sql",
            format!("the fence of `{resource}` is {fence}: not a fencing token"),
            "negative fence",
        )
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// A sqlx error as a [`FenceError::Store`] (sqlx's messages carry no
/// connection strings once a pool exists).
pub(crate) fn sql_error(store: &'static str, context: &str, e: sqlx::Error) -> FenceError {
    FenceError::store(store, format!("{context}: {e}"), e)
}
