//! The [`Dialect`] and its [`AttemptConnection`], once for every database:
//! the statements of a [`Sql`] run on a pool of the database's
//! [`Flavor`].
//!
//! Each call that the trait makes on the table as a whole takes one
//! connection of the pool for its statements (as running them on the pool
//! does), so that a statement tried again after a deadlock, or the second
//! statement of a release, runs on the same connection.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use distlock_core::ChangeNotices;
use sqlx::pool::PoolConnection;
use sqlx::Pool;

use crate::dialect::{
    rolled_back, AttemptConnection, Dialect, Extension, Group, Holder, Take, Waiting,
};
use crate::flavor::{Batches, Conn, Flavor};
use crate::grants;
use crate::holds::Decide;
use crate::notify::Subscription;
use crate::run::{done, plain, run, run_retrying};
use crate::statement::{Sql, Values};

/// The locks table of one database: its pool, its statements and what is
/// particular to it.
pub(crate) struct Tables<F: Flavor> {
    pool: Pool<F::Db>,
    sql: Arc<Sql>,
    batches: Batches<F::Batch>,
    flavor: F,
}

impl<F: Flavor> Tables<F> {
    /// The tables of `sql` and `batches` on `pool`.
    pub fn new(pool: Pool<F::Db>, sql: Sql, batches: Batches<F::Batch>, flavor: F) -> Self {
        Tables {
            pool,
            sql: Arc::new(sql),
            batches,
            flavor,
        }
    }

    /// A connection of the pool for one call.
    async fn conn(&self) -> Result<PoolConnection<F::Db>, sqlx::Error> {
        self.pool.acquire().await
    }
}

#[async_trait]
impl<F: Flavor> Dialect for Tables<F> {
    fn cross_process(&self) -> bool {
        self.flavor.cross_process()
    }

    fn slots(&self) -> usize {
        let size = usize::try_from(self.pool.options().get_max_connections()).unwrap_or(usize::MAX);
        F::slots(size)
    }

    async fn create_table(&self) -> Result<(), sqlx::Error> {
        self.flavor.create_table(&self.pool).await
    }

    async fn connection(&self) -> Result<Box<dyn AttemptConnection>, sqlx::Error> {
        Ok(Box::new(Attempt::<F> {
            conn: self.conn().await?,
            sql: Arc::clone(&self.sql),
            flavor: PhantomData,
        }))
    }

    async fn holder(&self, key: &str) -> Result<Option<Holder>, sqlx::Error> {
        holder::<F>(&self.sql, &mut *self.conn().await?, key).await
    }

    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let values = Values {
            ttl,
            ..self.sql.values(key, owner)
        };
        done::<F>(&self.sql.extend, &values, &mut *self.conn().await?).await
    }

    async fn extend_batch(
        &self,
        group: Group,
        batch: &[Extension],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let statement = match group {
            Group::Exclusive => &self.batches.exclusive,
            Group::Holders => &self.batches.holders,
        };
        F::extend_batch(&self.pool, statement, batch).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release::<F>(&self.sql, &mut *self.conn().await?, key, owner).await
    }

    async fn release_holder(&self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        grants::release::<F>(&self.sql, &mut *self.conn().await?, key, owner).await
    }

    /// Tried again after a deadlock (see [`run_retrying`]).
    async fn forget_intent(&self, key: &str, owner: &str) -> Result<(), sqlx::Error> {
        let (forget, values) = (&self.sql.holders.forget_intent, self.sql.values(key, owner));
        run_retrying::<F>(forget, &values, &mut *self.conn().await?).await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<Option<Subscription>, sqlx::Error> {
        self.flavor.subscribe().await
    }

    async fn watch(&self, key: &str) -> Result<Option<ChangeNotices>, sqlx::Error> {
        self.flavor.watch(key).await
    }

    /// The statement that keeps and notifies where waiters sleep until a
    /// notification (PostgreSQL), the extension elsewhere (waiters poll).
    async fn keep(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let values = Values {
            ttl,
            ..self.sql.values(key, owner)
        };
        let keep = self.sql.keep.as_ref().unwrap_or(&self.sql.extend);
        done::<F>(keep, &values, &mut *self.conn().await?).await
    }

    #[cfg(feature = "sqlite")]
    fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        F::sqlite_pool(&self.pool)
    }

    #[cfg(feature = "postgres")]
    fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        F::postgres_pool(&self.pool)
    }

    #[cfg(feature = "mysql")]
    fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        F::mysql_pool(&self.pool)
    }
}

