//! Names in the lock tree: a directory per lock name, one queue node per
//! contender, and the lease data that points back at it.
//!
//! ```text
//! <chroot><root>/<escaped lock name>/<owner token hex>-<sequence>
//! ```
//!
//! The owner token (random, 128 bits, drawn by the core for each acquire) is
//! the "protection" prefix: it lets a contender whose create reply was lost
//! find its node among the children.

use distlock_core::{percent_encode, Lease, LockError, LockName, Result};
use zookeeper_client as zk;

/// Longest escaped lock name used as a path segment (longer names are
/// shortened with a hash suffix by [`LockName::key_within`]).
pub(crate) const MAX_SEGMENT: usize = 240;

/// Where this backend's lock directories live, and the ACL of every node it
/// creates there.
#[derive(Clone, Debug)]
pub(crate) struct LockTree {
    /// chroot + prefix: every lock directory lives right under it.
    pub(crate) base: String,
    /// ACL for every node we create; empty means `world:anyone` ALL.
    acl: Vec<zk::Acl>,
}

impl LockTree {
    /// The tree under `base`; with credentials, nodes get the ACL "this
    /// identity: all; everyone: read".
    pub(crate) fn new(base: String, authenticated: bool) -> Self {
        let acl = if authenticated {
            // `auth` stands for the identities this session authenticated as.
            vec![
                zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
                zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
            ]
        } else {
            Vec::new()
        };
        LockTree { base, acl }
    }

    /// The directory of `name`.
    pub(crate) fn dir(&self, name: &LockName) -> String {
        lock_dir(&self.base, name)
    }

    /// The ACL to create nodes with.
    pub(crate) fn acls(&self) -> zk::Acls<'_> {
        if self.acl.is_empty() {
            zk::Acls::anyone_all()
        } else {
            zk::Acls::new(&self.acl)
        }
    }
}

/// The directory (a container node) that queues contenders for `name`.
pub(crate) fn lock_dir(base: &str, name: &LockName) -> String {
    let segment = name.key_within(MAX_SEGMENT, |s| match percent_encode(s).as_str() {
        // `.` and `..` are not valid ZooKeeper path segments. `%` is always
        // escaped by `percent_encode`, so these spellings collide with nothing.
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        other => other.to_string(),
    });
    format!("{base}/{segment}")
}

/// The prefix a contender's sequential node is created with.
pub(crate) fn node_prefix(dir: &str, owner_hex: &str) -> String {
    format!("{dir}/{owner_hex}-")
}

/// One child of a lock directory that looks like a queue node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueNode {
    /// The child's name (not the full path).
    pub(crate) name: String,
    /// Its owner token, in hex.
    pub(crate) owner: String,
    /// Its sequence number in this directory.
    pub(crate) seq: i64,
}

impl QueueNode {
    fn parse(child: &str) -> Option<QueueNode> {
        let (owner, seq) = child.split_once('-')?;
        if owner.len() != 32 || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(QueueNode {
            name: child.to_string(),
            owner: owner.to_string(),
            seq: seq.parse().ok()?,
        })
    }
}

/// The queue in line order (lowest sequence first); foreign children are ignored.
pub(crate) fn queue(children: &[String]) -> Vec<QueueNode> {
    let mut q: Vec<QueueNode> = children
        .iter()
        .filter_map(|c| QueueNode::parse(c))
        .collect();
    q.sort_by_key(|n| n.seq);
    q
}

/// Where a contender stands in its queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// First in line: it holds the lock.
    First,
    /// Behind `predecessor` (a child name), the node it must watch.
    Behind {
        /// The child right before ours.
        predecessor: String,
    },
    /// Our node is not in the directory (any more).
    Gone,
    /// Other nodes carry our owner token: a create retried after a lost
    /// reply that landed twice, or the node of an earlier attempt on a
    /// session this client gave up on and the server has not expired yet.
    /// They must go before ours may count as first.
    Others {
        /// Their child names.
        extra: Vec<String>,
    },
}

