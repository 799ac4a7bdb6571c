//! Status: who holds a name, with what token and label, and how many wait.

use distlock_core::{LockName, LockStatus, Mode, Result};
use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget};

use crate::acquire::window_of;
use crate::backend::EtcdBackend;
use crate::keys::{fencing, label_of, mode_of, upgraded_reader};

/// Whether `name` is held, the newest holder's fencing token, the exclusive
/// holder's label and how many entries wait: the entries, oldest first,
/// that fit together by the core's rule ([`Mode::admitted`]) hold, but for
/// waiters that have not claimed their turn yet; the others wait. An
/// upgraded reader's two entries count once, as the writer. An exclusive
/// holder is alone, so the token is its own (a leader's term).
///
/// Round trips: one (Range over the name, oldest first, with the values:
/// owner tokens and labels).
pub(crate) async fn inspect(backend: &EtcdBackend, name: &LockName) -> Result<LockStatus> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend);
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
    let due = Mode::admitted(&[], &modes);
    let holders: Vec<&KeyValue> = entries[..due]
        .iter()
        .copied()
        .filter(|kv| window_of(kv.value()).is_none())
        .collect();
    let newest = holders.iter().map(|kv| fencing(kv.create_revision())).max();
    let label = match (holders.as_slice(), modes.first()) {
        ([holder], Some(Mode::Exclusive)) => label_of(holder.value()),
        _ => None,
    };
    let waiting = entries.len() - holders.len();
    Ok(LockStatus::new(!holders.is_empty(), newest, None, Some(waiting)).with_holder(label))
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
