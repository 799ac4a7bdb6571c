//! Change notices of a name: one etcd watch on its key range, for leader
//! observers; and the opening of a synced watch, which waiting acquires
//! share.

use std::time::Duration;

use distlock_core::{ChangeNotices, LockError, LockName, Result};
use etcd_client::{Client, WatchOptions, WatchStream};
use futures::StreamExt;

use crate::backend::EtcdBackend;
use crate::errors::{classify, map_err, Failure, BACKEND};

/// Notices that the entries of `name` changed: an etcd watch on its key
/// range, from the member's current revision (so nothing after this call
/// returns is missed). Every put or delete under the name is a notice — a
/// grant (a key put first in line, or the key before it deleted), a
/// release, a key kept after its release, the expiry of an etcd lease.
/// The stream ends when the watch does (a failed member, a compaction):
/// the caller watches again.
///
/// Round trips: one (open the watch, wait for the member's confirmation).
///
/// # Cancel safety
///
/// Dropping the future or the stream closes the watch.
pub(crate) async fn notices(backend: &EtcdBackend, name: &LockName) -> Result<ChangeNotices> {
    let cluster = backend.cluster();
    let (endpoint, client) = cluster.pick().await?;
    let dir = backend.name_dir(name);
    let options = WatchOptions::new().with_prefix();
    match synced_watch(&client, &dir, options, cluster.request_timeout()).await {
        Ok((stream, _)) => Ok(each_change(stream)),
        Err(e) => {
            if e.endpoint_failed {
                cluster.failed(endpoint);
            }
            Err(e.error)
        }
    }
}

/// One notice per watch response that carries events; the end when the
/// watch is cancelled or its stream breaks.
fn each_change(stream: WatchStream) -> ChangeNotices {
    futures::stream::unfold(stream, |mut stream| async move {
        loop {
            match stream.message().await {
                Ok(Some(resp)) if resp.canceled() => return None,
                Ok(Some(resp)) if !resp.events().is_empty() => return Some(((), stream)),
                Ok(Some(_)) => {} // a progress notice
                Ok(None) | Err(_) => return None,
            }
        }
    })
    .boxed()
}

/// Why a watch could not be opened.
pub(crate) struct WatchFailed {
    /// The error to report.
    pub(crate) error: LockError,
    /// The member failed (rather than refused): move off it.
    pub(crate) endpoint_failed: bool,
}

impl std::fmt::Display for WatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Opens a watch of `key` with `options` from the member's current
/// revision (always *synced* in etcd's terms: served at once, not by the
/// 100 ms catch-up loop) and waits for the member's confirmation; returns
/// the stream and the revision it starts after.
///
/// Round trips: one, bounded by `timeout`.
pub(crate) async fn synced_watch(
    client: &Client,
    key: &str,
    options: WatchOptions,
    timeout: Duration,
) -> std::result::Result<(WatchStream, i64), WatchFailed> {
    let mut watcher = client.watch_client();
    let opening = async {
        let mut stream = watcher.watch(key, Some(options)).await?;
        let created = stream.message().await?;
        Ok::<_, etcd_client::Error>((stream, created))
    };
    let unavailable = |why: String| WatchFailed {
        error: LockError::unavailable(BACKEND, why),
        endpoint_failed: true,
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok((stream, Some(created)))) if created.created() && !created.canceled() => {
            let revision = created.header().map(|h| h.revision()).unwrap_or(0);
            Ok((stream, revision))
        }
        Ok(Ok(_)) => Err(unavailable("the watch was not created".into())),
        Ok(Err(e)) => Err(WatchFailed {
            endpoint_failed: classify(&e) != Failure::Answer,
            error: map_err("opening a watch", e),
        }),
        Err(_) => Err(unavailable(format!(
            "opening a watch: no answer within {timeout:?}"
        ))),
    }
}
