//! Every URL scheme distlock knows, in one table: which Cargo feature of the
//! `distlock` crate serves it, its default port, its URL form, the raw
//! floor the benchmark compares it with, and its row in the docs.
//!
//! `distlock::connect`, the "not compiled in" error, the CLI's floors and
//! the README's backend table all read this table; a test checks that the
//! README and the facade's docs list exactly these schemes.

/// Which backend crate serves a scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// `distlock-memory`.
    Memory,
    /// `distlock-sql`, SQLite.
    Sqlite,
    /// `distlock-sql`, PostgreSQL.
    Postgres,
    /// `distlock-sql`, MySQL/MariaDB.
    MySql,
    /// `distlock-redis`, one instance.
    Redis,
    /// `distlock-redis`, one primary found through Redis Sentinel.
    RedisSentinel,
    /// `distlock-redis`, a Redis Cluster (each lock on its slot's primary).
    RedisCluster,
    /// `distlock-redis`, Redlock over several instances.
    Redlock,
    /// `distlock-zookeeper`.
    ZooKeeper,
    /// `distlock-etcd`.
    Etcd,
}

/// One known scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scheme {
    /// The backend's name as the docs' tables show it (`Redis`, `Redlock`).
    pub name: &'static str,
    /// The scheme, as written in URLs.
    pub scheme: &'static str,
    /// Other spellings of the same scheme.
    pub aliases: &'static [&'static str],
    /// The backend serving it.
    pub kind: BackendKind,
    /// The `distlock` Cargo feature that compiles it in.
    pub feature: &'static str,
    /// The port a host without one gets.
    pub default_port: Option<u16>,
    /// The URL form, for docs and errors.
    pub url_form: &'static str,
    /// One line: what the backend is.
    pub summary: &'static str,
    /// What the benchmark's raw floor for it does.
    pub floor: &'static str,
}

