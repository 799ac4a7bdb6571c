//! The fenced conditional update on a table of your own: a `fence` column
//! beside your data, and an `UPDATE … SET …, fence = t WHERE key = k AND
//! fence <= t` that tells a written row from a refused one.

use std::marker::PhantomData;

use sqlx::{Encode, Type};

use super::database::{check_identifier, Dialect, FenceDatabase, Query};
use super::{sql_error, token_i64};
use crate::{FenceError, FencingToken};

/// The default name of the fence column.
pub const FENCE_COLUMN: &str = "fence";

/// The fence column's type, for your own `CREATE TABLE`: every token ever
/// written fits, and a new row starts below every token.
pub const FENCE_COLUMN_TYPE: &str = "BIGINT NOT NULL DEFAULT 0";

/// `ALTER TABLE <table> ADD COLUMN fence BIGINT NOT NULL DEFAULT 0`, for a
/// table of yours on `dialect` (the same text suits all three).
///
/// # Errors
///
/// [`FenceError::InvalidInput`] when `table` is not a plain identifier.
pub fn fence_column_ddl(dialect: Dialect, table: &str) -> Result<String, FenceError> {
    check_identifier("table name", table)?;
    Ok(format!(
        "ALTER TABLE {} ADD COLUMN {} {FENCE_COLUMN_TYPE}",
        dialect.quote(table),
        dialect.quote(FENCE_COLUMN)
    ))
}

/// A fenced update of one row of your table, keyed by one column: it sets
/// the given columns and the fence column to the token only where the
/// fence column is not above the token.
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn demo(pool: sqlx::PgPool, token: distlock_core::FencingToken)
/// # -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use distlock_fenced::sql::{fence_column_ddl, Dialect, FencedUpdate};
///
/// // Once: give the table its fence column.
/// sqlx::query(&fence_column_ddl(Dialect::Postgres, "accounts")?).execute(&pool).await?;
///
/// // UPDATE "accounts" SET "balance" = $1, "fence" = $2
/// //  WHERE "id" = $3 AND "fence" <= $4
/// let update = FencedUpdate::<sqlx::Postgres>::new("accounts", "id", &["balance"])?;
/// let mut conn = pool.acquire().await?;
/// let outcome = update.execute(&mut conn, 42_i64, token, |q| q.bind(1_250_i64)).await;
/// if let Err(refused) = &outcome {
///     if let Some(stale) = refused.stale() {
///         eprintln!("a newer holder (token {}) wrote first", stale.recorded);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct FencedUpdate<DB> {
    table: String,
    key_column: String,
    update: String,
    select_fence: String,
    db: PhantomData<fn() -> DB>,
}

impl<DB> std::fmt::Debug for FencedUpdate<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedUpdate")
            .field("update", &self.update)
            .finish()
    }
}

impl<DB: FenceDatabase> FencedUpdate<DB> {
    /// The update of `columns` of the row of `table` whose `key_column`
    /// equals the key, fenced by the column `fence`.
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidInput`] when a name is not a plain identifier,
    /// when `columns` is empty or names the key or fence column.
    pub fn new(table: &str, key_column: &str, columns: &[&str]) -> Result<Self, FenceError> {
        Self::with_fence_column(table, key_column, columns, FENCE_COLUMN)
    }

    /// The same, fenced by the column `fence_column`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_fence_column(
        table: &str,
        key_column: &str,
        columns: &[&str],
        fence_column: &str,
    ) -> Result<Self, FenceError> {
        check_identifier("table name", table)?;
        check_identifier("key column", key_column)?;
        check_identifier("fence column", fence_column)?;
        if columns.is_empty() {
            return Err(FenceError::invalid_input(
                "a fenced update needs at least one column to set",
            ));
        }
        for column in columns {
            check_identifier("column", column)?;
            if *column == key_column || *column == fence_column {
                return Err(FenceError::invalid_input(format!(
                    "column {column:?} is the key or the fence column; it cannot be set"
                )));
            }
        }
        let d = DB::DIALECT;
        let (t, key, fence) = (d.quote(table), d.quote(key_column), d.quote(fence_column));
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{} = ?", d.quote(c)))
            .collect();
        let update = format!(
            "UPDATE {t} SET {}, {fence} = ? WHERE {key} = ? AND {fence} <= ?",
            sets.join(", ")
        );
        let select_fence = format!("SELECT {fence} FROM {t} WHERE {key} = ?");
        Ok(FencedUpdate {
            table: table.to_string(),
            key_column: key_column.to_string(),
            update: d.placeholders(&update),
            select_fence: d.placeholders(&select_fence),
            db: PhantomData,
        })
    }

    /// The update statement. Its parameters, in order: the columns' new
    /// values, the token, the key, the token again.
    pub fn sql(&self) -> &str {
        &self.update
    }

    /// Runs the update on `conn` (a pool's connection, or a transaction of
    /// yours: `&mut *tx`) for the row `key`, with `token`; `bind` binds the
    /// columns' new values in order (`|q| q.bind(a).bind(b)`).
    ///
    /// Round trips: 1 when written; 2 when refused or missing (the second
    /// reads the recorded token).
    ///
    /// # Errors
    ///
    /// [`FenceError::Stale`] when the row's fence is above the token
    /// (nothing written); [`FenceError::NotFound`] when no row has the key;
    /// [`FenceError::InvalidInput`] for a token above `i64::MAX`;
    /// [`FenceError::Store`] for the database's errors, and for a fence
    /// column that is NULL.
    ///
    /// # Cancel safety
    ///
    /// The update is one statement: dropping the future leaves it done or
    /// not done (inside your transaction: as your transaction ends).
    pub async fn execute<'q, K>(
        &'q self,
        conn: &mut DB::Connection,
        key: K,
        token: FencingToken,
        bind: impl FnOnce(Query<'q, DB>) -> Query<'q, DB>,
    ) -> Result<(), FenceError>
    where
        K: 'q + Clone + Send + Encode<'q, DB> + Type<DB>,
    {
        let store = DB::DIALECT.name();
        let t = token_i64(token)?;
        let query = bind(sqlx::query::<DB>(&self.update));
        let query = DB::bind_i64(DB::bind_i64(query, t).bind(key.clone()), t);
        let written = DB::execute(query, &mut *conn)
            .await
            .map_err(|e| sql_error(store, &format!("fenced update of `{}`", self.table), e))?;
        if written > 0 {
            return Ok(());
        }
        let query = sqlx::query::<DB>(&self.select_fence).bind(key);
        let recorded = DB::fetch_i64(query, &mut *conn)
            .await
            .map_err(|e| sql_error(store, &format!("reading the fence of `{}`", self.table), e))?;
        match recorded {
            None => Err(FenceError::NotFound {
                what: format!("no row of `{}` has that `{}`", self.table, self.key_column),
            }),
            Some(Some(fence)) if fence > t => Err(FenceError::stale_token(
                &self.table,
                token,
                FencingToken(fence.unsigned_abs()),
            )),
            Some(fence) => Err(FenceError::store(
                store,
                format!(
                    "fenced update of `{}`: the row was not written although its fence is {fence:?} \
                     (a NULL fence column, or the row changed meanwhile); nothing was written",
                    self.table
                ),
                "row not written",
            )),
        }
    }
}
