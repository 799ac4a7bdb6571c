//! Where a hold of each mode lives on an instance, and how the scripts
//! name it.
//!
//! - The mutex (which is the write lock) is the lock key holding the owner
//!   token.
//! - A reader, or a permit on one instance, is the member
//!   `<mode>:<owner token>` of the holders set, scored by its expiry.
//! - A Redlock permit is permit slot `i` of `n` (a mutex key of its own,
//!   taken on a majority like the lock key) and a member of the holders set
//!   on each instance that granted it, so the writer and readers stay out.

use distlock_core::{Lease, LockError, Mode, OwnerToken, Result};

use crate::keys::LockKeys;

/// Where one hold lives on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The mutex, or the writer: the lock key holds the owner token.
    Exclusive,
    /// A reader (`mode` `s`) or a permit on one instance (`p<n>`): a member
    /// of the holders set.
    Member {
        /// The mode as the scripts write it.
        mode: String,
    },
    /// A Redlock permit: a permit slot holds the owner token, and the owner
    /// is a member of the holders set.
    Slot {
        /// The mode as the scripts write it (`p<n>`).
        mode: String,
        /// The permit count `n`.
        limit: u32,
        /// The slot taken, once known.
        slot: Option<u32>,
    },
}

impl Hold {
    /// The hold a request in `mode` takes; `redlock` when it must be safe
    /// across a majority of independent instances.
    pub(crate) fn for_mode(mode: Mode, redlock: bool, backend: &'static str) -> Result<Hold> {
        match mode {
            Mode::Exclusive => Ok(Hold::Exclusive),
            Mode::Shared => Ok(Hold::Member { mode: "s".into() }),
            Mode::Permit { limit } if redlock => Ok(Hold::Slot {
                mode: format!("p{limit}"),
                limit,
                slot: None,
            }),
            Mode::Permit { limit } => Ok(Hold::Member {
                mode: format!("p{limit}"),
            }),
            _ => Err(LockError::Unsupported {
                backend,
                operation: "this lock mode",
            }),
        }
    }

    /// The hold `lease` stands for (a Redlock permit's slot is read from
    /// the lease's data, the key it was granted).
    pub(crate) fn of_lease(
        lease: &Lease,
        keys: &LockKeys,
        redlock: bool,
        backend: &'static str,
    ) -> Result<Hold> {
        match Hold::for_mode(lease.mode(), redlock, backend)? {
            Hold::Slot { mode, limit, .. } => {
                let slot = keys
                    .permit_slot(lease.data())
                    .filter(|slot| *slot < limit)
                    .ok_or_else(|| LockError::InvalidLease {
                        reason: format!(
                            "a {} lease of `{}` must name its permit slot",
                            backend,
                            lease.name()
                        ),
                    })?;
                Ok(Hold::Slot {
                    mode,
                    limit,
                    slot: Some(slot),
                })
            }
            hold => Ok(hold),
        }
    }

    /// The mode as the scripts write it: `x`, `s` or `p<n>`.
    pub(crate) fn mode(&self) -> &str {
        match self {
            Hold::Exclusive => "x",
            Hold::Member { mode } | Hold::Slot { mode, .. } => mode,
        }
    }

    /// The owner's member of the holders set, or `""` for the writer.
    pub(crate) fn member(&self, owner: OwnerToken) -> String {
        match self {
            Hold::Exclusive => String::new(),
            Hold::Member { mode } | Hold::Slot { mode, .. } => format!("{mode}:{}", owner.to_hex()),
        }
    }

    /// The key holding the owner token: a Redlock permit's slot (once
    /// known), else the lock key (a reader's owner is found there once it
    /// upgraded).
    pub(crate) fn owning_key(&self, keys: &LockKeys) -> String {
        match self {
            Hold::Slot {
                slot: Some(slot), ..
            } => keys.permit(*slot),
            _ => keys.lock.clone(),
        }
    }

    /// The same hold, on permit slot `slot` (a Redlock permit's grant).
    pub(crate) fn on_slot(&self, slot: Option<u32>) -> Hold {
        match self {
            Hold::Slot { mode, limit, .. } => Hold::Slot {
                mode: mode.clone(),
                limit: *limit,
                slot,
            },
            hold => hold.clone(),
        }
    }

    /// The extend script's kind: `x` (lock key), `m` (member) or `k`
    /// (permit slot and member).
    pub(crate) fn extend_kind(&self) -> &'static str {
        match self {
            Hold::Exclusive => "x",
            Hold::Member { .. } => "m",
            Hold::Slot { .. } => "k",
        }
    }

    /// The member the fencing write-back checks: a reader's (its hold has
    /// no key of its own), `""` where the owning key holds the owner token.
    pub(crate) fn fence_member(&self, owner: OwnerToken) -> String {
        match self {
            Hold::Member { .. } => self.member(owner),
            _ => String::new(),
        }
    }

    /// The lease data of a grant: the key holding the owner token, or the
    /// holders set for a member.
    pub(crate) fn data(&self, keys: &LockKeys) -> String {
        match self {
            Hold::Member { .. } => keys.holders.clone(),
            _ => self.owning_key(keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use distlock_core::LockName;

    use super::*;

    fn keys() -> LockKeys {
        LockKeys::new("t:", &LockName::new("n").unwrap())
    }

    #[test]
    fn each_mode_has_its_place() {
        let owner = OwnerToken::random();
        let x = Hold::for_mode(Mode::Exclusive, true, "redlock").unwrap();
        assert_eq!((x.mode(), x.member(owner)), ("x", String::new()));
        let s = Hold::for_mode(Mode::Shared, true, "redlock").unwrap();
        assert_eq!(s.member(owner), format!("s:{}", owner.to_hex()));
        assert_eq!(s.fence_member(owner), s.member(owner));
        let one = Hold::for_mode(Mode::Permit { limit: 3 }, false, "redis").unwrap();
        assert_eq!(one.extend_kind(), "m");
        let many = Hold::for_mode(Mode::Permit { limit: 3 }, true, "redlock").unwrap();
        assert_eq!((many.mode(), many.extend_kind()), ("p3", "k"));
        assert_eq!(many.on_slot(Some(2)).owning_key(&keys()), keys().permit(2));
        assert_eq!(many.fence_member(owner), "");
    }
}
