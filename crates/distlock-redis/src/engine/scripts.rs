//! The Lua scripts, one file each under `src/scripts/` (each file's header
//! names its KEYS, ARGV and what it returns).

use redis::Script;

/// Every script the engine runs, hashed once.
pub(super) struct Scripts {
    /// SET NX PX + INCR: take a free lock and advance the fencing counter.
    pub(super) acquire: Script,
    /// Fair mode: take the lock for the oldest live waiter only; keep the queue.
    pub(super) fair_acquire: Script,
    /// Fair mode: leave the queue, releasing whatever this owner holds.
    pub(super) abandon: Script,
    /// Redlock: raise the fencing counter to the chosen token while held.
    pub(super) raise_fence: Script,
    /// Extend any number of locks held by their owners.
    pub(super) extend: Script,
    /// Compare owner, DEL, hand over or PUBLISH.
    pub(super) release: Script,
    /// PTTL, fencing counter and queue length.
    pub(super) status: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            acquire: Script::new(include_str!("../scripts/acquire.lua")),
            fair_acquire: Script::new(include_str!("../scripts/fair_acquire.lua")),
            abandon: Script::new(include_str!("../scripts/abandon.lua")),
            raise_fence: Script::new(include_str!("../scripts/raise_fence.lua")),
            extend: Script::new(include_str!("../scripts/extend.lua")),
            release: Script::new(include_str!("../scripts/release.lua")),
            status: Script::new(include_str!("../scripts/status.lua")),
        }
    }
}
