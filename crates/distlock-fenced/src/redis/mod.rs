//! Fenced writes on Redis: every write is one Lua script that compares the
//! offered token with the one recorded for the resource, writes, and
//! records the token — atomically, in one round trip (two the first time
//! the server sees the script).
//!
//! A resource `r` lives in two keys sharing one hash tag, so they sit in one
//! Redis Cluster slot: the value at `<prefix>{r}` and the highest token at
//! `<prefix>{r}:fence` (`%`, `{` and `}` in `r` escaped as `%25`, `%7B`,
//! `%7D`; the default prefix is `distlock:fenced:`). The value is a plain
//! Redis string: `INCRBY`, `GET` and your own scripts work on it.
//!
//! Three kinds of write:
//!
//! - [`set`](crate::FencedStore::set): `SET` the value;
//! - [`add`](crate::FencedStore::add): `INCRBY` the value (the seed
//!   scenario's contribution amount) and answer the new total;
//! - [`RedisStore::run`]: your own Lua script, run only when the token
//!   passes (see [`FencedScript`]).
//!
//! Guarantees and limits: the check and the write are one script, so no
//! other command runs between them. The recorded token is as durable as
//! the Redis data: without persistence a restart forgets it (and the next
//! write of any token passes), and a failover to a replica that missed the
//! last write forgets that write together with its token.

mod script;
mod tls;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use distlock_core::sync::lock;
use distlock_core::{redact_url, FencingToken};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Script, Value};

pub use script::{FencedCall, FencedScript};

/// The redis client version this store is built on (for
/// [`RedisStore::new`] and the answers of [`FencedCall::invoke`]).
pub use ::redis as client;

use crate::error::check_resource;
use crate::{FenceError, FencedStore, Record};

/// The key prefix unless [`RedisStore::with_prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "distlock:fenced:";

/// How long one call may take (connecting included) unless
/// [`RedisStore::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const STORE: &str = "redis";

/// Lua shared by every script: reading and comparing tokens.
const FENCE_LUA: &str = include_str!("scripts/fence.lua");

/// A fenced store on one Redis server (or one Cluster slot's primary).
/// Clones share one connection.
///
/// ```no_run
/// # async fn demo(token: distlock_core::FencingToken) -> Result<(), distlock_fenced::FenceError> {
/// use distlock_fenced::{FencedStore, RedisStore};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let total = store.add("contribution-total", token, 42).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
    prefix: String,
    timeout: Duration,
}

