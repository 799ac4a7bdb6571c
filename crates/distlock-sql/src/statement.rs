//! The statements of one table, as data: each one's text (a file under
//! `src/sql/<database>/`, the table name spliced in), the values it binds
//! in order, and how it tells what it did.
//!
//! What differs between the databases' statements (the SQL, the order of
//! the parameters, whether the answer is a count or a row) lives in the
//! [`Sql`] each database module builds; the code that runs the statements
//! ([`run`](crate::run), [`grants`](crate::grants)) is written once.

use std::time::Duration;

/// What a statement's parameter stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// The lock's key.
    Key,
    /// The owner token.
    Owner,
    /// The notification channel of releases (the table name).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Channel,
    /// The notification channel of labelled grants
    /// ([`Sql::granted`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Granted,
    /// The holder's label (an elected leader's identity), or none.
    Label,
    /// The hold's ttl, or the life of a waiting writer's intent or of a
    /// waiter's queue place.
    Ttl,
    /// The holders row's kind (`s` or `p`).
    Kind,
    /// The permit count (0 for a reader).
    Permits,
    /// How many readers or permit holders hold the name with the new one.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    Count,
    /// The fencing token an upgrade took.
    Fence,
    /// A waiter's ticket in the queue: when its acquire began, in
    /// microseconds since the Unix epoch (on SQLite, whose clock is this
    /// machine's).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Ticket,
}

/// How a statement tells whether it did its work, and so how it is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Executed; it did its work when it affected (on MySQL: matched)
    /// exactly one row. Also the choice for a statement whose answer is
    /// not read.
    One,
    /// Executed; it did its work when it affected (matched) any row.
    Any,
    /// Fetched; it did its work when it returned a row (at most one is
    /// read).
    Row,
}

/// One statement of one database for one table.
#[derive(Debug)]
pub(crate) struct Statement {
    /// The SQL, `{table}` replaced.
    pub text: String,
    /// What it binds, in order.
    pub params: &'static [Param],
    /// How it answers.
    pub answer: Answer,
}

impl Statement {
    /// The statement file `text` for `table`.
    pub fn new(text: &str, table: &str, params: &'static [Param], answer: Answer) -> Self {
        Statement {
            text: text.replace("{table}", table),
            params,
            answer,
        }
    }
}

/// Every statement the shared code runs on one table (the locks table and
/// its holders table).
#[derive(Debug)]
pub(crate) struct Sql {
    /// The table's name (PostgreSQL's notification channel of releases).
    pub table: String,
    /// PostgreSQL's notification channel of labelled grants
    /// (`<table>_granted`).
    pub granted: String,
    /// Takes the lock exclusively (its answer is read by
    /// [`Flavor::take`](crate::flavor::Flavor::take)).
    pub acquire: Statement,
    /// Reads the name's row (one row or none).
    pub holder: Statement,
    /// Extends an exclusive hold.
    pub extend: Statement,
    /// Keeps an exclusive hold released before its lock-at-least-for
    /// minimum until then, and wakes its waiters, where they sleep until a
    /// notification (PostgreSQL); `None` where [`extend`](Sql::extend)
    /// does it (waiters poll).
    pub keep: Option<Statement>,
    /// Releases an exclusive hold.
    pub release: Statement,
    /// The readers', permits' and intents' statements.
    pub holders: HolderSql,
    /// The queue of exclusive waiters, where the database cannot notify
    /// them (MySQL/MariaDB, SQLite); `None` where it can (PostgreSQL).
    pub queue: Option<QueueSql>,
}

/// The statements of the queue of a name's exclusive waiters: places in
/// the holders table (kind `q`), each with a ticket, first come first
/// served. The acquire statement grants only to the first live place (or
/// when there is none); waiters' places are removed with their intents
/// ([`HolderSql::forget_intent`]).
#[derive(Debug)]
pub(crate) struct QueueSql {
    /// Reads the name's row as [`Sql::holder`] does, and where the owner
    /// stands in the queue (rows read by
    /// [`Flavor::holder`](crate::flavor::Flavor::holder) and
    /// [`Flavor::queue`](crate::flavor::Flavor::queue)).
    pub waiting: Statement,
    /// Takes or keeps the owner's place for a while.
    pub enqueue: Statement,
}

/// PostgreSQL's notification channel of labelled grants on `table`
/// (beside the channel of releases, the table's name): at most 63 bytes,
/// as table names are at most 55.
pub(crate) fn granted_channel(table: &str) -> String {
    format!("{table}_granted")
}

impl Sql {
    /// The values of a statement on `key` for `owner`.
    pub fn values<'a>(&'a self, key: &'a str, owner: &'a str) -> Values<'a> {
        Values {
            channel: &self.table,
            granted: &self.granted,
            ..Values::new(key, owner)
        }
    }
}

