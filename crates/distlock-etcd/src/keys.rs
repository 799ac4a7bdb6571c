//! The key layout.
//!
//! A lock `name` is the key range `<dir>` = `<prefix>/<escaped name>/`; each
//! acquire puts one entry key there, attached to an etcd lease, holding the
//! owner token; entries queue in create-revision order and an entry's
//! create revision is its fencing token. The key says the entry's mode:
//!
//! | entry | key |
//! |---|---|
//! | exclusive (mutex, writer) | `<dir><lease hex>-<random hex>` |
//! | shared (reader) | `<dir>s/<lease hex>-<random hex>` |
//! | permit of a semaphore of `n` | `<dir>#<n>/<lease hex>-<random hex>` |
//! | an upgrading reader's writer entry | `<dir>^<the reader's lease hex>-<the reader's random hex>-<random hex>` |
//!
//! The random suffix lets one client (one etcd lease) queue several
//! acquires of the same name. The tags sort `#` < `$` < hex digits < `^` <
//! `s`, so each mode's "what could block me" is one contiguous key range:
//! every permit is in `[<dir>#, <dir>$)`, everything but permits in
//! `[<dir>$, end)`, everything but readers in `[<dir>, <dir>s/)`.

use distlock_core::{
    percent_encode, FencingToken, Lease, LockError, LockName, Mode, OwnerToken, Result,
};
use etcd_client::{Compare, CompareOp, KeyValue};

/// Longest escaped-name segment of a key; longer names are shortened with a
/// hash by [`LockName::key_within`].
const MAX_NAME_SEGMENT: usize = 512;

/// The key range `<prefix>/<escaped name>/` of a lock name.
pub(crate) fn name_dir(prefix: &str, name: &LockName) -> String {
    let segment = name.key_within(MAX_NAME_SEGMENT, percent_encode);
    format!("{prefix}/{segment}/")
}

/// The tag of a reader's key.
const SHARED_TAG: &str = "s/";
/// The first byte of a permit's tag (`#<n>/`).
const PERMIT_TAG: char = '#';
/// The byte just after [`PERMIT_TAG`]: the end of the permits' range.
const AFTER_PERMITS: char = '$';
/// The tag of an upgrading reader's writer entry.
const UPGRADE_TAG: char = '^';

/// A new exclusive (mutex, writer) queue key under `dir` on etcd lease
/// `lease_id`.
pub(crate) fn queue_key(dir: &str, lease_id: i64) -> String {
    format!("{dir}{}", entry_id(lease_id))
}

/// `<lease hex>-<random hex>`: the last segment of every entry key.
fn entry_id(lease_id: i64) -> String {
    let suffix: u64 = rand::random();
    format!("{lease_id:016x}-{suffix:016x}")
}

/// A new queue key for an entry of `mode` under `dir` on etcd lease
/// `lease_id`.
pub(crate) fn entry_key(dir: &str, mode: Mode, lease_id: i64) -> String {
    match mode {
        Mode::Shared => format!("{dir}{SHARED_TAG}{}", entry_id(lease_id)),
        Mode::Permit { limit } => format!("{dir}{PERMIT_TAG}{limit}/{}", entry_id(lease_id)),
        _ => queue_key(dir, lease_id),
    }
}

/// The mode of the entry `key` under `dir`. A key this layout does not know
/// counts as exclusive: it then blocks everyone, never lets anyone in.
pub(crate) fn mode_of(dir: &str, key: &[u8]) -> Mode {
    let rest = key.strip_prefix(dir.as_bytes()).unwrap_or(key);
    if rest.starts_with(SHARED_TAG.as_bytes()) {
        return Mode::Shared;
    }
    let permit = rest
        .strip_prefix(&[PERMIT_TAG as u8])
        .and_then(|r| r.split(|&b| b == b'/').next())
        .and_then(|count| std::str::from_utf8(count).ok())
        .and_then(|count| count.parse::<u32>().ok())
        .filter(|&limit| limit > 0);
    match permit {
        Some(limit) => Mode::Permit { limit },
        None => Mode::Exclusive,
    }
}

/// A new writer entry for an upgrade of the reader entry `reader` (a key
/// under `dir`): `<dir>^<reader's lease hex>-<reader's random hex>-<random
/// hex>`, on the reader's etcd lease. Each attempt has its own key, so a
/// new attempt never meets the previous one's entry still being cleaned up.
pub(crate) fn upgrade_key(dir: &str, reader: &str) -> Option<String> {
    let id = reader.strip_prefix(dir)?.strip_prefix(SHARED_TAG)?;
    let suffix: u64 = rand::random();
    Some(format!("{dir}{UPGRADE_TAG}{id}-{suffix:016x}"))
}

/// The reader entry an upgrade's writer entry `key` (under `dir`) upgrades;
/// `None` for any other key.
pub(crate) fn upgraded_reader(dir: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(dir)?.strip_prefix(UPGRADE_TAG)?;
    let (id, _) = rest.rsplit_once('-')?;
    Some(format!("{dir}{SHARED_TAG}{id}"))
}

