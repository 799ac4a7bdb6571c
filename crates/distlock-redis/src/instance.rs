//! One Redis server: a lazily (re)connecting multiplexed connection and the
//! scripts run on it, each call bounded by a timeout.
//!
//! The connection is made on first use and dropped after an I/O error or a
//! timeout, so the next call reconnects: a server that is down costs a refused
//! connect (or at most the timeout), never a hang, and a restarted server is
//! picked up by the next call.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::sync::lock;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, FromRedisValue, RedisError, ScriptInvocation};

use crate::config::InstanceConfig;

/// Why a call to one instance failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer within the timeout.
    Timeout,
    /// The server refused our credentials.
    Auth(RedisError),
    /// Anything else the client or server reported.
    Redis(RedisError),
}

impl CallError {
    fn from_redis(err: RedisError) -> Self {
        let auth = err.kind() == ErrorKind::AuthenticationFailed
            || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
        if auth {
            CallError::Auth(err)
        } else {
            CallError::Redis(err)
        }
    }

    /// True for failures that say nothing about the lock (the server could
    /// not be asked), as opposed to a server-side script error.
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            CallError::Timeout => true,
            CallError::Auth(_) => false,
            CallError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
        }
    }

    /// A short description without secrets (Redis error texts never contain
    /// the credentials).
    pub(crate) fn describe(&self) -> String {
        match self {
            CallError::Timeout => "timed out".to_string(),
            CallError::Auth(e) => {
                format!("authentication failed (check the password and ACL user): {e}")
            }
            CallError::Redis(e) => e.to_string(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for CallError {}

/// A connection slot for one server.
pub(crate) struct Instance {
    pub(crate) label: String,
    pub(crate) client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("addr", &self.label)
            .finish()
    }
}

impl Instance {
    pub(crate) fn new(config: &InstanceConfig) -> distlock_core::Result<Arc<Self>> {
        Ok(Arc::new(Instance {
            label: config.label(),
            client: config.client()?,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }))
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CallError> {
        if let Some(conn) = lock(&self.conn).clone() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = lock(&self.conn).clone() {
            return Ok(conn);
        }
        // Our callers bound the whole call (connect included) by their timeout.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(CallError::from_redis)?;
        *lock(&self.conn) = Some(conn.clone());
        Ok(conn)
    }

    fn forget_connection(&self) {
        lock(&self.conn).take();
    }

    /// Runs a script (EVALSHA, falling back to EVAL when the server does not
    /// know it yet): one round trip, two the first time after a restart.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.bounded(timeout, async {
            let mut conn = self.connection().await?;
            invocation
                .invoke_async::<T>(&mut conn)
                .await
                .map_err(CallError::from_redis)
        })
        .await
    }

    /// Runs a plain command (used by `connect` to check credentials).
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.bounded(timeout, async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(CallError::from_redis)
        })
        .await
    }

    /// Bounds `call` (connect included) by `timeout`; forgets the connection
    /// after a failure that says it is broken, so the next call reconnects.
    async fn bounded<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        };
        if let Err(e) = &result {
            if e.is_unreachable() {
                self.forget_connection();
            }
        }
        result
    }
}