/// One connection of the pool, for an acquire attempt.
struct Attempt<F: Flavor> {
    conn: PoolConnection<F::Db>,
    sql: Arc<Sql>,
    flavor: PhantomData<fn() -> F>,
}

#[async_trait]
impl<F: Flavor> AttemptConnection for Attempt<F> {
    /// One statement (tried again after a deadlock, see
    /// [`run_retrying`]); where it cannot tell the holders' remaining time
    /// (MySQL, SQLite), a second ([`waiting`](AttemptConnection::waiting))
    /// reads it when the lock is held.
    async fn take(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        label: Option<&str>,
    ) -> Result<Take, sqlx::Error> {
        let values = Values {
            ttl,
            label,
            ..self.sql.values(key, owner)
        };
        F::take(run_retrying::<F>(&self.sql.acquire, &values, &mut self.conn).await?)
    }

    /// The queue's read where waiters queue, the holder's otherwise.
    async fn waiting(&mut self, key: &str, owner: &str) -> Result<Option<Waiting>, sqlx::Error> {
        let Some(queue) = &self.sql.queue else {
            let found = holder::<F>(&self.sql, &mut self.conn, key).await?;
            return Ok(found.map(|holder| Waiting {
                holder,
                queue: None,
            }));
        };
        let values = self.sql.values(key, owner);
        let found = run::<F>(&queue.waiting, &values, &mut self.conn).await?;
        let Some(row) = found.row() else {
            return Ok(None);
        };
        Ok(Some(Waiting {
            holder: F::holder(&row)?,
            queue: Some(F::queue(&row)?),
        }))
    }

    /// Tried again after a deadlock (see [`run_retrying`]).
    async fn enqueue(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
        arrived: i64,
    ) -> Result<(), sqlx::Error> {
        let Some(queue) = &self.sql.queue else {
            return Ok(());
        };
        let values = Values {
            ttl: life,
            ticket: arrived,
            ..self.sql.values(key, owner)
        };
        run_retrying::<F>(&queue.enqueue, &values, &mut self.conn).await?;
        Ok(())
    }

    async fn release(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        release::<F>(&self.sql, &mut self.conn, key, owner).await
    }

    async fn transact(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        decide: &mut Decide<'_>,
    ) -> Result<Option<u64>, sqlx::Error> {
        grants::transact::<F>(&self.sql, &mut self.conn, key, owner, ttl, decide).await
    }

    /// Tried again after a deadlock (see [`run_retrying`]).
    async fn record_intent(
        &mut self,
        key: &str,
        owner: &str,
        life: Duration,
    ) -> Result<(), sqlx::Error> {
        let values = Values {
            ttl: life,
            ..self.sql.values(key, owner)
        };
        run_retrying::<F>(&self.sql.holders.intent, &values, &mut self.conn).await?;
        Ok(())
    }

    async fn release_holder(&mut self, key: &str, owner: &str) -> Result<bool, sqlx::Error> {
        grants::release::<F>(&self.sql, &mut self.conn, key, owner).await
    }

    async fn abandon_transaction(&mut self) -> Result<(), sqlx::Error> {
        self.conn.close_on_drop();
        rolled_back(plain::<F>("ROLLBACK", &mut self.conn).await)
    }

    async fn downgrade(
        &mut self,
        key: &str,
        owner: &str,
        fence: Option<u64>,
    ) -> Result<bool, sqlx::Error> {
        grants::downgrade::<F>(&self.sql, &mut self.conn, key, owner, fence).await
    }
}

/// Reads the row for `key`.
async fn holder<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    key: &str,
) -> Result<Option<Holder>, sqlx::Error> {
    let found = run::<F>(&sql.holder, &sql.values(key, ""), conn).await?;
    found.row().as_ref().map(F::holder).transpose()
}

/// Releases `key` when `owner` holds it unexpired (notifying the waiters
/// where the statement does).
async fn release<F: Flavor>(
    sql: &Sql,
    conn: &mut Conn<F::Db>,
    key: &str,
    owner: &str,
) -> Result<bool, sqlx::Error> {
    done::<F>(&sql.release, &sql.values(key, owner), conn).await
}
