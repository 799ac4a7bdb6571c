//! The key layout.
//!
//! A lock `name` is the key range `<prefix>/<escaped name>/`; each acquire
//! puts one key `<prefix>/<escaped name>/<lease id hex>-<random hex>`
//! attached to the client's etcd lease, holding the owner token. The key
//! with the lowest create revision holds the lock; its create revision is
//! the fencing token. The random suffix lets one client (one etcd lease)
//! queue several acquires of the same name.

use distlock_core::{percent_encode, FencingToken, Lease, LockError, LockName, Result};
use etcd_client::{Compare, CompareOp, KeyValue};

/// Longest escaped-name segment of a key; longer names are shortened with a
/// hash by [`LockName::key_within`].
const MAX_NAME_SEGMENT: usize = 512;

/// The key range `<prefix>/<escaped name>/` of a lock name.
pub(crate) fn name_dir(prefix: &str, name: &LockName) -> String {
    let segment = name.key_within(MAX_NAME_SEGMENT, percent_encode);
    format!("{prefix}/{segment}/")
}

/// A new queue key under `dir` on etcd lease `lease_id`.
pub(crate) fn queue_key(dir: &str, lease_id: i64) -> String {
    let suffix: u64 = rand::random();
    format!("{dir}{lease_id:016x}-{suffix:016x}")
}

/// The etcd lease id encoded in a queue key (`…/<lease hex>-<random hex>`).
pub(crate) fn lease_id_of(key: &str) -> Option<i64> {
    let last = key.rsplit('/').next()?;
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

/// The compares that prove `lease` still holds `key`: same create revision
/// (its fencing token) and same owner token as value.
pub(crate) fn held_compares(key: &str, lease: &Lease) -> Vec<Compare> {
    let fence = i64::try_from(lease.fencing_token().get()).unwrap_or(i64::MAX);
    vec![
        Compare::create_revision(key, CompareOp::Equal, fence),
        Compare::value(key, CompareOp::Equal, lease.owner().to_hex()),
    ]
}

/// A create revision as a fencing token.
pub(crate) fn fencing(create_revision: i64) -> FencingToken {
    FencingToken(u64::try_from(create_revision).unwrap_or(0))
}

/// From the newest keys under a name (create revision descending, ours
/// among them): our create revision and the key just before ours.
pub(crate) fn split_queue(kvs: &[KeyValue], key: &str) -> (Option<i64>, Option<String>) {
    let Some(pos) = kvs.iter().position(|kv| kv.key() == key.as_bytes()) else {
        return (None, None);
    };
    let mine = kvs[pos].create_revision();
    let predecessor = kvs
        .iter()
        .skip(pos + 1)
        .find(|kv| kv.create_revision() < mine)
        .and_then(|kv| kv.key_str().ok().map(str::to_string));
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
    fn fencing_of_a_negative_revision_is_zero() {
        assert_eq!(fencing(-1), FencingToken(0));
        assert_eq!(fencing(42), FencingToken(42));
    }
}
