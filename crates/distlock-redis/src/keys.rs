//! How lock names map to Redis keys.
//!
//! Every key of one lock shares a hash tag, `{<prefix><escaped name>}`, so the
//! lock key, the fencing counter, the release channel and the waiters' queue
//! live in one cluster
//! slot. The name is escaped so `{` and `}` inside it cannot end or start the
//! tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D` (an injective mapping, so two
//! names never share keys). Names whose escaped form is long are shortened by
//! [`LockName::key_within`] with a hash suffix.

use distlock_core::LockName;

/// The longest escaped name kept verbatim inside the hash tag.
const MAX_NAME_BYTES: usize = 512;

/// The keys of one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockKeys {
    /// Holds the owner token while the lock is held (expires with the ttl).
    pub lock: String,
    /// The fencing counter (never expires, never deleted).
    pub fence: String,
    /// The channel the release script publishes on.
    pub channel: String,
    /// Fair mode: the waiters' queue (sorted set of owner tokens by arrival).
    pub queue: String,
    /// Fair mode: each queued waiter's deadline (hash owner token -> ms).
    pub waiters: String,
}

impl LockKeys {
    pub(crate) fn new(prefix: &str, name: &LockName) -> Self {
        let escaped = name.key_within(MAX_NAME_BYTES, escape);
        let tag = format!("{{{prefix}{escaped}}}");
        LockKeys {
            lock: format!("{tag}:lock"),
            fence: format!("{tag}:fence"),
            channel: format!("{tag}:released"),
            queue: format!("{tag}:queue"),
            waiters: format!("{tag}:waiters"),
        }
    }
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(name: &str) -> LockKeys {
        LockKeys::new("distlock:", &LockName::new(name).unwrap())
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = keys("orders/42");
        assert_eq!(k.lock, "{distlock:orders/42}:lock");
        assert_eq!(k.fence, "{distlock:orders/42}:fence");
        assert_eq!(k.channel, "{distlock:orders/42}:released");
    }

    #[test]
    fn braces_in_names_do_not_break_the_tag() {
        let k = keys("a}b{c");
        let tag_end = k.lock.find('}').unwrap();
        assert_eq!(&k.lock[tag_end..], "}:lock");
        assert_ne!(keys("%7D").lock, keys("}").lock);
    }

    #[test]
    fn long_names_are_shortened_without_collisions() {
        let a = keys(&"x".repeat(1000));
        let b = keys(&format!("{}y", "x".repeat(999)));
        assert_ne!(a.lock, b.lock);
        assert!(a.lock.len() < 600);
    }
}
