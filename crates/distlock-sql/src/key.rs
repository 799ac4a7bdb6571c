//! The row key of a lock name.

use distlock_core::LockName;

/// The longest key stored for a lock name, in bytes; longer names are
/// shortened with a hash suffix.
pub const MAX_KEY_BYTES: usize = 255;

/// The row key of a lock name (in both tables).
pub(crate) fn key(name: &LockName) -> String {
    name.key_within(MAX_KEY_BYTES, |s| s.to_string())
}
