//! From a URL to a backend: the scheme is looked up in the one list of
//! schemes, [`registry`], and its [`BackendKind`] picks the backend crate —
//! one match arm per kind, each behind its Cargo feature.

use std::future::Future;
use std::sync::Arc;

use distlock_core::registry::{self, BackendKind, Scheme};
use distlock_core::{redact_url, BackendUrl, DistributedLock, LockClient, LockError, Result};

/// Connects to the backend a URL names and returns it as a trait object.
///
/// The scheme picks the backend (see the [crate docs](crate#backends));
/// each backend's crate documents the rest of its URL. Passwords in the URL
/// never appear in errors or logs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> distlock::Result<()> {
/// let backend = distlock::connect("memory://jobs").await?;
/// let client = distlock::LockClient::new(backend);
/// # drop(client);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// `InvalidConfig` for a malformed URL, an unknown scheme (the message lists
/// the known ones), or a backend whose Cargo feature is not enabled (the
/// message names the feature); backend errors when the server cannot be
/// reached.
///
/// # Cancel safety
///
/// Dropping the future abandons the connection attempt; nothing is held.
pub async fn connect(url: &str) -> Result<Arc<dyn DistributedLock>> {
    let scheme = scheme_of(url)?;
    match scheme.kind {
        #[cfg(feature = "memory")]
        BackendKind::Memory => Ok(Arc::new(distlock_memory::MemoryBackend::connect(url)?)),
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "mysql")]
        BackendKind::MySql => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "redis")]
        BackendKind::Redis | BackendKind::RedisSentinel | BackendKind::RedisCluster => {
            Ok(Arc::new(distlock_redis::RedisBackend::connect(url).await?))
        }
        #[cfg(feature = "redis")]
        BackendKind::Redlock => Ok(Arc::new(
            distlock_redis::RedlockBackend::connect(url).await?,
        )),
        #[cfg(feature = "zookeeper")]
        BackendKind::ZooKeeper => Ok(Arc::new(distlock_zookeeper::ZkBackend::connect(url).await?)),
        #[cfg(feature = "etcd")]
        BackendKind::Etcd => Ok(Arc::new(distlock_etcd::EtcdBackend::connect(url).await?)),
        // A kind whose feature is off (or one added to the registry before
        // its arm was added here).
        _ => Err(not_compiled_in(scheme, url)),
    }
}

/// The registry entry for `url`'s scheme.
fn scheme_of(url: &str) -> Result<&'static Scheme> {
    let parsed = BackendUrl::parse(url)?;
    registry::lookup(parsed.scheme()).ok_or_else(|| unknown_scheme(parsed.scheme(), url))
}

fn unknown_scheme(scheme: &str, url: &str) -> LockError {
    LockError::invalid_config(format!(
        "unknown scheme `{scheme}` in `{}`; known schemes: {}",
        redact_url(url),
        registry::all_spellings().collect::<Vec<_>>().join(", ")
    ))
}

fn not_compiled_in(scheme: &Scheme, url: &str) -> LockError {
    LockError::invalid_config(format!(
        "the {} backend (`{}://`) is not compiled in: enable the `{}` feature of distlock (URL `{}`)",
        scheme.name,
        scheme.scheme,
        scheme.feature,
        redact_url(url)
    ))
}

/// Builds a value straight from a backend URL; implemented for
/// [`LockClient`], so that
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> distlock::Result<()> {
/// use distlock::prelude::*; // or: use distlock::{Connect, LockClient};
///
/// let client = LockClient::connect("memory://").await?;
/// let done = client.with_lock("nightly-report", |_held| async { "done" }).await?;
/// assert_eq!(done, "done");
/// # Ok(()) }
/// ```
///
/// is [`connect`] followed by [`LockClient::new`] (default options: a 30 s
/// ttl kept alive in the background, waits of up to 30 s). For other
/// defaults, use [`LockClient::with_defaults`] with [`connect`].
///
/// It is a trait because [`LockClient`] lives in `distlock-core`, which
/// knows no backends.
pub trait Connect {
    /// Connects to the backend `url` names.
    ///
    /// # Errors
    ///
    /// As for [`connect`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt; nothing is held.
    fn connect(url: &str) -> impl Future<Output = Result<Self>> + Send
    where
        Self: Sized;
}

impl Connect for LockClient {
    async fn connect(url: &str) -> Result<Self> {
        Ok(LockClient::new(connect(url).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(s: &str) -> &'static Scheme {
        registry::lookup(s).expect("a known scheme")
    }

    #[test]
    fn a_known_scheme_without_its_feature_names_the_feature() {
        let err = not_compiled_in(scheme("redlock"), "redlock://u:pw@h1,h2");
        let msg = err.to_string();
        assert!(msg.contains("enable the `redis` feature"), "{msg}");
        assert!(msg.contains("Redlock"), "{msg}");
        assert!(!msg.contains(":pw@"), "{msg}");
    }

    #[test]
    fn an_unknown_scheme_lists_every_known_one() {
        let msg = scheme_of("gopher://h").unwrap_err().to_string();
        for known in registry::all_spellings() {
            assert!(msg.contains(known), "{known} missing: {msg}");
        }
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(scheme_of("MEMORY://x").unwrap().kind, BackendKind::Memory);
        assert_eq!(
            scheme_of("ZooKeeper://h").unwrap().kind,
            BackendKind::ZooKeeper
        );
    }

    #[test]
    fn connect_is_a_send_future() {
        fn is_send<T: Send>(_: &T) {}
        is_send(&connect("memory://"));
        is_send(&<LockClient as Connect>::connect("memory://"));
    }
}