/// The statements of the holders table (readers, permits, intents).
#[derive(Debug)]
pub(crate) struct HolderSql {
    /// What opens a grant transaction; `None` for the driver's `BEGIN`.
    pub begin: Option<&'static str>,
    /// The grant transaction's first statement: makes sure the name's row
    /// exists, and locks it.
    pub lock: Statement,
    /// Deletes the name's expired holders, where the read does not.
    pub expire: Option<Statement>,
    /// Reads every hold and intent on the name (rows read by
    /// [`Flavor::held`](crate::flavor::Flavor::held)).
    pub read: Statement,
    /// Adds a reader or permit holder; the last one's answer carries its
    /// fencing token.
    pub grant: Vec<Statement>,
    /// Turns the owner's reader into the exclusive holder; the last one's
    /// answer carries the fencing token.
    pub upgrade: Vec<Statement>,
    /// Records or refreshes a waiting writer's intent.
    pub intent: Statement,
    /// Removes a waiting writer's intent (and the waiter's queue place,
    /// where waiters queue).
    pub forget_intent: Statement,
    /// Releases a reader or permit holder.
    pub release: Statement,
    /// After a release that only marked the row released: deletes it.
    pub forget: Option<Statement>,
    /// What opens the transaction that undoes an upgrade, run as a plain
    /// statement; `None` where that is one statement.
    pub undo_begin: Option<&'static str>,
    /// Undoes an upgrade; the last one tells whether there was one.
    pub undo: Vec<Statement>,
}

/// Everything a statement may bind, by what it stands for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Values<'a> {
    /// [`Param::Key`].
    pub key: &'a str,
    /// [`Param::Owner`].
    pub owner: &'a str,
    /// [`Param::Channel`].
    pub channel: &'a str,
    /// [`Param::Granted`].
    pub granted: &'a str,
    /// [`Param::Label`].
    pub label: Option<&'a str>,
    /// [`Param::Ttl`].
    pub ttl: Duration,
    /// [`Param::Kind`].
    pub kind: &'static str,
    /// [`Param::Permits`].
    pub permits: i64,
    /// [`Param::Count`].
    pub count: i64,
    /// [`Param::Fence`].
    pub fence: i64,
    /// [`Param::Ticket`].
    pub ticket: i64,
}

impl<'a> Values<'a> {
    /// The values of a statement on `key` for `owner` (no channel; the
    /// rest zero).
    pub fn new(key: &'a str, owner: &'a str) -> Self {
        Values {
            key,
            owner,
            channel: "",
            granted: "",
            label: None,
            ttl: Duration::ZERO,
            kind: "",
            permits: 0,
            count: 0,
            fence: 0,
            ticket: 0,
        }
    }

    /// The value bound for `param`.
    pub fn value(&self, param: Param) -> Value<'a> {
        match param {
            Param::Key => Value::Text(self.key),
            Param::Owner => Value::Text(self.owner),
            Param::Channel => Value::Text(self.channel),
            Param::Granted => Value::Text(self.granted),
            Param::Label => Value::Label(self.label),
            Param::Kind => Value::Text(self.kind),
            Param::Ttl => Value::Time(self.ttl),
            Param::Permits => Value::Int(self.permits),
            Param::Count => Value::Int(self.count),
            Param::Fence => Value::Int(self.fence),
            Param::Ticket => Value::Int(self.ticket),
        }
    }
}

/// One bound value, by how the databases store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A key, owner token, kind or channel.
    Text(&'a str),
    /// A holder's label, or none (NULL).
    Label(Option<&'a str>),
    /// A time, bound in the unit of the database's clock expressions.
    Time(Duration),
    /// A number.
    Int(i64),
}

/// What running a statement gave.
pub(crate) enum Outcome<DB: sqlx::Database> {
    /// It was executed: its result (counts, MySQL's last-insert-id).
    Done(DB::QueryResult),
    /// It was fetched: the row it returned, if any.
    Row(Option<DB::Row>),
}

impl<DB: sqlx::Database> Outcome<DB> {
    /// The row it returned; none for an executed statement.
    pub fn row(self) -> Option<DB::Row> {
        match self {
            Outcome::Row(row) => row,
            Outcome::Done(_) => None,
        }
    }

    /// The row it returned, `RowNotFound` without one (as sqlx's
    /// `fetch_one` says).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub fn one_row(self) -> Result<DB::Row, sqlx::Error> {
        self.row().ok_or(sqlx::Error::RowNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_by_what_they_stand_for() {
        let v = Values {
            channel: "t",
            granted: "g",
            label: Some("l"),
            ttl: Duration::from_secs(2),
            kind: "s",
            permits: 3,
            count: 4,
            fence: 5,
            ticket: 6,
            ..Values::new("k", "o")
        };
        let got: Vec<Value> = [
            Param::Key,
            Param::Owner,
            Param::Channel,
            Param::Granted,
            Param::Label,
            Param::Ttl,
            Param::Kind,
            Param::Permits,
            Param::Count,
            Param::Fence,
            Param::Ticket,
        ]
        .map(|p| v.value(p))
        .into();
        let two = Value::Time(Duration::from_secs(2));
        assert_eq!(
            got,
            [
                Value::Text("k"),
                Value::Text("o"),
                Value::Text("t"),
                Value::Text("g"),
                Value::Label(Some("l")),
                two,
                Value::Text("s"),
                Value::Int(3),
                Value::Int(4),
                Value::Int(5),
                Value::Int(6),
            ]
        );
    }

    #[test]
    fn statement_files_get_the_table_name() {
        let s = Statement::new(
            "UPDATE \"{table}_holders\"",
            "t",
            &[Param::Key],
            Answer::One,
        );
        assert_eq!(s.text, "UPDATE \"t_holders\"");
    }
}
