//! Status: who holds a name, and how many wait.

use distlock_core::{LockName, LockStatus, Mode, Result};
use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget};

use crate::backend::EtcdBackend;
use crate::keys::{fencing, mode_of, upgraded_reader};

/// Whether `name` is held, the newest holder's fencing token and how many
/// entries wait: the entries, oldest first, that fit together by the core's
/// rule ([`Mode::admitted`]) hold; the others wait. An upgraded reader's two
/// entries count once, as the writer.
///
/// Round trips: one (Range over the name, oldest first, keys only).
pub(crate) async fn inspect(backend: &EtcdBackend, name: &LockName) -> Result<LockStatus> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_keys_only();
    let dir = backend.name_dir(name);
    let resp = backend
        .cluster()
        .read("status read", |mut c| {
            let (dir, options) = (dir.clone(), options.clone());
            async move { c.get(dir, Some(options)).await }
        })
        .await?;
    let entries = counted(&dir, resp.kvs());
    let modes: Vec<Mode> = entries.iter().map(|kv| mode_of(&dir, kv.key())).collect();
    let holders = Mode::admitted(&[], &modes);
    let newest = entries[..holders]
        .iter()
        .map(|kv| fencing(kv.create_revision()))
        .max();
    Ok(LockStatus::new(
        holders > 0,
        newest,
        None,
        Some(entries.len() - holders),
    ))
}

/// The entries of a name, without the reader entries an upgrade's writer
/// entry stands for.
fn counted<'a>(dir: &str, kvs: &'a [KeyValue]) -> Vec<&'a KeyValue> {
    let upgraded: Vec<String> = kvs
        .iter()
        .filter_map(|kv| upgraded_reader(dir, kv.key_str().ok()?))
        .collect();
    kvs.iter()
        .filter(|kv| !upgraded.iter().any(|r| kv.key() == r.as_bytes()))
        .collect()
}
