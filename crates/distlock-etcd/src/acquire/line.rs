//! Finding the predecessor: where our key stands in the name's queue.

use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget};

use distlock_core::Result;

use crate::cluster::Cluster;
use crate::keys::split_queue;

/// Where our key stands in the queue of its name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Our key is the oldest: we hold the lock.
    First,
    /// Waiting behind `predecessor`, as a read at `revision` found it.
    Behind {
        /// The key just before ours.
        predecessor: String,
        /// The revision of the read that found it.
        revision: i64,
    },
    /// Our key is gone (its etcd lease expired or it was deleted).
    Gone,
}

/// The newest two keys under a name, keys only: ours and the one just
/// before it, when the read is bounded by our create revision.
pub(crate) fn newest_two() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Descend)
        .with_limit(2)
        .with_keys_only()
}

/// Our place, from the newest keys under the name (create revision
/// descending, down to at least ours) as read at `revision`.
pub(crate) fn line_of(kvs: &[KeyValue], key: &str, mine: i64, revision: i64) -> Line {
    match split_queue(kvs, key) {
        (Some(found), _) if found != mine => Line::Gone,
        (None, _) => Line::Gone,
        (Some(_), None) => Line::First,
        (Some(_), Some(predecessor)) => Line::Behind {
            predecessor,
            revision,
        },
    }
}

/// After a predecessor went away: is our key still there, and who is just
/// before it now?
///
/// The read is serializable (answered by the member without a quorum
/// round): it may lag, but keys created before ours are only ever deleted,
/// never created, so a member that shows our key and no older one shows the
/// truth about "no predecessor", now and forever after. A lagging answer can
/// only make us wait longer.
///
/// Round trips: one (Range over the name, created at or before us, newest
/// two).
pub(crate) async fn recheck(cluster: &Cluster, dir: &str, key: &str, mine: i64) -> Result<Line> {
    let options = newest_two()
        .with_serializable()
        .with_max_create_revision(mine);
    let resp = cluster
        .read("queue read", |mut c| {
            let options = options.clone();
            async move { c.get(dir, Some(options)).await }
        })
        .await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    Ok(line_of(resp.kvs(), key, mine, revision))
}
