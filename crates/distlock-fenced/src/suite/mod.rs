//! The checks every fenced store must pass, written once: plain async
//! functions over `&dyn FencedStore`, run against the in-memory model, Redis
//! and the three SQL databases by this crate's tests, and against your own
//! store by yours.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use distlock_fenced::{suite, MemoryStore};
//!
//! // A prefix no earlier run used: every case writes resources under it.
//! let report = suite::run(&MemoryStore::new(), "suite-doc").await;
//! assert!(report.passed(), "{report}");
//! # }
//! ```
//!
//! A case answers `Err(what went wrong)` instead of panicking, so a test
//! can also assert that a purpose-broken store *fails* a case — which is
//! how this crate's tests prove each case can fail.

mod concurrent;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{FenceError, FencedStore, FencingToken, Record};

/// What a case found wrong.
pub type Failure = String;

/// A boxed case future.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// One case: runs against `store`, on resources whose names start with the
/// given prefix.
pub type Case = for<'a> fn(&'a dyn FencedStore, &'a str) -> CaseFuture<'a>;

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("first_write_takes_any_token", |s, p| {
        Box::pin(first_write_takes_any_token(s, p))
    }),
    ("stale_write_is_refused_and_changes_nothing", |s, p| {
        Box::pin(stale_write_is_refused_and_changes_nothing(s, p))
    }),
    ("equal_token_writes_again", |s, p| {
        Box::pin(equal_token_writes_again(s, p))
    }),
    ("higher_token_takes_over", |s, p| {
        Box::pin(higher_token_takes_over(s, p))
    }),
    ("tokens_compare_as_numbers", |s, p| {
        Box::pin(tokens_compare_as_numbers(s, p))
    }),
    ("failed_add_records_nothing", |s, p| {
        Box::pin(failed_add_records_nothing(s, p))
    }),
    ("values_round_trip_as_bytes", |s, p| {
        Box::pin(values_round_trip_as_bytes(s, p))
    }),
    ("resources_are_fenced_separately", |s, p| {
        Box::pin(resources_are_fenced_separately(s, p))
    }),
    ("bad_resource_names_are_refused", |s, p| {
        Box::pin(bad_resource_names_are_refused(s, p))
    }),
    (
        "interleaved_writers_leave_the_highest_tokens_value",
        |s, p| Box::pin(concurrent::interleaved_writers_leave_the_highest_tokens_value(s, p)),
    ),
    ("interleaved_contributions_add_up", |s, p| {
        Box::pin(concurrent::interleaved_contributions_add_up(s, p))
    }),
];

/// What [`run`] found: each case's name and outcome, in order.
#[derive(Debug)]
pub struct Report {
    /// Each case and what it answered.
    pub outcomes: Vec<(&'static str, Result<(), Failure>)>,
}

impl Report {
    /// True when every case passed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|(_, r)| r.is_ok())
    }

    /// True when the case `name` ran and failed.
    pub fn failed(&self, name: &str) -> bool {
        self.outcomes
            .iter()
            .any(|(case, r)| *case == name && r.is_err())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (case, outcome) in &self.outcomes {
            match outcome {
                Ok(()) => writeln!(f, "{case}: ok")?,
                Err(why) => writeln!(f, "{case}: FAILED: {why}")?,
            }
        }
        Ok(())
    }
}

/// Runs every case against `store`, one after another, each on resources
/// named `<prefix>/<case>…`. Use a prefix no earlier run used: the cases
/// expect their resources to be absent.
///
/// # Cancel safety
///
/// Dropping the future stops the cases where they are; the resources
/// written so far stay (under the prefix, which is not to be reused).
pub async fn run(store: &dyn FencedStore, prefix: &str) -> Report {
    let mut outcomes = Vec::new();
    for (name, case) in CASES {
        let resource = format!("{prefix}/{name}");
        outcomes.push((*name, case(store, &resource).await));
    }
    Report { outcomes }
}

// ---------------------------------------------------------------------------
// What the cases share.
// ---------------------------------------------------------------------------

/// Fails with `what` unless `ok`.
pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// The outcome of a write that had to succeed.
pub(crate) fn accepted<T>(what: &str, outcome: Result<T, FenceError>) -> Result<T, Failure> {
    outcome.map_err(|e| format!("{what}: expected it to be accepted, got: {e}"))
}