/// Every scheme, in the order the docs list them.
pub const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "Memory",
        scheme: "memory",
        aliases: &[],
        kind: BackendKind::Memory,
        feature: "memory",
        default_port: None,
        url_form: "memory://[store]",
        summary: "in-process (tests, single process)",
        floor: "a mutex-guarded set of held names, spinning while taken",
    },
    Scheme {
        name: "SQLite",
        scheme: "sqlite",
        aliases: &[],
        kind: BackendKind::Sqlite,
        feature: "sqlite",
        default_port: None,
        url_form: "sqlite://path/to/file.db[?table=…]",
        summary: "a locks table in a SQLite file shared by local processes",
        floor: "INSERT … ON CONFLICT DO NOTHING / DELETE on a one-column table",
    },
    Scheme {
        name: "PostgreSQL",
        scheme: "postgres",
        aliases: &["postgresql"],
        kind: BackendKind::Postgres,
        feature: "postgres",
        default_port: Some(5432),
        url_form: "postgres://user:pw@host:port/db[?strategy=…&table=…]",
        summary: "advisory locks held by the client's sessions, waiters queued in the server (`strategy=session`, default); or a locks table, waiters woken by LISTEN/NOTIFY (`strategy=table`)",
        floor: "INSERT … ON CONFLICT DO NOTHING / DELETE on a one-column table",
    },
    Scheme {
        name: "MySQL / MariaDB",
        scheme: "mysql",
        aliases: &["mariadb"],
        kind: BackendKind::MySql,
        feature: "mysql",
        default_port: Some(3306),
        url_form: "mysql://user:pw@host:port/db[?strategy=…&table=…]",
        summary: "GET_LOCK held by the client's sessions, waiters queued in the server (`strategy=session`, default); or a locks table with a queue of polling waiters (`strategy=table`)",
        floor: "INSERT IGNORE / DELETE on a one-column table",
    },
    Scheme {
        name: "Redis",
        scheme: "redis",
        aliases: &["rediss"],
        kind: BackendKind::Redis,
        feature: "redis",
        default_port: Some(6379),
        url_form: "redis://[:pw@]host:port[/db][?prefix=…&fair=true]",
        summary: "one Redis instance: fencing, fair queue, waiters woken by pub/sub",
        floor: "SET key token NX PX / compare-and-delete script",
    },
    Scheme {
        name: "Redis Sentinel",
        scheme: "redis+sentinel",
        aliases: &[],
        kind: BackendKind::RedisSentinel,
        feature: "redis",
        default_port: Some(26379),
        url_form: "redis+sentinel://[user:pw@]s1:p1,s2:p2/master[?db=…&prefix=…]",
        summary: "one Redis primary found through its sentinels and followed across failovers: the one-instance backend's fencing and fair queue",
        floor: "none (the one-instance floor against the primary applies)",
    },
    Scheme {
        name: "Redis Cluster",
        scheme: "redis+cluster",
        aliases: &[],
        kind: BackendKind::RedisCluster,
        feature: "redis",
        default_port: Some(6379),
        url_form: "redis+cluster://[user:pw@]n1:p1,n2:p2[?prefix=…&replicas=…]",
        summary: "a Redis Cluster: each lock on the primary of its slot, followed across failovers and resharding; the one-instance backend's fencing and fair queue",
        floor: "none (the one-instance floor against one primary applies)",
    },
    Scheme {
        name: "Redlock",
        scheme: "redlock",
        aliases: &[],
        kind: BackendKind::Redlock,
        feature: "redis",
        default_port: Some(6379),
        url_form: "redlock://h1:p1,h2:p2,h3:p3[?prefix=…]",
        summary: "Redlock over N independent Redis instances (majority quorum)",
        floor: "SET NX PX on every instance, taken on a majority / compare-and-delete on all",
    },
    Scheme {
        name: "ZooKeeper",
        scheme: "zk",
        aliases: &["zookeeper"],
        kind: BackendKind::ZooKeeper,
        feature: "zookeeper",
        default_port: Some(2181),
        url_form: "zk://[user:pw@]h1:p1,h2:p2[/chroot][?session_timeout=…&prefix=…]",
        summary: "ephemeral sequential nodes on a ZooKeeper ensemble, waiters woken by predecessor watches",
        floor: "create an ephemeral node / delete it",
    },
    Scheme {
        name: "etcd",
        scheme: "etcd",
        aliases: &[],
        kind: BackendKind::Etcd,
        feature: "etcd",
        default_port: Some(2379),
        url_form: "etcd://[user:pw@]h1:p1,h2:p2[/prefix][?session_timeout=…&tls=true]",
        summary: "leases + create-revision queue on an etcd v3 cluster, waiters woken by watches",
        floor: "Txn: create the key if absent, under a lease / delete",
    },
];

/// The scheme entry for `scheme` (case-insensitive, aliases included).
pub fn lookup(scheme: &str) -> Option<&'static Scheme> {
    let scheme = scheme.to_ascii_lowercase();
    SCHEMES
        .iter()
        .find(|s| s.scheme == scheme || s.aliases.contains(&scheme.as_str()))
}

/// Every spelling of every scheme (aliases included), in table order.
pub fn all_spellings() -> impl Iterator<Item = &'static str> {
    SCHEMES
        .iter()
        .flat_map(|s| std::iter::once(s.scheme).chain(s.aliases.iter().copied()))
}

/// The Markdown table of backends the README and the facade's docs carry.
///
/// ```
/// let table = distlock_core::registry::docs_table();
/// assert!(table.lines().count() >= distlock_core::registry::SCHEMES.len() + 2);
/// ```
pub fn docs_table() -> String {
    let mut out = String::from("| backend | feature | URL | what it is |\n|---|---|---|---|\n");
    for s in SCHEMES {
        let mut url = format!("`{}`", s.url_form);
        for alias in s.aliases {
            url.push_str(&format!(" (or `{alias}://`)"));
        }
        out.push_str(&format!(
            "| {} | `{}` | {url} | {} |\n",
            s.name, s.feature, s.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_unique_and_found() {
        let all: Vec<&str> = all_spellings().collect();
        for (i, s) in all.iter().enumerate() {
            assert!(!all[..i].contains(s), "{s} twice");
            assert!(lookup(&s.to_ascii_uppercase()).is_some(), "{s}");
        }
        assert!(lookup("gopher").is_none());
    }
}
