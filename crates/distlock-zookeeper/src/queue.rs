//! Names in the lock tree: a directory per lock name, one queue node per
//! contender, and the lease data that points back at it.
//!
//! ```text
//! <chroot><root>/<escaped lock name>/<owner token hex>-<sequence>          exclusive (mutex, writer)
//! <chroot><root>/<escaped lock name>/<owner token hex>-s-<sequence>        shared (reader)
//! <chroot><root>/<escaped lock name>/<owner token hex>-p<limit>-<sequence> permit of a semaphore of <limit>
//! ```
//!
//! The owner token (random, 128 bits, drawn by the core for each acquire) is
//! the "protection" prefix: it lets a contender whose create reply was lost
//! find its node among the children. The mode tag between the token and the
//! sequence lets every contender read the whole line's modes from one list
//! of the directory. Sequence numbers are per directory, so the line's order
//! holds across tags.

use distlock_core::{percent_encode, Lease, LockError, LockName, Mode, Result};
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

/// The prefix a contender's sequential node is created with: the owner
/// token, then the mode's tag (none for exclusive, so a mutex node keeps the
/// name it always had).
pub(crate) fn node_prefix(dir: &str, owner_hex: &str, mode: Mode) -> String {
    match mode {
        Mode::Shared => format!("{dir}/{owner_hex}-s-"),
        Mode::Permit { limit } => format!("{dir}/{owner_hex}-p{limit}-"),
        _ => format!("{dir}/{owner_hex}-"),
    }
}

/// Reads a mode tag back (`s`, `p<limit>`); `None` for anything else.
fn parse_tag(tag: &str) -> Option<Mode> {
    if tag == "s" {
        return Some(Mode::Shared);
    }
    let limit = tag.strip_prefix('p')?;
    if limit.is_empty() || !limit.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match limit.parse() {
        Ok(limit) if limit > 0 => Some(Mode::Permit { limit }),
        _ => None,
    }
}

/// Splits what follows `<owner>-` into the mode and the sequence.
fn parse_mode_and_seq(rest: &str) -> Option<(Mode, &str)> {
    let (mode, seq) = match rest.split_once('-') {
        None => (Mode::Exclusive, rest),
        Some((tag, seq)) => (parse_tag(tag)?, seq),
    };
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((mode, seq))
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
    /// The mode it queues for.
    pub(crate) mode: Mode,
}

impl QueueNode {
    fn parse(child: &str) -> Option<QueueNode> {
        let (owner, rest) = child.split_once('-')?;
        if owner.len() != 32 || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (mode, seq) = parse_mode_and_seq(rest)?;
        Some(QueueNode {
            name: child.to_string(),
            owner: owner.to_string(),
            seq: seq.parse().ok()?,
            mode,
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

/// What a lease carries to find its node again (in this or another process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseNode {
    /// Full path of the queue node.
    pub(crate) path: String,
    /// The session that owns it (the node's `ephemeralOwner`).
    pub(crate) session: i64,
    /// For a writer hold upgraded from a reader hold: the reader's node,
    /// kept until the writer hold is released (see the `acquire` module).
    pub(crate) reader: Option<String>,
}

impl LeaseNode {
    /// `node=<path>;session=<hex>`, plus `;reader=<path>` for an upgraded
    /// hold.
    pub(crate) fn to_data(&self) -> String {
        let mut data = format!("node={};session={:x}", self.path, self.session);
        if let Some(reader) = &self.reader {
            data.push_str(";reader=");
            data.push_str(reader);
        }
        data
    }

    /// Reads the lease data back, refusing a path that is not the node this
    /// lease's name, owner token and mode would have created under `base`.
    pub(crate) fn from_lease(base: &str, lease: &Lease) -> Result<LeaseNode> {
        let bad = |why: &str| LockError::InvalidLease {
            reason: format!("zookeeper lease data: {why}"),
        };
        let data = lease.data();
        let (node, rest) = data
            .strip_prefix("node=")
            .and_then(|rest| rest.split_once(";session="))
            .ok_or_else(|| bad("expected `node=…;session=…`"))?;
        let (session, reader) = match rest.split_once(";reader=") {
            Some((session, reader)) => (session, Some(reader)),
            None => (rest, None),
        };
        let session = i64::from_str_radix(session, 16)
            .or_else(|_| u64::from_str_radix(session, 16).map(|v| v as i64))
            .map_err(|_| bad("session is not hex"))?;
        let dir = lock_dir(base, lease.name());
        let owner = lease.owner().to_hex();
        // A node that is not the one this name, owner token and mode would
        // have created under this root is simply not held by this lease.
        let not_held = || LockError::not_held(lease.name().to_string());
        if !is_node_of(node, &node_prefix(&dir, &owner, lease.mode())) {
            return Err(not_held());
        }
        // Only a writer hold can carry the reader node it was upgraded from.
        let reader_prefix = node_prefix(&dir, &owner, Mode::Shared);
        match reader {
            Some(r) if lease.mode() != Mode::Exclusive || !is_node_of(r, &reader_prefix) => {
                return Err(not_held())
            }
            _ => {}
        }
        Ok(LeaseNode {
            path: node.to_string(),
            session,
            reader: reader.map(str::to_string),
        })
    }
}

/// `path` is `prefix` followed by a sequence number.
fn is_node_of(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
}

/// The child name of a full node path.
pub(crate) fn child_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
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
    fn queue_reads_each_nodes_mode() {
        let owner = "0123456789abcdef0123456789abcdef";
        let children = vec![
            format!("{owner}-0000000001"),
            format!("{owner}-s-0000000002"),
            format!("{owner}-p3-0000000003"),
            format!("{owner}-p0-0000000004"),
            format!("{owner}-q-0000000005"),
            format!("{owner}-s-"),
            format!("{owner}-p-0000000006"),
        ];
        let q = queue(&children);
        let modes: Vec<(i64, Mode)> = q.iter().map(|n| (n.seq, n.mode)).collect();
        assert_eq!(
            modes,
            [
                (1, Mode::Exclusive),
                (2, Mode::Shared),
                (3, Mode::Permit { limit: 3 })
            ]
        );
    }

    #[test]
    fn node_prefixes_tag_the_mode() {
        let owner = "a".repeat(32);
        assert_eq!(
            node_prefix("/d", &owner, Mode::Exclusive),
            format!("/d/{owner}-")
        );
        assert_eq!(
            node_prefix("/d", &owner, Mode::Shared),
            format!("/d/{owner}-s-")
        );
        let three = Mode::Permit { limit: 3 };
        assert_eq!(node_prefix("/d", &owner, three), format!("/d/{owner}-p3-"));
        for mode in [Mode::Exclusive, Mode::Shared, three] {
            let child = format!("{}0000000042", node_prefix("", &owner, mode));
            let q = queue(&[child[1..].to_string()]);
            assert_eq!(q.first().map(|n| (n.seq, n.mode)), Some((42, mode)));
        }
    }
}
