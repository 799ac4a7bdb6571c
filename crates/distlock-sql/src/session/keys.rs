//! A lock name as the database's session locks know it.
//!
//! Both come from one digest, SHA-256(`<table>` 0x00 `<name>`), so that
//! two tables' names never share a lock:
//!
//! - PostgreSQL: the advisory lock key is the digest's first 8 bytes, read
//!   as a big-endian `bigint`;
//! - MySQL/MariaDB: the `GET_LOCK` name is `dl:` and the digest's first 20
//!   bytes in hex (43 characters; the limit is 64).
//!
//! Two names share a PostgreSQL key with probability 2⁻⁶⁴ per pair: for
//! `n` names in use, about n²/2⁶⁵ (10⁶ names: 3·10⁻⁸). MySQL's 160 bits
//! make a collision negligible. A collision never breaks exclusion; the two
//! names then exclude each other too.

use distlock_core::LockName;
use sha2::{Digest, Sha256};

use crate::key::key as row_key;

/// One name's keys: its session locks' and its rows'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    /// The PostgreSQL advisory lock key; also how the sessions tell keys
    /// apart on MySQL (conservatively: two names whose ids meet are kept
    /// apart as if they were one).
    pub id: i64,
    /// The MySQL/MariaDB `GET_LOCK` name.
    pub named: Named,
    /// The name's key in the locks and holders tables (shared: a key is
    /// cloned into every clean-up armed for it).
    pub row: std::sync::Arc<str>,
}

/// Tells a name's presence slots apart from its lock in a session's book
/// (a different id, so that holding one never keeps a request for the
/// other away from the session).
const PRESENCE: i64 = 0x5f3c_9a1d_27e4_b6c3;

impl Key {
    /// The keys of `name` in `table`.
    pub fn of(table: &str, name: &LockName) -> Key {
        let mut digest = Sha256::new();
        digest.update(table.as_bytes());
        digest.update([0u8]);
        digest.update(name.as_str().as_bytes());
        let digest = digest.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let mut named = [0u8; NAMED_LEN];
        named[..3].copy_from_slice(b"dl:");
        // 20 bytes fill the 40 digits exactly, so this cannot fail.
        let _ = hex::encode_to_slice(&digest[..20], &mut named[3..]);
        Key {
            id: i64::from_be_bytes(first),
            named: Named(named),
            row: row_key(name).into(),
        }
    }

    /// The keys of the name's presence slots (MySQL/MariaDB): `GET_LOCK`
    /// names `<named>:0`, `<named>:1`, … (at most 46 characters), held by
    /// the sessions of readers and permit holders. The row key is the
    /// name's.
    pub fn presence(&self) -> Key {
        Key {
            id: self.id ^ PRESENCE,
            named: self.named,
            row: self.row.clone(),
        }
    }
}

/// The length of a `GET_LOCK` name: `dl:` and 40 hex digits.
pub(crate) const NAMED_LEN: usize = 43;

/// A `GET_LOCK` name (`dl:` and 40 lower-case hex digits), kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Named([u8; NAMED_LEN]);

impl Named {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("dl:")
    }
}

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(table: &str, name: &str) -> Key {
        Key::of(table, &LockName::new(name).unwrap())
    }

    #[test]
    fn keys_come_from_the_table_and_the_name() {
        let a = key("distlock_locks", "jobs/nightly");
        assert_eq!(a, key("distlock_locks", "jobs/nightly"));
        assert_ne!(a.id, key("distlock_locks", "jobs/Nightly").id);
        let other_table = key("other_locks", "jobs/nightly");
        assert_ne!(a.id, other_table.id);
        assert_ne!(a.named, other_table.named);
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(key("ab", "c").id, key("a", "bc").id);
        assert_eq!(&*a.row, "jobs/nightly");
    }

    #[test]
    fn the_named_key_fits_mysql() {
        let long = "x".repeat(1000);
        let k = key("t", &long);
        let named = k.named.as_str();
        assert_eq!(named.len(), 43);
        assert!(named.starts_with("dl:"));
        assert!(named[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(k.row.len() <= crate::key::MAX_KEY_BYTES);
    }

    #[test]
    fn the_advisory_key_is_the_digest_prefix() {
        // SHA-256("t\0n") starts with these 8 bytes.
        let digest = Sha256::digest(b"t\0n");
        let expected = i64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(key("t", "n").id, expected);
        let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key("t", "n").named.as_str(), format!("dl:{hex}"));
    }
}
