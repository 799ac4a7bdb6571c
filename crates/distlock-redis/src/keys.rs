//! How lock names map to Redis keys.
//!
//! Every key of one lock shares a hash tag, `{<prefix><escaped name>}`, so the
//! lock key, the holders set, the permit slots, the fencing counter, the
//! holder label, the release channel and the waiters' queue live in one
//! cluster slot. The name is escaped so `{` and `}` inside it cannot end or start the
//! tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D` (an injective mapping, so two
//! names never share keys). Names whose escaped form is long are shortened by
//! [`LockName::key_within`] with a hash suffix.

use distlock_core::LockName;

/// The longest escaped name kept verbatim inside the hash tag.
const MAX_NAME_BYTES: usize = 512;

/// The keys of one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockKeys {
    /// Holds the owner token while the lock is held exclusively (expires
    /// with the ttl).
    pub lock: String,
    /// Shared holders and permits: a sorted set of `<mode>:<owner token>` by
    /// expiry (ms, server time), expiring with its latest member.
    pub holders: String,
    /// Redlock permits: permit `i` is the key `<permits>:<i>`, holding the
    /// owner token while taken (expires with the ttl).
    pub permits: String,
    /// The fencing counter (never expires, never deleted).
    pub fence: String,
    /// The channel the release script publishes on.
    pub channel: String,
    /// Fair mode: the waiters' queue (sorted set of owner tokens by arrival;
    /// an upgrade waits at score 0, first).
    pub queue: String,
    /// Fair mode: each queued waiter's deadline, ttl, mode and holder
    /// label (hash owner token -> `deadline_ms:ttl_ms:mode[:label]`).
    pub waiters: String,
    /// The label of the latest labelled exclusive grant (an elected
    /// leader's identity), as `<owner token>:<label>`. Kept (like the
    /// fencing counter): it names the holder only while the lock key holds
    /// that owner token.
    pub holder: String,
}

impl LockKeys {
    pub(crate) fn new(prefix: &str, name: &LockName) -> Self {
        let escaped = name.key_within(MAX_NAME_BYTES, escape);
        let tag = format!("{{{prefix}{escaped}}}");
        LockKeys {
            lock: format!("{tag}:lock"),
            holders: format!("{tag}:holders"),
            permits: format!("{tag}:permit"),
            fence: format!("{tag}:fence"),
            channel: format!("{tag}:released"),
            queue: format!("{tag}:queue"),
            waiters: format!("{tag}:waiters"),
            holder: format!("{tag}:holder"),
        }
    }

    /// The key of Redlock permit slot `slot`.
    pub(crate) fn permit(&self, slot: u32) -> String {
        format!("{}:{slot}", self.permits)
    }

    /// The slot a permit key names, if it is one of this lock's.
    pub(crate) fn permit_slot(&self, key: &str) -> Option<u32> {
        key.strip_prefix(self.permits.as_str())?
            .strip_prefix(':')?
            .parse()
            .ok()
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
        assert_eq!(k.holders, "{distlock:orders/42}:holders");
        assert_eq!(k.holder, "{distlock:orders/42}:holder");
        assert_eq!(k.permit(3), "{distlock:orders/42}:permit:3");
    }

    #[test]
    fn permit_keys_read_back_as_their_slot() {
        let k = keys("orders/42");
        assert_eq!(k.permit_slot(&k.permit(7)), Some(7));
        assert_eq!(k.permit_slot(&k.lock), None);
        assert_eq!(k.permit_slot(&keys("other").permit(7)), None);
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