/// Where the contender with owner token `owner` (hex), whose node is named
/// `ours`, stands among `children`.
pub(crate) fn place(children: &[String], owner: &str, ours: &str) -> Place {
    let line = queue(children);
    let Some(position) = line.iter().position(|n| n.name == ours) else {
        return Place::Gone;
    };
    let extra: Vec<String> = line
        .iter()
        .filter(|n| n.owner == owner && n.name != ours)
        .map(|n| n.name.clone())
        .collect();
    if !extra.is_empty() {
        return Place::Others { extra };
    }
    match position.checked_sub(1) {
        None => Place::First,
        Some(before) => Place::Behind {
            predecessor: line[before].name.clone(),
        },
    }
}

/// What a lease carries to find its node again (in this or another process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseNode {
    /// Full path of the queue node.
    pub(crate) path: String,
    /// The session that owns it (the node's `ephemeralOwner`).
    pub(crate) session: i64,
}

impl LeaseNode {
    pub(crate) fn to_data(&self) -> String {
        format!("node={};session={:x}", self.path, self.session)
    }

    /// Reads the lease data back, refusing a path that is not the node this
    /// lease's name and owner token would have created under `base`.
    pub(crate) fn from_lease(base: &str, lease: &Lease) -> Result<LeaseNode> {
        let bad = |why: &str| LockError::InvalidLease {
            reason: format!("zookeeper lease data: {why}"),
        };
        let data = lease.data();
        let (node, session) = data
            .strip_prefix("node=")
            .and_then(|rest| rest.split_once(";session="))
            .ok_or_else(|| bad("expected `node=…;session=…`"))?;
        let session = i64::from_str_radix(session, 16)
            .or_else(|_| u64::from_str_radix(session, 16).map(|v| v as i64))
            .map_err(|_| bad("session is not hex"))?;
        let prefix = node_prefix(&lock_dir(base, lease.name()), &lease.owner().to_hex());
        // A node that is not the one this name and owner token would have
        // created under this root is simply not held by this lease.
        let seq = node
            .strip_prefix(&prefix)
            .ok_or_else(|| LockError::not_held(lease.name().to_string()))?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LockError::not_held(lease.name().to_string()));
        }
        Ok(LeaseNode {
            path: node.to_string(),
            session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_names_map_to_valid_distinct_segments() {
        let dot = lock_dir("/r", &LockName::new(".").unwrap());
        let dotdot = lock_dir("/r", &LockName::new("..").unwrap());
        let lit = lock_dir("/r", &LockName::new("%2E").unwrap());
        assert_eq!(dot, "/r/%2E");
        assert_eq!(dotdot, "/r/%2E%2E");
        assert_ne!(dot, lit);
    }

    #[test]
    fn slashes_never_reach_the_path() {
        let d = lock_dir("/r", &LockName::new("a/b/../c").unwrap());
        assert_eq!(d.matches('/').count(), 2, "{d}");
    }

    #[test]
    fn long_names_are_bounded() {
        let d = lock_dir("/r", &LockName::new("é".repeat(500)).unwrap());
        assert!(d.len() <= 3 + MAX_SEGMENT, "{}", d.len());
    }

    #[test]
    fn queue_sorts_by_sequence_and_skips_strangers() {
        let owner = "0123456789abcdef0123456789abcdef";
        let children = vec![
            format!("{owner}-0000000010"),
            "zookeeper".to_string(),
            format!("{owner}-0000000002"),
            "x-0000000001".to_string(),
        ];
        let q = queue(&children);
        assert_eq!(q.iter().map(|n| n.seq).collect::<Vec<_>>(), [2, 10]);
    }

    #[test]
    fn place_in_line() {
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        let children = vec![
            format!("{b}-0000000003"),
            format!("{a}-0000000001"),
            "stranger".to_string(),
        ];
        let ours_a = format!("{a}-0000000001");
        let ours_b = format!("{b}-0000000003");
        assert_eq!(place(&children, &a, &ours_a), Place::First);
        assert_eq!(
            place(&children, &b, &ours_b),
            Place::Behind {
                predecessor: ours_a.clone()
            }
        );
        assert_eq!(place(&children, &"c".repeat(32), "x"), Place::Gone);
        // Another node of ours, earlier or later, must go first.
        let mut twice = children.clone();
        twice.push(format!("{b}-0000000000"));
        assert_eq!(
            place(&twice, &b, &ours_b),
            Place::Others {
                extra: vec![format!("{b}-0000000000")]
            }
        );
        // Only other nodes of ours: ours is gone.
        assert_eq!(place(&children, &b, "other"), Place::Gone);
    }
}
