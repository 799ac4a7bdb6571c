//! The etcd floors of the semaphore and the reader-writer lock: a counter
//! key per name (the [`counts`](super::counts) counter as `"<holders>
//! <writer waits 0|1>"`), changed by a transaction that compares the key's
//! mod revision with the one last seen.
//!
//! Each client remembers the revision and count it last saw, so a take on
//! a quiet name is one transaction; when the key changed meanwhile, the
//! transaction's `else` branch reads it, and the client tries again with
//! what it read. A refused client forgets what it saw, sleeps and reads the
//! key again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use distlock::sync::lock;
use distlock::{LockName, Mode};
use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::counts::{Count, Step};
use super::etcd::{floor_error, run_txn};
use super::SPIN;
use crate::workload::{Contender, Primitive};

/// The semaphore floor's recipe.
const SEMAPHORE: &str = "a counter key per name: Txn comparing its mod revision with the one last read, putting the count + 1 while below the permits (else reading it back), spinning while full / the same Txn putting count - 1";
/// The reader-writer floor's recipe.
const READ_WRITE: &str = "a counter key per name (readers, the writer as -1, a waiting-writer flag): Txn comparing its mod revision with the one last read, putting the new count (else reading it back), spinning while refused / the same Txn counting down";

/// The recipe for `primitive`.
pub fn recipe(primitive: Primitive) -> Option<&'static str> {
    match primitive {
        Primitive::Mutex => None,
        Primitive::Semaphore => Some(SEMAPHORE),
        Primitive::ReadWrite => Some(READ_WRITE),
    }
}

/// A client of the counter floor on its own connection `client`.
pub fn contender(client: etcd_client::Client) -> Arc<dyn Contender> {
    Arc::new(EtcdCounts {
        client,
        seen: Mutex::new(HashMap::new()),
    })
}

struct EtcdCounts {
    client: etcd_client::Client,
    /// Per key: the mod revision (0 = absent) and count last seen.
    seen: Mutex<HashMap<String, (i64, Count)>>,
}

fn key(name: &LockName) -> String {
    format!("distlock-floor-count/{}", name.digest_hex())
}

fn encode(count: Count) -> String {
    format!("{} {}", count.holders, u8::from(count.writer_waits))
}

fn decode(value: &[u8]) -> Result<Count, String> {
    let text = std::str::from_utf8(value).unwrap_or_default();
    let mut parts = text.split(' ');
    let holders = parts.next().and_then(|h| h.parse().ok());
    let waits = parts.next().and_then(|w| w.parse::<u8>().ok());
    match (holders, waits) {
        (Some(holders), Some(waits)) => Ok(Count {
            holders,
            writer_waits: waits != 0,
        }),
        _ => Err(format!("etcd floor: `{text}` is not a floor counter")),
    }
}

impl EtcdCounts {
    /// The revision and count last seen for `key`, read when not known.
    async fn state(&self, key: &str) -> Result<(i64, Count), String> {
        if let Some(seen) = lock(&self.seen).get(key) {
            return Ok(*seen);
        }
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(floor_error)?;
        let seen = match resp.kvs().first() {
            Some(kv) => (kv.mod_revision(), decode(kv.value())?),
            None => (0, Count::default()),
        };
        lock(&self.seen).insert(key.to_string(), seen);
        Ok(seen)
    }

    /// Stores `next` if `key` is still at `revision` (deleting it when
    /// idle); otherwise remembers what is there. True when stored.
    async fn swap(&self, key: &str, revision: i64, next: Count) -> Result<bool, String> {
        let write = if next.is_idle() {
            TxnOp::delete(key, None)
        } else {
            TxnOp::put(key, encode(next), None)
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
            .and_then([write])
            .or_else([TxnOp::get(key, None)]);
        let resp = run_txn(&self.client, txn).await?;
        let seen = if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            (if next.is_idle() { 0 } else { revision }, next)
        } else {
            match resp.op_responses().first() {
                Some(TxnOpResponse::Get(get)) => match get.kvs().first() {
                    Some(kv) => (kv.mod_revision(), decode(kv.value())?),
                    None => (0, Count::default()),
                },
                _ => return Err("etcd floor: a failed Txn without its read".into()),
            }
        };
        lock(&self.seen).insert(key.to_string(), seen);
        Ok(resp.succeeded())
    }
}

#[distlock::async_trait]
impl Contender for EtcdCounts {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let key = key(name);
        loop {
            let (revision, count) = self.state(&key).await?;
            match count.take(mode) {
                Step::Taken(next) => {
                    if self.swap(&key, revision, next).await? {
                        return Ok(());
                    }
                }
                Step::Refused(next) => {
                    if next != count {
                        self.swap(&key, revision, next).await?;
                    }
                    lock(&self.seen).remove(&key);
                    tokio::time::sleep(SPIN).await;
                }
            }
        }
    }

    async fn give_back(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        let key = key(name);
        loop {
            let (revision, count) = self.state(&key).await?;
            if self.swap(&key, revision, count.give_back(mode)).await? {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_through_their_text() {
        for count in [
            Count::default(),
            Count {
                holders: -1,
                writer_waits: false,
            },
            Count {
                holders: 3,
                writer_waits: true,
            },
        ] {
            assert_eq!(decode(encode(count).as_bytes()), Ok(count));
        }
        assert!(decode(b"x").is_err());
    }
}