struct Inner {
    /// The server, without its password (for messages).
    label: String,
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
    set: Script,
    add: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.label)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[user:pw@]host:port[/db]`,
    /// `rediss://` for TLS, with the backends' TLS parameters `ca`, `cert`,
    /// `key`, `danger_accept_invalid_certs`) and checks that it answers:
    /// [`open`](Self::open) then [`ping`](Self::ping).
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidInput`] for a URL that cannot be used,
    /// [`FenceError::Store`] when the server does not answer within the
    /// timeout or refuses the credentials. Neither shows the password.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it leaves nothing behind.
    pub async fn connect(url: &str) -> Result<Self, FenceError> {
        let store = Self::open(url)?;
        store.ping().await?;
        Ok(store)
    }

    /// A store on the server at `url`, without connecting yet (the first
    /// call connects): set the prefix and timeout, then [`ping`](Self::ping)
    /// or write.
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidInput`] for a URL that cannot be used (shown
    /// without its password).
    pub fn open(url: &str) -> Result<Self, FenceError> {
        let label = redact_url(url);
        let client = tls::client(url).map_err(|why| {
            FenceError::invalid_input(format!("cannot use the Redis URL `{label}`: {why}"))
        })?;
        Ok(Self::with_label(client, label))
    }

    /// Checks that the server answers (connecting if need be).
    ///
    /// Round trips: 1.
    ///
    /// # Errors
    ///
    /// [`FenceError::Store`] when it does not answer within the timeout or
    /// refuses the credentials; [`FenceError::InvalidInput`] when what
    /// answers is not Redis.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it changes nothing.
    pub async fn ping(&self) -> Result<(), FenceError> {
        let pong: String = self
            .call("PING", |mut conn| async move {
                redis::cmd("PING").query_async(&mut conn).await
            })
            .await?;
        if pong != "PONG" {
            return Err(FenceError::invalid_input(format!(
                "{} answered PING with {pong:?}: not a Redis server?",
                self.inner.label
            )));
        }
        Ok(())
    }

    /// A store on a client you configured; it connects on first use. (For
    /// TLS, install a rustls crypto provider first, as `connect` does:
    /// `distlock_core::tls::ensure_crypto_provider`.)
    pub fn new(client: redis::Client) -> Self {
        let label = client.get_connection_info().addr().to_string();
        Self::with_label(client, label)
    }

    fn with_label(client: redis::Client, label: String) -> Self {
        RedisStore {
            inner: Arc::new(Inner {
                label,
                client,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                set: Script::new(&[FENCE_LUA, include_str!("scripts/set.lua")].concat()),
                add: Script::new(&[FENCE_LUA, include_str!("scripts/add.lua")].concat()),
            }),
            prefix: DEFAULT_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Keeps the keys under `prefix` instead of [`DEFAULT_PREFIX`].
    ///
    /// # Errors
    ///
    /// [`FenceError::InvalidInput`] when the prefix holds `{` or `}` (they
    /// would move the keys' hash tag).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, FenceError> {
        if prefix.contains(['{', '}']) {
            return Err(FenceError::invalid_input(format!(
                "the key prefix {prefix:?} must not contain `{{` or `}}`"
            )));
        }
        self.prefix = prefix.to_string();
        Ok(self)
    }

    /// Bounds every call (connecting included) by `timeout` instead of
    /// [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key that holds `resource`'s value.
    pub fn value_key(&self, resource: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + resource.len() + 2);
        key.push_str(&self.prefix);
        key.push('{');
        for c in resource.chars() {
            match c {
                '%' => key.push_str("%25"),
                '{' => key.push_str("%7B"),
                '}' => key.push_str("%7D"),
                c => key.push(c),
            }
        }
        key.push('}');
        key
    }

    /// The key that holds the highest token recorded for `resource`.
    pub fn fence_key(&self, resource: &str) -> String {
        format!("{}:fence", self.value_key(resource))
    }

    /// Removes the resource's value and recorded token. For setting up and
    /// tearing down (tests, demos): a cleared resource accepts every token
    /// again, so never clear one that holders may still write.
    ///
    /// Round trips: 1.
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave both keys removed or both kept (one `DEL`).
    pub async fn clear(&self, resource: &str) -> Result<(), FenceError> {
        check_resource(resource)?;
        let keys = [self.value_key(resource), self.fence_key(resource)];
        self.call("DEL", |mut conn| async move {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// A connection, made on first use and after a failure.
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = lock(&self.inner.conn).clone() {
            return Ok(conn);
        }
        let _one_at_a_time = self.inner.connecting.lock().await;
        if let Some(conn) = lock(&self.inner.conn).clone() {
            return Ok(conn);
        }
        // The whole call, connecting included, is bounded by our timeout.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *lock(&self.inner.conn) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `request` on a connection within the timeout; drops the
    /// connection after a failure that says it is broken, so the next call
    /// reconnects. `what` names the request in errors.
    async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, FenceError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            request(conn).await
        };
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        let context = |why: &str| format!("{what} on {}: {why}", self.inner.label);
        match outcome {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    lock(&self.inner.conn).take();
                }
                Err(FenceError::store(STORE, context(&describe(&e)), e))
            }
            Err(elapsed) => {
                lock(&self.inner.conn).take();
                Err(FenceError::store(
                    STORE,
                    context(&format!("no answer within {:?}", self.timeout)),
                    elapsed,
                ))
            }
        }
    }

    /// Runs one of the store's fenced scripts on `resource` with `arg` and
    /// answers its code and payload (`{code, payload}`).
    async fn fenced(
        &self,
        what: &str,
        script: &Script,
        resource: &str,
        token: FencingToken,
        arg: &[u8],
    ) -> Result<(i64, Value), FenceError> {
        check_resource(resource)?;
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.fence_key(resource))
            .key(self.value_key(resource))
            .arg(token.get().to_string())
            .arg(arg);
        let answer: Value = self
            .call(what, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        split_answer(what, resource, answer)
    }
}

