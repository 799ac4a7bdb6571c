//! # distlock
//!
//! Distributed locks with pluggable backends. One trait,
//! [`DistributedLock`], real backends behind it, and one conformance suite
//! that holds every backend to the same contract.
//!
//! Pick backends with Cargo features and a connection URL:
//!
//! | feature | URL | backend |
//! |---|---|---|
//! | `memory` | `memory://` or `memory://<store>` | in-process (tests, single process) |
//! | `sqlite` (default) | `sqlite://path/to/file.db` | a locks table in a SQLite file shared by local processes |
//! | `postgres` | `postgres://user:pw@host:port/db` | a locks table in PostgreSQL, waiters woken by LISTEN/NOTIFY |
//! | `mysql` | `mysql://user:pw@host:port/db` (or `mariadb://`) | a locks table in MySQL/MariaDB |
//! | `etcd` | `etcd://h1:p1,h2:p2[/prefix][?lease_ttl=10&user=…&password=…&tls=true]` | leases + create-revision queue on an etcd v3 cluster, waiters woken by watches |
//! | `zookeeper` | `zk://h1:p1,h2:p2[/chroot][?session_timeout_ms=…&root=…&user=…&password=…]` | ephemeral sequential nodes on a ZooKeeper ensemble, waiters woken by predecessor watches |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> distlock::Result<()> {
//! use distlock::LockClient;
//!
//! let backend = distlock::connect("memory://docs").await?;
//! let client = LockClient::new(backend);
//! let guard = client.lock("contribution-total").await?;
//! assert!(guard.fencing_token().get() >= 1);
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! Unknown schemes and backends whose feature is off are clear errors:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let err = distlock::connect("gopher://x").await.unwrap_err();
//! assert!(err.to_string().contains("unknown"));
//! # }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

pub use distlock_core::*;

#[cfg(feature = "memory")]
pub use distlock_memory as memory;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use distlock_sql as sql;

/// The README's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Connects to the backend a URL names and returns it as a trait object.
///
/// The scheme picks the backend; each backend's crate documents the rest of
/// its URL. Passwords in the URL never appear in errors or logs.
///
/// # Errors
///
/// `InvalidConfig` for a malformed URL, an unknown scheme, or a backend whose
/// Cargo feature is not enabled (the message names the feature); backend
/// errors when the server cannot be reached.
pub async fn connect(url: &str) -> Result<Arc<dyn DistributedLock>> {
    let scheme = scheme_of(url)?;
    match scheme.as_str() {
        #[cfg(feature = "memory")]
        "memory" => Ok(Arc::new(distlock_memory::MemoryBackend::connect(url)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(Arc::new(distlock_sql::SqlBackend::connect(url).await?)),
        #[cfg(feature = "etcd")]
        "etcd" => Ok(Arc::new(distlock_etcd::EtcdBackend::connect(url).await?)),
        #[cfg(feature = "zookeeper")]
        "zk" | "zookeeper" => Ok(Arc::new(distlock_zookeeper::ZkBackend::connect(url).await?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redlock" => distlock_redis::connect(url).await,
        // Backends are added above this line, one arm per scheme, each behind
        // its feature.
        other => Err(not_compiled_in(other, url)),
    }
}

fn scheme_of(url: &str) -> Result<String> {
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(LockError::invalid_config(format!(
            "`{}` is not a URL: expected `<scheme>://…`",
            redact_url(url)
        )));
    };
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(LockError::invalid_config(format!(
            "`{}` has no valid scheme",
            redact_url(url)
        )));
    }
    Ok(scheme.to_ascii_lowercase())
}

/// Which Cargo feature serves each known scheme.
const SCHEMES: &[(&str, &str)] = &[
    ("memory", "memory"),
    ("sqlite", "sqlite"),
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("mysql", "mysql"),
    ("mariadb", "mysql"),
    ("redis", "redis"),
    ("rediss", "redis"),
    ("redlock", "redis"),
    ("zk", "zookeeper"),
    ("zookeeper", "zookeeper"),
    ("etcd", "etcd"),
];

fn not_compiled_in(scheme: &str, url: &str) -> LockError {
    match SCHEMES.iter().find(|(s, _)| *s == scheme) {
        Some((_, feature)) => LockError::invalid_config(format!(
            "the `{scheme}` backend is not compiled in: enable the `{feature}` feature of distlock (URL `{}`)",
            redact_url(url)
        )),
        None => LockError::invalid_config(format!(
            "unknown scheme `{scheme}` in `{}`; known schemes: {}",
            redact_url(url),
            SCHEMES
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_scheme_without_its_feature_names_the_feature() {
        let err = not_compiled_in("redlock", "redlock://u:pw@h1,h2");
        let msg = err.to_string();
        assert!(msg.contains("enable the `redis` feature"), "{msg}");
        assert!(!msg.contains(":pw@"), "{msg}");
    }

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(scheme_of("MEMORY://x").unwrap(), "memory");
    }
}
