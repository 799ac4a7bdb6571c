//! The databases a fenced SQL write runs on: what each one's statements
//! look like ([`Dialect`]) and the few sqlx calls the shared code makes,
//! stated once per database ([`FenceDatabase`]) so that the shared code
//! needs no sqlx bounds of its own.

use std::future::Future;
use std::pin::Pin;

use sqlx::Database;

use crate::FenceError;

/// A statement with its arguments, on database `DB`.
pub type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// A boxed, sendable future of a sqlx call.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// A SQL database's way of writing statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite: `"quoted"` identifiers, `?` placeholders.
    Sqlite,
    /// PostgreSQL: `"quoted"` identifiers, `$1` placeholders.
    Postgres,
    /// MySQL and MariaDB: `` `quoted` `` identifiers, `?` placeholders.
    MySql,
}

impl Dialect {
    /// The store's name in messages: `sqlite`, `postgres` or `mysql`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// `ident` quoted; it must be [checked](check_identifier) first.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Dialect::MySql => format!("`{ident}`"),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{ident}\""),
        }
    }

    /// `sql` written with `?` placeholders, in this database's form
    /// (`$1`, `$2`, … on PostgreSQL). The statements given to it hold no
    /// `?` other than placeholders.
    pub(crate) fn placeholders(self, sql: &str) -> String {
        if self != Dialect::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Whether an `UPDATE … RETURNING` answers the updated row.
    pub(crate) fn returning(self) -> bool {
        self != Dialect::MySql
    }
}

/// The longest table or column name accepted (PostgreSQL's limit).
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// Checks a table or column name against `[A-Za-z_][A-Za-z0-9_]{0,62}`:
/// names are the one thing spliced into statement text (quoted, so case
/// matters on PostgreSQL), so nothing else may pass.
///
/// # Errors
///
/// [`FenceError::InvalidInput`] naming the refused identifier.
pub fn check_identifier(what: &str, ident: &str) -> Result<(), FenceError> {
    let mut chars = ident.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && ident.len() <= MAX_IDENTIFIER_LEN {
        return Ok(());
    }
    Err(FenceError::invalid_input(format!(
        "{what} {ident:?} is not an identifier matching [A-Za-z_][A-Za-z0-9_]{{0,62}}"
    )))
}

mod sealed {
    pub trait Sealed {}
}

/// A database this crate writes to: SQLite, PostgreSQL or MySQL/MariaDB,
/// each behind its feature. Sealed; its methods are the crate's plumbing.
pub trait FenceDatabase: Database + sealed::Sealed {
    /// How this database's statements are written.
    const DIALECT: Dialect;

    #[doc(hidden)]
    fn bind_i64(query: Query<'_, Self>, value: i64) -> Query<'_, Self>;

    #[doc(hidden)]
    fn bind_opt_i64(query: Query<'_, Self>, value: Option<i64>) -> Query<'_, Self>;

    #[doc(hidden)]
    fn bind_bytes<'q>(query: Query<'q, Self>, value: Option<&'q [u8]>) -> Query<'q, Self>;

    #[doc(hidden)]
    fn bind_text<'q>(query: Query<'q, Self>, value: &'q str) -> Query<'q, Self>;

    /// Runs `query`; answers the rows it affected (MySQL: matched).
    #[doc(hidden)]
    fn execute<'e, 'q: 'e>(
        query: Query<'q, Self>,
        conn: &'e mut Self::Connection,
    ) -> Boxed<'e, u64>;

    /// Runs `query` and answers the first column of its first row, if it
    /// has a row.
    #[doc(hidden)]
    fn fetch_i64<'e, 'q: 'e>(
        query: Query<'q, Self>,
        conn: &'e mut Self::Connection,
    ) -> Boxed<'e, Option<Option<i64>>>;

