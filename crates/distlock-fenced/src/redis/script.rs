//! Your own Lua script as a fenced write: it runs only when the offered
//! token is not lower than the one recorded for the resource, in the same
//! script as the check.

use redis::{FromRedisValue, Script, ToRedisArgs};

use super::{bad_answer, refusal, split_answer, RedisStore, FENCE_LUA, STORE};
use crate::error::check_resource;
use crate::{FenceError, FencingToken};

/// A Lua script body of yours, wrapped so that it runs only when the token
/// passes; the token is recorded before your body runs.
///
/// Your body sees:
///
/// - `KEYS[1]`: the resource's value key ([`RedisStore::value_key`]), and
///   `KEYS[2..]` the keys you add with [`FencedCall::key`];
/// - `ARGV[1..]`: the arguments you add with [`FencedCall::arg`];
/// - `TOKEN`: the offered token, as a decimal string.
///
/// What it returns is what [`FencedCall::invoke`] answers. It must touch
/// only the keys it is given (in Redis Cluster they must share the
/// resource's slot: put `{resource}` in them, as the value key does).
/// An error it raises reaches you as [`FenceError::Store`]; Redis does not
/// undo what it wrote before the error, and the token stays recorded.
///
/// ```no_run
/// # async fn demo(store: distlock_fenced::RedisStore, token: distlock_fenced::FencingToken)
/// # -> Result<(), distlock_fenced::FenceError> {
/// use distlock_fenced::FencedScript;
///
/// // Add to the total and keep a log of contributions beside it.
/// let script = FencedScript::new(
///     "redis.call('RPUSH', KEYS[2], TOKEN .. ':' .. ARGV[1])
///      return redis.call('INCRBY', KEYS[1], ARGV[1])",
/// );
/// let log_key = format!("{}:log", store.value_key("contribution-total"));
/// let total: i64 = store
///     .run(&script, "contribution-total", token)
///     .key(log_key)
///     .arg(42)
///     .invoke()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FencedScript {
    script: Script,
}

impl FencedScript {
    /// Wraps `body` (Lua, the body of a function: it may `return`).
    /// Syntax errors in it are reported by the server at the first
    /// [`invoke`](FencedCall::invoke).
    pub fn new(body: &str) -> Self {
        let code = [
            FENCE_LUA,
            include_str!("scripts/run_head.lua"),
            body,
            include_str!("scripts/run_tail.lua"),
        ]
        .concat();
        FencedScript {
            script: Script::new(&code),
        }
    }
}

/// One run of a [`FencedScript`] on one resource, with your keys and
/// arguments; built by [`RedisStore::run`].
#[must_use = "a fenced call does nothing until invoked"]
pub struct FencedCall<'a> {
    store: &'a RedisStore,
    script: &'a FencedScript,
    resource: &'a str,
    token: FencingToken,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl RedisStore {
    /// Prepares a run of `script` on `resource` with `token`; add keys and
    /// arguments, then [`invoke`](FencedCall::invoke) it.
    pub fn run<'a>(
        &'a self,
        script: &'a FencedScript,
        resource: &'a str,
        token: FencingToken,
    ) -> FencedCall<'a> {
        FencedCall {
            store: self,
            script,
            resource,
            token,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl FencedCall<'_> {
    /// Adds a key: the script's `KEYS[2]`, `KEYS[3]`, … in order.
    pub fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Adds an argument: the script's `ARGV[1]`, `ARGV[2]`, … in order.
    pub fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// Runs the script if the token passes, and answers what it returned
    /// (`Option<T>` reads a `nil`).
    ///
    /// Round trips: 1 (2 the first time the server sees the script).
    ///
    /// # Errors
    ///
    /// [`FenceError::Stale`] when a higher token was recorded: the script
    /// did not run. [`FenceError::Store`] when the script failed (syntax,
    /// a Redis error, a raised error) or its answer is not a `T`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the script run or not run, never
    /// interrupted half way by the drop.
    pub async fn invoke<T: FromRedisValue>(self) -> Result<T, FenceError> {
        let FencedCall {
            store,
            script,
            resource,
            token,
            keys,
            args,
        } = self;
        check_resource(resource)?;
        let mut invocation = script.script.prepare_invoke();
        invocation
            .key(store.fence_key(resource))
            .key(store.value_key(resource));
        for key in &keys {
            invocation.key(key.as_slice());
        }
        invocation.arg(token.get().to_string());
        for arg in &args {
            invocation.arg(arg.as_slice());
        }
        let what = "fenced script";
        let answer = store
            .call(what, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        let (code, payload) = split_answer(what, resource, answer)?;
        match code {
            1 => T::from_redis_value(payload).map_err(|e| {
                FenceError::store(
                    STORE,
                    format!("the answer of the fenced script on `{resource}`: {e}"),
                    e,
                )
            }),
            0 => Err(refusal(resource, token, &payload)?),
            _ => Err(bad_answer(what, resource, &payload)),
        }
    }
}