/// Checks that a write was refused as stale, carrying exactly `offered`
/// and `recorded`.
pub(crate) fn refused<T: fmt::Debug>(
    what: &str,
    outcome: Result<T, FenceError>,
    offered: u64,
    recorded: u64,
) -> Result<(), Failure> {
    match outcome {
        Err(FenceError::Stale(stale))
            if stale.offered == FencingToken(offered) && stale.recorded == FencingToken(recorded) =>
        {
            Ok(())
        }
        Err(FenceError::Stale(stale)) => Err(format!(
            "{what}: refused with tokens {} and {}; expected {offered} offered and {recorded} recorded",
            stale.offered, stale.recorded
        )),
        other => Err(format!(
            "{what}: expected a refusal of token {offered} (recorded {recorded}), got {other:?}"
        )),
    }
}

/// Reads `resource` and checks it holds `value` with `token` recorded.
pub(crate) async fn holds(
    store: &dyn FencedStore,
    resource: &str,
    value: &[u8],
    token: u64,
) -> Result<(), Failure> {
    let expected = Record {
        value: value.to_vec(),
        token: FencingToken(token),
    };
    match store.read(resource).await {
        Ok(Some(record)) if record == expected => Ok(()),
        Ok(other) => Err(format!(
            "`{resource}` holds {}; expected {}",
            describe(other.as_ref()),
            describe(Some(&expected))
        )),
        Err(e) => Err(format!("reading `{resource}` failed: {e}")),
    }
}

fn describe(record: Option<&Record>) -> String {
    match record {
        None => "nothing".into(),
        Some(r) => format!(
            "{:?} with token {}",
            String::from_utf8_lossy(&r.value),
            r.token
        ),
    }
}

fn t(n: u64) -> FencingToken {
    FencingToken(n)
}

// ---------------------------------------------------------------------------
// The cases, one write rule each.
// ---------------------------------------------------------------------------

/// Nothing recorded: any token writes, and is recorded.
pub async fn first_write_takes_any_token(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    let before = store
        .read(r)
        .await
        .map_err(|e| format!("reading a fresh resource failed: {e}"))?;
    ensure(before.is_none(), || {
        format!("a fresh resource holds {}", describe(before.as_ref()))
    })?;
    let total = accepted("add 5 with token 3", store.add(r, t(3), 5).await)?;
    ensure(total == 5, || format!("add 5 to nothing answered {total}"))?;
    holds(store, r, b"5", 3).await
}

/// A lower token is refused with both tokens, and changes nothing.
pub async fn stale_write_is_refused_and_changes_nothing(
    store: &dyn FencedStore,
    r: &str,
) -> Result<(), Failure> {
    accepted("set with token 5", store.set(r, t(5), b"10").await)?;
    refused("set with token 4", store.set(r, t(4), b"99").await, 4, 5)?;
    refused("add with token 4", store.add(r, t(4), 1).await, 4, 5)?;
    refused("set with token 0", store.set(r, t(0), b"0").await, 0, 5)?;
    holds(store, r, b"10", 5).await
}

/// The recorded token itself passes: one holder writes several times.
pub async fn equal_token_writes_again(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    accepted("set with token 5", store.set(r, t(5), b"1").await)?;
    accepted("set again with token 5", store.set(r, t(5), b"2").await)?;
    let total = accepted("add 3 with token 5", store.add(r, t(5), 3).await)?;
    ensure(total == 5, || format!("2 + 3 answered {total}"))?;
    holds(store, r, b"5", 5).await
}

/// A higher token writes and is recorded; the old one is then refused.
pub async fn higher_token_takes_over(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    accepted("set with token 5", store.set(r, t(5), b"old").await)?;
    accepted("set with token 9", store.set(r, t(9), b"new").await)?;
    holds(store, r, b"new", 9).await?;
    refused("set with token 5", store.set(r, t(5), b"late").await, 5, 9)?;
    holds(store, r, b"new", 9).await
}

