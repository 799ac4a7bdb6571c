//! The in-memory model passes every case; purpose-broken stores, each
//! with one flaw, fail the cases that guard against that flaw — so every
//! case can fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use distlock_fenced::suite::{self, Report};
use distlock_fenced::{check_resource, FenceError, FencedStore, FencingToken, MemoryStore, Record};

#[tokio::test]
async fn memory_store_passes_every_case() {
    let report = suite::run(&MemoryStore::new(), "memory").await;
    assert!(report.passed(), "{report}");
}

#[tokio::test]
async fn a_shared_store_behind_a_trait_object_passes_every_case() {
    let store: Arc<dyn FencedStore> = Arc::new(MemoryStore::new());
    let report = suite::run(&store, "shared").await;
    assert!(report.passed(), "{report}");
    assert_eq!(store.store_name(), "memory");
}

#[tokio::test]
async fn cleared_resources_accept_every_token_again() {
    let store = MemoryStore::new();
    store.set("r", FencingToken(9), b"a").await.unwrap();
    assert!(store
        .set("r", FencingToken(1), b"b")
        .await
        .unwrap_err()
        .is_stale());
    store.clear("r");
    assert_eq!(store.read("r").await.unwrap(), None);
    store.set("r", FencingToken(1), b"b").await.unwrap();
}

/// The one thing a broken store gets wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    /// Records every token but never compares: every write lands.
    NeverCompares,
    /// Compares with `>`: the holder of the recorded token cannot write
    /// again.
    RefusesEqualTokens,
    /// Compares, but never records a token: nothing is ever refused.
    NeverRecords,
    /// Refuses, but only after writing the value.
    WritesWhenRefusing,
}

/// A store with one [`Flaw`], otherwise the model.
struct BrokenStore {
    flaw: Flaw,
    records: Mutex<HashMap<String, Record>>,
}

impl BrokenStore {
    fn new(flaw: Flaw) -> Self {
        BrokenStore {
            flaw,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn write(
        &self,
        resource: &str,
        token: FencingToken,
        next: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, FenceError>,
    ) -> Result<Vec<u8>, FenceError> {
        check_resource(resource)?;
        let mut records = self.records.lock().unwrap();
        let current = records.get(resource).cloned();
        let recorded = current.as_ref().map(|r| r.token);
        let stale = match (self.flaw, recorded) {
            (_, None) | (Flaw::NeverCompares, _) => None,
            (Flaw::RefusesEqualTokens, Some(r)) => (token <= r).then_some(r),
            (_, Some(r)) => (token < r).then_some(r),
        };
        if let (Some(r), false) = (stale, self.flaw == Flaw::WritesWhenRefusing) {
            return Err(FenceError::stale_token(resource, token, r));
        }
        let value = next(current.as_ref().map(|r| r.value.as_slice()))?;
        let token_now = match self.flaw {
            Flaw::NeverRecords => FencingToken(0),
            _ => token,
        };
        records.insert(
            resource.to_string(),
            Record {
                value: value.clone(),
                token: token_now,
            },
        );
        match stale {
            Some(r) => Err(FenceError::stale_token(resource, token, r)),
            None => Ok(value),
        }
    }
}

#[async_trait::async_trait]
impl FencedStore for BrokenStore {
    fn store_name(&self) -> &'static str {
        "broken"
    }

    async fn set(
        &self,
        resource: &str,
        token: FencingToken,
        value: &[u8],
    ) -> Result<(), FenceError> {
        self.write(resource, token, |_| Ok(value.to_vec()))
            .map(|_| ())
    }

    async fn add(
        &self,
        resource: &str,
        token: FencingToken,
        delta: i64,
    ) -> Result<i64, FenceError> {
        let not_integer = || FenceError::NotAnInteger {
            resource: resource.to_string(),
        };
        let written = self.write(resource, token, |current| {
            let n = match current {
                None => 0,
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| not_integer())?;
                    let n: i64 = text.parse().map_err(|_| not_integer())?;
                    if n.to_string() != text {
                        return Err(not_integer());
                    }
                    n
                }
            };
            let sum = n.checked_add(delta).ok_or_else(|| FenceError::Overflow {
                resource: resource.to_string(),
                delta,
            })?;
            Ok(sum.to_string().into_bytes())
        })?;
        Ok(String::from_utf8_lossy(&written)
            .parse()
            .unwrap_or_default())
    }

    async fn read(&self, resource: &str) -> Result<Option<Record>, FenceError> {
        check_resource(resource)?;
        Ok(self.records.lock().unwrap().get(resource).cloned())
    }
}

async fn run_broken(flaw: Flaw) -> Report {
    let report = suite::run(&BrokenStore::new(flaw), "broken").await;
    println!("{flaw:?}:\n{report}");
    assert!(!report.passed(), "a store that {flaw:?} passed every case");
    report
}

fn assert_caught_by(report: &Report, cases: &[&str]) {
    for case in cases {
        assert!(
            report.failed(case),
            "`{case}` did not catch the flaw:\n{report}"
        );
    }
}

#[tokio::test]
async fn a_store_that_never_compares_is_caught() {
    let report = run_broken(Flaw::NeverCompares).await;
    assert_caught_by(
        &report,
        &[
            "stale_write_is_refused_and_changes_nothing",
            "higher_token_takes_over",
            "tokens_compare_as_numbers",
            "resources_are_fenced_separately",
            "interleaved_writers_leave_the_highest_tokens_value",
            "interleaved_contributions_add_up",
        ],
    );
}

#[tokio::test]
async fn a_store_that_refuses_equal_tokens_is_caught() {
    let report = run_broken(Flaw::RefusesEqualTokens).await;
    assert_caught_by(
        &report,
        &[
            "equal_token_writes_again",
            "interleaved_writers_leave_the_highest_tokens_value",
            "interleaved_contributions_add_up",
        ],
    );
}

#[tokio::test]
async fn a_store_that_never_records_tokens_is_caught() {
    let report = run_broken(Flaw::NeverRecords).await;
    assert_caught_by(
        &report,
        &[
            "first_write_takes_any_token",
            "stale_write_is_refused_and_changes_nothing",
            "interleaved_writers_leave_the_highest_tokens_value",
        ],
    );
}

#[tokio::test]
async fn a_store_that_writes_before_refusing_is_caught() {
    let report = run_broken(Flaw::WritesWhenRefusing).await;
    assert_caught_by(
        &report,
        &[
            "stale_write_is_refused_and_changes_nothing",
            "higher_token_takes_over",
            "interleaved_writers_leave_the_highest_tokens_value",
            "interleaved_contributions_add_up",
        ],
    );
}
