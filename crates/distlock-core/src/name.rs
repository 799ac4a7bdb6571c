//! Lock names and how backends map them into their own key spaces.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{LockError, Result};

/// A validated lock name.
///
/// Names are case-sensitive UTF-8 strings, at most [`LockName::MAX_LEN`] bytes,
/// non-empty and free of NUL characters. Anything else (unicode, `/`, spaces,
/// quotes, `{}`, SQL metacharacters) is allowed: each backend maps the name into
/// its key space without interpolation (see [`LockName::key_within`]).
///
/// ```
/// use distlock_core::LockName;
/// let name = LockName::new("orders/42")?;
/// assert_eq!(name.as_str(), "orders/42");
/// assert!(LockName::new("").is_err());
/// assert!(LockName::new("a\0b").is_err());
/// # Ok::<(), distlock_core::LockError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockName(Arc<str>);

impl LockName {
    /// The longest accepted name, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Validates `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(LockError::InvalidName {
                reason: "a lock name must not be empty".into(),
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(LockError::InvalidName {
                reason: format!(
                    "a lock name must be at most {} bytes, got {}",
                    Self::MAX_LEN,
                    name.len()
                ),
            });
        }
        if name.contains('\0') {
            return Err(LockError::InvalidName {
                reason: "a lock name must not contain NUL".into(),
            });
        }
        Ok(LockName(Arc::from(name)))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the name: stable across processes, versions and platforms.
    pub fn digest_hex(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// Maps the name into a backend key of at most `max_bytes` bytes.
    ///
    /// `encode` turns the name into the backend's alphabet (escaping path
    /// separators, say). If the encoded form fits, it is returned as is.
    /// Otherwise it is cut at a character boundary and suffixed with `~` and the
    /// first 32 hex digits of the SHA-256 of the *whole* name, so two long names
    /// that share a prefix never collide. `max_bytes` must leave room for the
    /// 33-byte suffix (values below 64 are raised to 64).
    ///
    /// ```
    /// use distlock_core::LockName;
    /// let long = LockName::new("x".repeat(500))?;
    /// let key = long.key_within(100, |s| s.to_string());
    /// assert_eq!(key.len(), 100);
    /// let other = LockName::new(format!("{}y", "x".repeat(499)))?;
    /// assert_ne!(key, other.key_within(100, |s| s.to_string()));
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    pub fn key_within(&self, max_bytes: usize, encode: impl FnOnce(&str) -> String) -> String {
        let max_bytes = max_bytes.max(64);
        let encoded = encode(&self.0);
        if encoded.len() <= max_bytes {
            return encoded;
        }
        let digest = self.digest_hex();
        let suffix = &digest[..32];
        let mut cut = max_bytes - suffix.len() - 1;
        while !encoded.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}~{}", &encoded[..cut], suffix)
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockName({:?})", &*self.0)
    }
}

impl AsRef<str> for LockName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for LockName {
    type Error = LockError;
    fn try_from(value: &str) -> Result<Self> {
        LockName::new(value)
    }
}

impl TryFrom<String> for LockName {
    type Error = LockError;
    fn try_from(value: String) -> Result<Self> {
        LockName::new(value)
    }
}

impl std::str::FromStr for LockName {
    type Err = LockError;
    fn from_str(s: &str) -> Result<Self> {
        LockName::new(s)
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Percent-encodes every byte outside `[A-Za-z0-9_.-]` (as `%XX`).
///
/// A reversible, injective encoding for key spaces with reserved characters
/// (ZooKeeper paths, etcd prefixes): distinct names give distinct encodings.
///
/// ```
/// assert_eq!(distlock_core::percent_encode("a/b c"), "a%2Fb%20c");
/// ```
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (as written by [`percent_encode`] or found in
/// URLs); `None` for a malformed escape or bytes that are not UTF-8.
///
/// ```
/// use distlock_core::{percent_decode, percent_encode};
/// assert_eq!(percent_decode("p%40ss").as_deref(), Some("p@ss"));
/// assert_eq!(percent_decode(&percent_encode("a/b é")).as_deref(), Some("a/b é"));
/// assert_eq!(percent_decode("%zz"), None);
/// assert_eq!(percent_decode("%+1"), None);
/// ```
pub fn percent_decode(s: &str) -> Option<String> {
    // A `%` not followed by two hex digits is malformed, not literal.
    let bytes = s.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit())
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_nul_and_too_long() {
        assert!(matches!(
            LockName::new(""),
            Err(LockError::InvalidName { .. })
        ));
        assert!(matches!(
            LockName::new("a\0"),
            Err(LockError::InvalidName { .. })
        ));
        let long = "a".repeat(LockName::MAX_LEN + 1);
        assert!(matches!(
            LockName::new(long),
            Err(LockError::InvalidName { .. })
        ));
        assert!(LockName::new("a".repeat(LockName::MAX_LEN)).is_ok());
    }

    #[test]
    fn names_are_case_sensitive() {
        assert_ne!(LockName::new("A").unwrap(), LockName::new("a").unwrap());
    }

    #[test]
    fn shortening_respects_char_boundaries() {
        let name = LockName::new("é".repeat(300)).unwrap();
        let key = name.key_within(101, |s| s.to_string());
        assert!(key.len() <= 101);
        assert!(key.contains('~'));
    }

    #[test]
    fn percent_encoding_is_injective_on_reserved_chars() {
        assert_ne!(percent_encode("a/b"), percent_encode("a%2Fb"));
        assert_eq!(percent_encode("Ab-_.9"), "Ab-_.9");
    }
}