/// A key range `[start, end)`.
pub(crate) type Range = (String, String);

/// Every permit under `dir`, whatever its count.
pub(crate) fn permits(dir: &str) -> Range {
    (
        format!("{dir}{PERMIT_TAG}"),
        format!("{dir}{AFTER_PERMITS}"),
    )
}

/// Every entry under `dir` but permits.
pub(crate) fn not_permits(dir: &str) -> Range {
    (format!("{dir}{AFTER_PERMITS}"), prefix_end(dir))
}

/// Every entry under `dir` but readers.
pub(crate) fn not_shared(dir: &str) -> Range {
    (dir.to_string(), format!("{dir}{SHARED_TAG}"))
}

/// The end of the range of keys starting with `dir` (which ends in `/`).
fn prefix_end(dir: &str) -> String {
    match dir.strip_suffix('/') {
        Some(head) => format!("{head}0"),
        None => format!("{dir}\u{7f}"),
    }
}

/// The etcd lease id encoded in a queue key (`…/<lease hex>-<random hex>`).
pub(crate) fn lease_id_of(key: &str) -> Option<i64> {
    let last = key.rsplit('/').next()?;
    let last = last.strip_prefix(UPGRADE_TAG).unwrap_or(last);
    let (lease, _) = last.split_once('-')?;
    u64::from_str_radix(lease, 16).ok().map(|v| v as i64)
}

/// The queue key a lease carries, refused if it does not lie under the
/// lease's name in `prefix`.
pub(crate) fn key_of<'a>(prefix: &str, lease: &'a Lease) -> Result<&'a str> {
    let key = lease.data();
    if !key.starts_with(&name_dir(prefix, lease.name())) {
        return Err(LockError::InvalidLease {
            reason: "the lease's etcd key does not belong to its lock name under this prefix"
                .into(),
        });
    }
    Ok(key)
}

/// What separates the owner token from the holder label in an entry's
/// value. No hex digit sorts below it, so "starts with this owner token" is
/// one range of values (see [`owner_compares`]).
const LABEL_SEPARATOR: u8 = b'\n';

/// The value of an entry key: the owner token in hex, then, for a labelled
/// hold (an elected leader), [`LABEL_SEPARATOR`] and the label.
pub(crate) fn entry_value(owner: OwnerToken, label: Option<&str>) -> Vec<u8> {
    let mut value = owner.to_hex().into_bytes();
    if let Some(label) = label {
        value.push(LABEL_SEPARATOR);
        value.extend_from_slice(label.as_bytes());
    }
    value
}

/// The holder label an entry's value carries, if any.
pub(crate) fn label_of(value: &[u8]) -> Option<String> {
    let at = value.iter().position(|&b| b == LABEL_SEPARATOR)?;
    String::from_utf8(value[at + 1..].to_vec()).ok()
}

/// The compares that prove `lease` still holds `key`: same create revision
/// (its fencing token) and a value that is the lease's owner token, with or
/// without a label.
pub(crate) fn held_compares(key: &str, lease: &Lease) -> Vec<Compare> {
    let fence = i64::try_from(lease.fencing_token().get()).unwrap_or(i64::MAX);
    let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, fence)];
    compares.extend(owner_compares(key, lease.owner()));
    compares
}

/// The compares that prove `key`'s value is `owner`'s ([`entry_value`]
/// with any label, or none). etcd compares a value whole, so the label's
/// presence, unknown to the lease, is covered by a range: every such value
/// `v` has `below < v < above`, where `above` is the owner token followed by
/// the byte after [`LABEL_SEPARATOR`], and `below` the owner token with its
/// last digit one lower followed by `0xff` (a byte no value holds). No other
/// owner token's value lies in between: it differs within the first 32
/// bytes.
fn owner_compares(key: &str, owner: OwnerToken) -> [Compare; 2] {
    let (below, above) = owner_bounds(owner);
    [
        Compare::value(key, CompareOp::Greater, below),
        Compare::value(key, CompareOp::Less, above),
    ]
}

/// The bounds of [`owner_compares`], both excluded.
fn owner_bounds(owner: OwnerToken) -> (Vec<u8>, Vec<u8>) {
    let hex = owner.to_hex().into_bytes();
    let mut below = hex.clone();
    if let Some(last) = below.last_mut() {
        *last -= 1; // a hex digit: never 0
    }
    below.push(0xff);
    let mut above = hex;
    above.push(LABEL_SEPARATOR + 1);
    (below, above)
}

/// A create revision as a fencing token.
pub(crate) fn fencing(create_revision: i64) -> FencingToken {
    FencingToken(u64::try_from(create_revision).unwrap_or(0))
}

