//! A session's book: which keys it holds and for whom, which are claimed by
//! a request in flight, and what its connection is doing (see
//! [`connection`](super::connection)).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use distlock_core::OwnerToken;

use super::db::Gate;

/// Hashes a key's id as itself: ids are digests, spread evenly already.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = u64::from_ne_bytes(id.to_ne_bytes());
    }
}

/// A map from key ids.
pub(super) type ById<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

/// A key this session holds, and for whom.
#[derive(Debug)]
pub(super) struct Holding {
    pub(super) gate: Gate,
    /// Several only for a shared hold that local readers joined.
    pub(super) owners: Vec<OwnerToken>,
}

/// What a session holds and is doing.
pub(super) struct Book {
    pub(super) held: ById<Holding>,
    /// Keys claimed by a request in flight (or its clean-up), by claim id.
    pub(super) claimed: ById<u64>,
    /// The claim whose waiting statement occupies the connection.
    pub(super) blocking: Option<u64>,
    /// The server heard from the session no earlier than this.
    pub(super) contact: Instant,
    /// When a request last used it.
    pub(super) used: Instant,
    /// Statements waiting for or running on the connection.
    pub(super) queued: usize,
    /// Closed or lost.
    pub(super) gone: bool,
    /// Dedicated to the one hold it has: no other request goes here.
    pub(super) dedicated: bool,
}

impl Book {
    /// Neither holds nor claims `key`.
    pub(super) fn has_not(&self, key: i64) -> bool {
        !self.held.contains_key(&key) && !self.claimed.contains_key(&key)
    }
}
