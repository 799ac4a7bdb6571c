//! The Lua scripts, one file each under `src/scripts/` (each file's header
//! names its KEYS, ARGV and what it returns).
//!
//! Scripts that handle readers and permits include `scripts/lib/holds.lua`
//! (server time, the holders set, the core's compatibility rule), those
//! that serve the waiters' queue `scripts/lib/queue.lua` as well, each by a
//! `-- @include lib/<file>` line. The mutex's fast paths (acquire without a
//! queue or holders, release without a queue) come before that line: Lua
//! creates a library's functions each time the script runs past it, so the
//! uncontended mutex does not pay for them.

use redis::Script;

/// The libraries a script may include, by the path its include line names.
const LIBRARIES: [(&str, &str); 2] = [
    ("lib/holds.lua", include_str!("../scripts/lib/holds.lua")),
    ("lib/queue.lua", include_str!("../scripts/lib/queue.lua")),
];

/// The line that includes a library.
const INCLUDE: &str = "-- @include ";

/// A script's source with each include line replaced by the library it
/// names (an unknown name is left as the comment it is; a test checks that
/// every include resolves).
fn assemble(source: &str) -> String {
    let mut text = String::with_capacity(source.len() + 8192);
    for line in source.lines() {
        let library = line
            .strip_prefix(INCLUDE)
            .and_then(|path| LIBRARIES.iter().find(|(p, _)| *p == path.trim()));
        match library {
            Some((_, lib)) => text.push_str(lib),
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// Every script the engine runs, hashed once.
pub(super) struct Scripts {
    /// SET NX PX + INCR unless readers or permits hold: the mutex without a
    /// queue.
    pub(super) acquire: Script,
    /// A reader, or a permit on one instance, without a queue.
    pub(super) acquire_shared: Script,
    /// Redlock permits: one free permit slot.
    pub(super) acquire_slot: Script,
    /// Fair mode, any mode: admit the queue's head, then the caller if it
    /// may go; keep the queue.
    pub(super) fair_acquire: Script,
    /// A reader becomes the writer once it is the only holder.
    pub(super) upgrade: Script,
    /// Fair mode (and upgrades): leave the queue, undoing what may have
    /// been granted.
    pub(super) abandon: Script,
    /// Redlock: raise the fencing counter to the chosen token while held.
    pub(super) raise_fence: Script,
    /// Extend any number of holds, of any modes, held by their owners.
    pub(super) extend: Script,
    /// Compare owner, free the hold, admit the queue or PUBLISH.
    pub(super) release: Script,
    /// Redlock permits: free whatever slot this owner may hold.
    pub(super) release_slots: Script,
    /// PTTL, fencing counter and queue length.
    pub(super) status: Script,
}

const ACQUIRE: &str = include_str!("../scripts/acquire.lua");
const ACQUIRE_SHARED: &str = include_str!("../scripts/acquire_shared.lua");
const ACQUIRE_SLOT: &str = include_str!("../scripts/acquire_slot.lua");
const FAIR_ACQUIRE: &str = include_str!("../scripts/fair_acquire.lua");
const UPGRADE: &str = include_str!("../scripts/upgrade.lua");
const ABANDON: &str = include_str!("../scripts/abandon.lua");
const RAISE_FENCE: &str = include_str!("../scripts/raise_fence.lua");
const EXTEND: &str = include_str!("../scripts/extend.lua");
const RELEASE: &str = include_str!("../scripts/release.lua");
const RELEASE_SLOTS: &str = include_str!("../scripts/release_slots.lua");
const STATUS: &str = include_str!("../scripts/status.lua");

/// A script from its source, libraries included.
fn load(source: &str) -> Script {
    Script::new(&assemble(source))
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            acquire: load(ACQUIRE),
            acquire_shared: load(ACQUIRE_SHARED),
            acquire_slot: load(ACQUIRE_SLOT),
            fair_acquire: load(FAIR_ACQUIRE),
            upgrade: load(UPGRADE),
            abandon: load(ABANDON),
            raise_fence: load(RAISE_FENCE),
            extend: load(EXTEND),
            release: load(RELEASE),
            release_slots: load(RELEASE_SLOTS),
            status: load(STATUS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_include_resolves() {
        let all = [
            ACQUIRE,
            ACQUIRE_SHARED,
            ACQUIRE_SLOT,
            FAIR_ACQUIRE,
            UPGRADE,
            ABANDON,
            RAISE_FENCE,
            EXTEND,
            RELEASE,
            RELEASE_SLOTS,
            STATUS,
        ];
        for source in all {
            let text = assemble(source);
            let unresolved = text.lines().any(|l| l.starts_with(INCLUDE));
            assert!(!unresolved, "an unknown include in:\n{source}");
        }
        assert!(assemble(FAIR_ACQUIRE).contains("local function admit("));
    }

    #[test]
    fn the_mutex_fast_paths_come_before_the_libraries() {
        for source in [FAIR_ACQUIRE, RELEASE] {
            let fast = source.find("'SET'").or_else(|| source.find("'DEL'"));
            let include = source.find(INCLUDE);
            assert!(fast < include, "fast path after the include in:\n{source}");
        }
    }
}
