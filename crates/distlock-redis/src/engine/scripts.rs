//! The Lua scripts, one file each under `src/scripts/` (each file's header
//! names its KEYS, ARGV and what it returns).
//!
//! Every script that grants a hold includes `scripts/lib/fence.lua` (the
//! one rule that issues a fencing token: max(counter + 1, the server's
//! clock in µs)); scripts that handle readers and permits include
//! `scripts/lib/holds.lua` (server time, the holders set, the core's
//! compatibility rule) after it, those that serve the waiters' queue
//! `scripts/lib/queue.lua` as well, each by a `-- @include lib/<file>` line.
//! The mutex's fast paths (acquire without a queue or holders, release
//! without a queue) come before the `holds.lua` line: Lua creates a
//! library's functions each time the script runs past it, so the
//! uncontended mutex pays only for the one function of `fence.lua`.
//!
//! On a Redis Cluster the scripts publish on *sharded* channels
//! (`SPUBLISH`, delivered by the lock's own shard), where one server or a
//! primary found by Sentinel uses classic pub/sub (`PUBLISH`, which a
//! cluster would forward to every node over its bus): the one word is
//! swapped when the scripts are assembled ([`Channels`]).

use redis::Script;

use super::TokenRule;

/// How the scripts publish release notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channels {
    /// `PUBLISH`: one server, Sentinel, Redlock.
    Classic,
    /// `SPUBLISH`: a Redis Cluster (subscribers `SSUBSCRIBE` on the
    /// lock's shard).
    Sharded,
}

/// How a script publishes, as written in the sources.
const PUBLISH: &str = "redis.call('PUBLISH',";
/// The same call on a sharded channel.
const SPUBLISH: &str = "redis.call('SPUBLISH',";

/// The library that issues fencing tokens, by its include path.
const FENCE_PATH: &str = "lib/fence.lua";
/// The shipped token rule: max(counter + 1, server clock in µs).
const FENCE: &str = include_str!("../scripts/lib/fence.lua");
/// The purpose-broken token rule: the counter alone.
const FENCE_COUNTER_ONLY: &str = include_str!("../scripts/lib/fence_counter_only.lua");

/// The other libraries a script may include, by the path its include line
/// names.
const LIBRARIES: [(&str, &str); 2] = [
    ("lib/holds.lua", include_str!("../scripts/lib/holds.lua")),
    ("lib/queue.lua", include_str!("../scripts/lib/queue.lua")),
];

/// The line that includes a library.
const INCLUDE: &str = "-- @include ";

/// A script's source with each include line replaced by the library it
/// names, `lib/fence.lua` by the one of `tokens` (an unknown name is left
/// as the comment it is; a test checks that every include resolves), and
/// with `channels` sharded, every `PUBLISH` an `SPUBLISH`.
fn assemble(source: &str, tokens: TokenRule, channels: Channels) -> String {
    let text = include(source, tokens);
    match channels {
        Channels::Classic => text,
        Channels::Sharded => text.replace(PUBLISH, SPUBLISH),
    }
}

fn include(source: &str, tokens: TokenRule) -> String {
    let fence = match tokens {
        TokenRule::ClockFloor => FENCE,
        TokenRule::CounterOnly => FENCE_COUNTER_ONLY,
    };
    let mut text = String::with_capacity(source.len() + 8192);
    for line in source.lines() {
        let library = line.strip_prefix(INCLUDE).and_then(|path| {
            let path = path.trim();
            if path == FENCE_PATH {
                return Some(fence);
            }
            LIBRARIES.iter().find(|(p, _)| *p == path).map(|(_, l)| *l)
        });
        match library {
            Some(lib) => text.push_str(lib),
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
    /// SET NX PX and a token unless readers or permits hold: the mutex
    /// without a queue.
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

impl Scripts {
    /// Every script, issuing tokens by `tokens` and publishing on
    /// `channels`.
    pub(super) fn new(tokens: TokenRule, channels: Channels) -> Self {
        let load = |source: &str| Script::new(&assemble(source, tokens, channels));
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

    const ALL: [&str; 11] = [
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

    #[test]
    fn every_include_resolves() {
        for source in ALL {
            for tokens in [TokenRule::ClockFloor, TokenRule::CounterOnly] {
                let text = assemble(source, tokens, Channels::Classic);
                let unresolved = text.lines().any(|l| l.starts_with(INCLUDE));
                assert!(!unresolved, "an unknown include in:\n{source}");
            }
        }
        assert!(
            assemble(FAIR_ACQUIRE, TokenRule::ClockFloor, Channels::Classic)
                .contains("local function admit(")
        );
    }

    #[test]
    fn the_mutex_fast_paths_come_before_the_libraries() {
        for source in [FAIR_ACQUIRE, RELEASE] {
            let fast = source.find("'SET'").or_else(|| source.find("'DEL'"));
            let include = source.find("-- @include lib/holds.lua");
            assert!(fast < include, "fast path after the include in:\n{source}");
        }
    }

    /// Only `lib/fence.lua` issues tokens: no script or other library
    /// touches a counter with `INCR`, and every script that calls
    /// `next_fence` (directly, or through `take` in `holds.lua`) defines it
    /// before its first call.
    #[test]
    fn every_token_comes_from_the_fence_library() {
        let libraries = LIBRARIES.iter().map(|(_, l)| *l);
        for source in ALL.into_iter().chain(libraries).chain([FENCE]) {
            assert!(
                !source.contains("'INCR'"),
                "INCR outside the fence library:\n{source}"
            );
        }
        const DEFINITION: &str = "local function next_fence(";
        for source in ALL {
            let text = assemble(source, TokenRule::ClockFloor, Channels::Classic);
            let defined = text
                .find(DEFINITION)
                .map(|d| d + DEFINITION.len() - "next_fence(".len());
            let first_call = text.find("next_fence(");
            assert_eq!(
                first_call, defined,
                "next_fence called before it is defined:\n{source}"
            );
        }
    }

    /// Every publish is written one way (so the swap finds it), and the
    /// sharded assembly publishes only on sharded channels.
    #[test]
    fn sharded_scripts_publish_only_on_sharded_channels() {
        let libraries = LIBRARIES.iter().map(|(_, l)| *l);
        let mut publishing = 0;
        for source in ALL.into_iter().chain(libraries) {
            let calls = source.matches("'PUBLISH'").count();
            assert_eq!(calls, source.matches(PUBLISH).count(), "{source}");
            publishing += usize::from(calls > 0);
        }
        assert!(publishing >= 4, "the scripts publish in {publishing} files");
        for source in ALL {
            let text = assemble(source, TokenRule::ClockFloor, Channels::Sharded);
            assert!(!text.contains("'PUBLISH'"), "{text}");
            let classic = assemble(source, TokenRule::ClockFloor, Channels::Classic);
            assert_eq!(
                text.matches(SPUBLISH).count(),
                classic.matches(PUBLISH).count()
            );
        }
    }
}