/// From the newest keys under a name (create revision descending, ours
/// among them): our create revision and the key just before ours, passing
/// over `skip` (an upgrade's own reader entry).
pub(crate) fn split_queue<'a>(
    kvs: &'a [KeyValue],
    key: &str,
    skip: Option<&str>,
) -> (Option<i64>, Option<&'a KeyValue>) {
    let Some(pos) = kvs.iter().position(|kv| kv.key() == key.as_bytes()) else {
        return (None, None);
    };
    let mine = kvs[pos].create_revision();
    let predecessor = kvs
        .iter()
        .skip(pos + 1)
        .filter(|kv| skip.is_none_or(|s| kv.key() != s.as_bytes()))
        .find(|kv| kv.create_revision() < mine);
    (Some(mine), predecessor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_carry_their_lease_and_stay_under_the_name() {
        let name = LockName::new("a/b c").unwrap();
        let dir = name_dir("locks", &name);
        assert!(dir.starts_with("locks/") && dir.ends_with('/'), "{dir}");
        let key = queue_key(&dir, 0x1234);
        assert!(key.starts_with(&dir));
        assert_eq!(lease_id_of(&key), Some(0x1234));
        assert_ne!(queue_key(&dir, 0x1234), key, "each acquire has its own key");
    }

    #[test]
    fn entry_keys_say_their_mode() {
        let dir = name_dir("locks", &LockName::new("n").unwrap());
        for mode in [
            Mode::Exclusive,
            Mode::Shared,
            Mode::Permit { limit: 1 },
            Mode::Permit { limit: 30 },
        ] {
            let key = entry_key(&dir, mode, 0xab);
            assert!(key.starts_with(&dir));
            assert_eq!(mode_of(&dir, key.as_bytes()), mode, "{key}");
            assert_eq!(lease_id_of(&key), Some(0xab), "{key}");
        }
        let odd = format!("{dir}#0/00-00");
        assert_eq!(mode_of(&dir, odd.as_bytes()), Mode::Exclusive);
    }

    #[test]
    fn each_mode_lies_in_its_ranges() {
        let dir = name_dir("p", &LockName::new("n").unwrap());
        let within = |(start, end): &Range, key: &str| start.as_str() <= key && key < end.as_str();
        let (x, s, p) = (
            entry_key(&dir, Mode::Exclusive, i64::MAX),
            entry_key(&dir, Mode::Shared, 0),
            entry_key(&dir, Mode::Permit { limit: u32::MAX }, 0),
        );
        let u = upgrade_key(&dir, &s).unwrap();
        assert_ne!(
            upgrade_key(&dir, &s).unwrap(),
            u,
            "each attempt has its own key"
        );
        assert_eq!(upgraded_reader(&dir, &u).as_deref(), Some(s.as_str()));
        assert_eq!(upgraded_reader(&dir, &x), None);
        assert_eq!(upgrade_key(&dir, &x), None);
        assert_eq!(lease_id_of(&u), lease_id_of(&s));
        assert_eq!(mode_of(&dir, u.as_bytes()), Mode::Exclusive);
        let all = (dir.clone(), prefix_end(&dir));
        for key in [&x, &s, &p, &u] {
            assert!(within(&all, key), "{key}");
        }
        assert!(within(&permits(&dir), &p));
        for key in [&x, &s, &u] {
            assert!(
                !within(&permits(&dir), key) && within(&not_permits(&dir), key),
                "{key}"
            );
        }
        for key in [&x, &p, &u] {
            assert!(within(&not_shared(&dir), key), "{key}");
        }
        assert!(!within(&not_shared(&dir), &s));
        assert!(!within(&not_permits(&dir), &p));
    }

    #[test]
    fn the_owner_range_holds_the_owners_values_and_no_other() {
        let within = |owner: OwnerToken, value: &[u8]| {
            let (below, above) = owner_bounds(owner);
            below.as_slice() < value && value < above.as_slice()
        };
        for _ in 0..200 {
            let owner = OwnerToken::random();
            for label in [None, Some("n"), Some("é/ü\u{10FFFF}"), Some("\u{1}")] {
                let value = entry_value(owner, label);
                assert!(within(owner, &value), "{label:?}");
                assert_eq!(label_of(&value).as_deref(), label);
            }
            let hex = owner.to_hex();
            for (at, digit) in [(31, b'0'), (31, b'f'), (0, b'0'), (0, b'f'), (15, b'8')] {
                let mut other = hex.clone().into_bytes();
                other[at] = digit;
                if other == hex.as_bytes() {
                    continue;
                }
                let mut labelled = other.clone();
                labelled.extend_from_slice(b"\n\xff-label");
                assert!(!within(owner, &other) && !within(owner, &labelled));
            }
        }
    }

    #[test]
    fn fencing_of_a_negative_revision_is_zero() {
        assert_eq!(fencing(-1), FencingToken(0));
        assert_eq!(fencing(42), FencingToken(42));
    }
}