/// Tokens compare as whole numbers: not as text (`"10" < "9"`), not
/// rounded to 53 bits (a Lua number).
pub async fn tokens_compare_as_numbers(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    accepted("set with token 9", store.set(r, t(9), b"a").await)?;
    accepted("set with token 10", store.set(r, t(10), b"b").await)?;
    refused("set with token 9", store.set(r, t(9), b"c").await, 9, 10)?;
    let big = (1u64 << 53) + 1;
    accepted("set with token 2^53 + 1", store.set(r, t(big), b"d").await)?;
    refused(
        "set with token 2^53",
        store.set(r, t(big - 1), b"e").await,
        big - 1,
        big,
    )?;
    let max = i64::MAX as u64;
    accepted("set with token i64::MAX", store.set(r, t(max), b"f").await)?;
    refused(
        "set with token i64::MAX - 1",
        store.set(r, t(max - 1), b"g").await,
        max - 1,
        max,
    )?;
    holds(store, r, b"f", max).await
}

/// An add that cannot be done (not an integer, overflow) changes nothing
/// and records no token.
pub async fn failed_add_records_nothing(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    accepted("set `abc` with token 1", store.set(r, t(1), b"abc").await)?;
    match store.add(r, t(2), 1).await {
        Err(FenceError::NotAnInteger { .. }) => {}
        other => {
            return Err(format!(
                "add to `abc`: expected NotAnInteger, got {other:?}"
            ))
        }
    }
    holds(store, r, b"abc", 1).await?;
    for (value, delta) in [(i64::MAX, 1), (i64::MIN, -1)] {
        let text = value.to_string();
        accepted(
            "set an extreme with token 1",
            store.set(r, t(1), text.as_bytes()).await,
        )?;
        match store.add(r, t(3), delta).await {
            Err(FenceError::Overflow { .. }) => {}
            other => {
                return Err(format!(
                    "add {delta} to {value}: expected Overflow, got {other:?}"
                ))
            }
        }
        holds(store, r, text.as_bytes(), 1).await?;
    }
    for canonical_only in ["012", "+1", " 1", "1.0"] {
        accepted(
            "set with token 1",
            store.set(r, t(1), canonical_only.as_bytes()).await,
        )?;
        match store.add(r, t(1), 1).await {
            Err(FenceError::NotAnInteger { .. }) => {}
            other => {
                return Err(format!(
                    "add to {canonical_only:?}: expected NotAnInteger, got {other:?}"
                ))
            }
        }
    }
    accepted("set `-7` with token 1", store.set(r, t(1), b"-7").await)?;
    let total = accepted("add 7 to -7", store.add(r, t(1), 7).await)?;
    ensure(total == 0, || format!("-7 + 7 answered {total}"))?;
    holds(store, r, b"0", 1).await
}

/// Values are bytes: NUL, invalid UTF-8, braces, quotes, the empty value.
pub async fn values_round_trip_as_bytes(store: &dyn FencedStore, r: &str) -> Result<(), Failure> {
    let odd: &[u8] = b"\x00\xff{}'\"; DROP TABLE x; --\n";
    accepted("set odd bytes", store.set(r, t(1), odd).await)?;
    holds(store, r, odd, 1).await?;
    accepted("set the empty value", store.set(r, t(1), b"").await)?;
    holds(store, r, b"", 1).await
}

/// Each resource has its own recorded token.
pub async fn resources_are_fenced_separately(
    store: &dyn FencedStore,
    r: &str,
) -> Result<(), Failure> {
    let a = format!("{r}/a");
    let b = format!("{r}/{{b}} 'quoted' \"double\" %7B");
    accepted("set `a` with token 9", store.set(&a, t(9), b"a").await)?;
    accepted("set `b` with token 1", store.set(&b, t(1), b"b").await)?;
    refused(
        "set `a` with token 1",
        store.set(&a, t(1), b"x").await,
        1,
        9,
    )?;
    holds(store, &a, b"a", 9).await?;
    holds(store, &b, b"b", 1).await
}

/// Empty, over-long and NUL-carrying names are refused before any write.
pub async fn bad_resource_names_are_refused(
    store: &dyn FencedStore,
    r: &str,
) -> Result<(), Failure> {
    let long = format!("{r}/{}", "x".repeat(crate::MAX_RESOURCE_LEN));
    for bad in [String::new(), format!("{r}/\0"), long] {
        let outcomes = [
            store.set(&bad, t(1), b"x").await.err(),
            store.add(&bad, t(1), 1).await.err(),
            store.read(&bad).await.err(),
        ];
        for outcome in outcomes {
            ensure(
                matches!(outcome, Some(FenceError::InvalidResource { .. })),
                || {
                    format!(
                        "a resource named {bad:.20?}…: expected InvalidResource, got {outcome:?}"
                    )
                },
            )?;
        }
    }
    Ok(())
}
