//! Status: who holds a name, and how many wait.

use distlock_core::{LockName, LockStatus, Result};
use etcd_client::{GetOptions, SortOrder, SortTarget};

use crate::backend::EtcdBackend;
use crate::keys::fencing;

/// The holder's fencing token and the number of waiters of `name`.
///
/// Round trips: one (Range over the name, oldest first, limit 1, with the
/// total count).
pub(crate) async fn inspect(backend: &EtcdBackend, name: &LockName) -> Result<LockStatus> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
        .with_keys_only();
    let dir = backend.name_dir(name);
    let resp = backend
        .cluster()
        .read("status read", |mut c| {
            let (dir, options) = (dir.clone(), options.clone());
            async move { c.get(dir, Some(options)).await }
        })
        .await?;
    let count = usize::try_from(resp.count()).unwrap_or(0);
    let holder = resp.kvs().first().map(|kv| fencing(kv.create_revision()));
    Ok(LockStatus::new(
        holder.is_some(),
        holder,
        None,
        Some(count.saturating_sub(1)),
    ))
}