    /// Runs `query` (`SELECT value, counter, fence …`) and answers its row.
    #[doc(hidden)]
    fn fetch_stored<'e, 'q: 'e>(
        query: Query<'q, Self>,
        conn: &'e mut Self::Connection,
    ) -> Boxed<'e, Option<Stored>>;
}

/// A row of the resources table.
#[doc(hidden)]
#[derive(Debug)]
pub struct Stored {
    pub value: Option<Vec<u8>>,
    pub counter: Option<i64>,
    pub fence: i64,
}

/// Implements [`FenceDatabase`] for one sqlx database, behind its feature.
macro_rules! fence_database {
    ($feature:literal, $db:ty, $dialect:expr) => {
        #[cfg(feature = $feature)]
        impl sealed::Sealed for $db {}

        #[cfg(feature = $feature)]
        impl FenceDatabase for $db {
            const DIALECT: Dialect = $dialect;

            fn bind_i64(query: Query<'_, Self>, value: i64) -> Query<'_, Self> {
                query.bind(value)
            }

            fn bind_opt_i64(query: Query<'_, Self>, value: Option<i64>) -> Query<'_, Self> {
                query.bind(value)
            }

            fn bind_bytes<'q>(query: Query<'q, Self>, value: Option<&'q [u8]>) -> Query<'q, Self> {
                query.bind(value)
            }

            fn bind_text<'q>(query: Query<'q, Self>, value: &'q str) -> Query<'q, Self> {
                query.bind(value)
            }

            fn execute<'e, 'q: 'e>(
                query: Query<'q, Self>,
                conn: &'e mut Self::Connection,
            ) -> Boxed<'e, u64> {
                Box::pin(async move { Ok(query.execute(conn).await?.rows_affected()) })
            }

            fn fetch_i64<'e, 'q: 'e>(
                query: Query<'q, Self>,
                conn: &'e mut Self::Connection,
            ) -> Boxed<'e, Option<Option<i64>>> {
                Box::pin(async move {
                    use sqlx::Row;
                    match query.fetch_optional(conn).await? {
                        Some(row) => Ok(Some(row.try_get::<Option<i64>, _>(0)?)),
                        None => Ok(None),
                    }
                })
            }

            fn fetch_stored<'e, 'q: 'e>(
                query: Query<'q, Self>,
                conn: &'e mut Self::Connection,
            ) -> Boxed<'e, Option<Stored>> {
                Box::pin(async move {
                    use sqlx::Row;
                    match query.fetch_optional(conn).await? {
                        Some(row) => Ok(Some(Stored {
                            value: row.try_get(0)?,
                            counter: row.try_get(1)?,
                            fence: row.try_get(2)?,
                        })),
                        None => Ok(None),
                    }
                })
            }
        }
    };
}

fence_database!("sqlite", sqlx::Sqlite, Dialect::Sqlite);
fence_database!("postgres", sqlx::Postgres, Dialect::Postgres);
fence_database!("mysql", sqlx::MySql, Dialect::MySql);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain() {
        assert!(check_identifier("table", "distlock_fenced").is_ok());
        assert!(check_identifier("table", "_T1").is_ok());
        assert!(check_identifier("table", &"t".repeat(MAX_IDENTIFIER_LEN)).is_ok());
        for bad in ["", "1t", "a b", "a\"b", "a`b", "a;b", "a.b", "é"] {
            assert!(check_identifier("table", bad).is_err(), "{bad:?}");
        }
        assert!(check_identifier("table", &"t".repeat(MAX_IDENTIFIER_LEN + 1)).is_err());
    }

    #[test]
    fn placeholders_are_numbered_on_postgres_only() {
        let sql = "UPDATE t SET a = ?, b = ? WHERE c = ?";
        assert_eq!(
            Dialect::Postgres.placeholders(sql),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
        assert_eq!(Dialect::MySql.placeholders(sql), sql);
        assert_eq!(Dialect::Sqlite.placeholders(sql), sql);
    }
}
