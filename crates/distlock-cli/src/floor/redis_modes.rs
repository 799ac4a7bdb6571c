//! The Redis floors of the semaphore and the reader-writer lock: one
//! script per take and one per give-back on a hash per name holding the
//! [`counts`](super::counts) counter. Redlock's floor runs them on its
//! first instance only (see [`REDLOCK_SEMAPHORE`]).

use std::sync::Arc;

use distlock::{LockName, Mode};

use super::SPIN;
use crate::workload::{Contender, Primitive};

/// The semaphore floor's recipe.
const SEMAPHORE: &str = "one script: HGET the name's holder count, HINCRBY it while below the permits (spinning while full) / one script: HINCRBY -1";
/// The reader-writer floor's recipe.
const READ_WRITE: &str = "one script on a hash of the reader count (the writer as -1) and a waiting-writer flag: a reader counts up unless a writer holds or waits, the writer sets -1 at 0 or raises the flag, spinning while refused / one script counting down";
/// Redlock's semaphore floor's recipe.
const REDLOCK_SEMAPHORE: &str = "the Redis semaphore script on the first instance only: a count taken on a majority of instances can admit more holders than permits, so there is no hand-written quorum recipe to compare with";
/// Redlock's reader-writer floor's recipe.
const REDLOCK_READ_WRITE: &str =
    "the Redis reader-writer script on the first instance only (no quorum)";

/// The recipe of the single-instance floor for `primitive`.
pub fn recipe(primitive: Primitive) -> Option<&'static str> {
    match primitive {
        Primitive::Mutex => None,
        Primitive::Semaphore => Some(SEMAPHORE),
        Primitive::ReadWrite => Some(READ_WRITE),
    }
}

/// Redlock's recipe for `primitive`.
pub fn redlock_recipe(primitive: Primitive) -> Option<&'static str> {
    match primitive {
        Primitive::Mutex => None,
        Primitive::Semaphore => Some(REDLOCK_SEMAPHORE),
        Primitive::ReadWrite => Some(REDLOCK_READ_WRITE),
    }
}

/// A new client of the counter floor on `client`'s instance.
pub async fn contender(client: &redis::Client) -> Result<Arc<dyn Contender>, String> {
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis floor: {e}"))?;
    Ok(Arc::new(RedisCounts {
        conn,
        take: redis::Script::new(include_str!("redis_count_take.lua")),
        give: redis::Script::new(include_str!("redis_count_give.lua")),
    }))
}

struct RedisCounts {
    conn: redis::aio::MultiplexedConnection,
    take: redis::Script,
    give: redis::Script,
}

fn key(name: &LockName) -> String {
    format!("distlock-floor-count:{}", &name.digest_hex()[..32])
}

/// The scripts' mode argument and permit count.
fn mode_args(mode: Mode) -> (&'static str, u32) {
    match mode {
        Mode::Permit { limit } => ("p", limit),
        Mode::Shared => ("s", 0),
        _ => ("x", 0),
    }
}

#[distlock::async_trait]
impl Contender for RedisCounts {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let key = key(name);
        let (code, permits) = mode_args(mode);
        loop {
            let mut conn = self.conn.clone();
            let taken: i64 = self
                .take
                .key(&key)
                .arg(code)
                .arg(permits)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| format!("redis floor: {e}"))?;
            if taken == 1 {
                return Ok(());
            }
            tokio::time::sleep(SPIN).await;
        }
    }

    async fn give_back(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .give
            .key(key(name))
            .arg(mode_args(mode).0)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| format!("redis floor: {e}"))?;
        Ok(())
    }
}