#[async_trait]
impl FencedStore for RedisStore {
    fn store_name(&self) -> &'static str {
        STORE
    }

    /// Round trips: 1 (2 the first time the server sees the script).
    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError> {
        let (code, payload) = self
            .fenced("fenced SET", &self.inner.set, resource, token, value)
            .await?;
        match code {
            1 => Ok(()),
            0 => Err(refusal(resource, token, &payload)?),
            _ => Err(bad_answer("fenced SET", resource, &payload)),
        }
    }

    /// Round trips: 1 (2 the first time the server sees the script).
    async fn add(
        &self,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<i64, FenceError> {
        let delta_text = delta.to_string();
        let (code, payload) = self
            .fenced(
                "fenced INCRBY",
                &self.inner.add,
                resource,
                token,
                delta_text.as_bytes(),
            )
            .await?;
        let resource_owned = || resource.to_string();
        match code {
            1 => text_of(&payload)
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| bad_answer("fenced INCRBY", resource, &payload)),
            2 => Err(FenceError::NotAnInteger {
                resource: resource_owned(),
            }),
            3 => Err(FenceError::Overflow {
                resource: resource_owned(),
                delta,
            }),
            0 => Err(refusal(resource, token, &payload)?),
            _ => Err(bad_answer("fenced INCRBY", resource, &payload)),
        }
    }

    /// Round trips: 1 (`MGET` of the value and the token).
    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError> {
        check_resource(resource)?;
        let keys = [self.value_key(resource), self.fence_key(resource)];
        let (value, fence): (Option<Vec<u8>>, Option<String>) = self
            .call("MGET", |mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let token = match fence {
            None => FencingToken(0),
            // As the scripts read it: canonical decimal digits only.
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n.to_string() == text => FencingToken(n),
                _ => {
                    return Err(FenceError::store(
                        STORE,
                        format!(
                            "the fence key of `{resource}` holds {text:?}: it does not hold a fencing token"
                        ),
                        "not a fencing token",
                    ))
                }
            },
        };
        Ok(Some(Record { value, token }))
    }
}

/// Splits a fenced script's `{code, payload}` answer.
fn split_answer(what: &str, resource: &str, answer: Value) -> Result<(i64, Value), FenceError> {
    if let Value::Array(items) = &answer {
        if let Some(Value::Int(code)) = items.first() {
            let payload = items.get(1).cloned().unwrap_or(Value::Nil);
            return Ok((*code, payload));
        }
    }
    Err(bad_answer(what, resource, &answer))
}

/// The refusal a `{0, recorded}` answer means.
fn refusal(
    resource: &str,
    offered: FencingToken,
    payload: &Value,
) -> Result<FenceError, FenceError> {
    let recorded = text_of(payload)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| bad_answer("a fenced script", resource, payload))?;
    Ok(FenceError::stale_token(
        resource,
        offered,
        FencingToken(recorded),
    ))
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad_answer(what: &str, resource: &str, answer: &Value) -> FenceError {
    FenceError::store(
        STORE,
        format!("{what} on `{resource}` answered {answer:?}"),
        "unexpected answer",
    )
}

/// A Redis error as text. Redis error texts carry no credentials; the
/// client's URL parse errors do not repeat the URL.
fn describe(e: &RedisError) -> String {
    e.to_string()
}
