//! `distlock bench`: one set of workloads, every backend URL given, one report.
//!
//! Workloads ([`Workload`]):
//! - `uncontended`: one client acquires and releases one name in a loop.
//! - `contended`: K clients compete for one name, holding it for `--hold`.
//! - `many-names`: K clients each take random names out of `--names`.
//! - `semaphore`: K clients take one of `--permits` permits of one name.
//! - `rw`: K clients read (`Mode::Shared`) or write (`Mode::Exclusive`) one
//!   name, `--read-share` of each client's cycles reading, in a fixed pattern.
//!
//! For each backend that has one, the same workloads also run against its
//! *raw floor* ([`crate::floor`]): the bare commands an expert would issue by
//! hand (a put-if-absent and a delete, or a counter per name, with no
//! fencing, no waiting queue and no validity bookkeeping). Ratios compare
//! distlock to that floor, measured in the same run on the same servers,
//! in alternating slices ([`SLICES`] of each, ABBA…), so that a machine
//! that slows down or speeds up during a run weighs on both alike;
//! [`crate::report`] writes them out. A backend whose capabilities do not
//! claim a workload's mode gets its row reported as not served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock::sync::lock;
use distlock::{AcquireOptions, Capabilities, DistributedLock, Lease, LockName, Mode, Wait};
use rand::Rng;

use crate::floor::{self, RawFloor};
use crate::workload::{Contender, Primitive, Settings, Workload};

/// What one workload measured on one contender kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Numbers {
    /// Completed take + give-back cycles.
    pub ops: u64,
    /// Cycles per second.
    pub per_sec: f64,
    /// Median cycle time.
    pub p50: Duration,
    /// 99th percentile cycle time.
    pub p99: Duration,
    /// The longest cycle (for contention: the longest wait plus its
    /// release).
    pub max: Duration,
    /// The fewest cycles any one client completed: zero means a client
    /// was never served.
    pub fewest: u64,
    /// Contended workload: how many grants went to another client than the
    /// grant before (at most `ops - 1`; a lock that always passes to the
    /// next client changes holder on every grant). `None` elsewhere.
    pub changes: Option<u64>,
}

/// One measured row: distlock on one backend for one workload, and the
/// backend's raw floor for the same workload.
#[derive(Clone, Debug)]
pub struct Row {
    /// The backend URL, redacted.
    pub backend: String,
    /// The workload.
    pub workload: Workload,
    /// distlock's numbers; `None` when the backend does not serve the
    /// workload's mode (its capabilities do not claim it).
    pub ours: Option<Numbers>,
    /// The floor's numbers, when the backend has a floor for the workload
    /// and serves it.
    pub floor: Option<Numbers>,
    /// What the floor does for the workload's primitive, when it has one.
    pub floor_recipe: Option<&'static str>,
}

impl Row {
    /// distlock's p50 latency divided by the floor's: a slow-down factor
    /// (lower is better; 1.0 = as fast as the floor).
    pub fn latency_ratio(&self) -> Option<f64> {
        Some(ratio(self.ours?.p50, self.floor?.p50))
    }

    /// The floor's throughput divided by distlock's: a slow-down factor too
    /// (lower is better; 1.0 = as fast as the floor; 2.0 = half the floor's
    /// throughput).
    pub fn throughput_ratio(&self) -> Option<f64> {
        let (ours, floor) = (self.ours?, self.floor?);
        Some(if ours.per_sec > 0.0 {
            floor.per_sec / ours.per_sec
        } else {
            f64::INFINITY
        })
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        return f64::INFINITY;
    }
    a.as_secs_f64() / b.as_secs_f64()
}

/// distlock through the trait object, remembering the current lease per name.
struct Distlock {
    backend: Arc<dyn DistributedLock>,
    held: Mutex<HashMap<LockName, Lease>>,
    options: AcquireOptions,
}

#[distlock::async_trait]
impl Contender for Distlock {
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String> {
        match self.backend.acquire_as(name, mode, &self.options).await {
            Ok(Some(lease)) => {
                lock(&self.held).insert(name.clone(), lease);
                Ok(())
            }
            Ok(None) => Err(format!("`{name}` not acquired within the wait")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn give_back(&self, name: &LockName, _mode: Mode) -> Result<(), String> {
        let lease = lock(&self.held).remove(name);
        match lease {
            Some(l) => self.backend.release(&l).await.map_err(|e| e.to_string()),
            None => Err(format!("`{name}` was not held")),
        }
    }
}

/// Runs every workload for every URL; returns the rows.
pub async fn run(
    urls: &[String],
    settings: Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for url in urls {
        let label = distlock::redact_url(url);
        let floor = floor::for_url(url).await?;
        for workload in Workload::ALL {
            progress.set_message(format!("{label}: {}", workload.name()));
            let row = run_workload(url, &label, floor.as_ref(), workload, settings, progress)
                .await
                .map_err(|e| format!("{label}, {}: {e}", workload.name()))?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// How many slices each side of a row is measured in: distlock and its
/// floor take turns, each running `duration / SLICES` at a time, in the
/// order ours, floor, floor, ours, ours, floor…
pub const SLICES: u32 = 6;

/// Measures `workload` on distlock at `url` and on its floor, in
/// alternating slices; two progress steps.
async fn run_workload(
    url: &str,
    label: &str,
    floor: Option<&RawFloor>,
    workload: Workload,
    settings: Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Row, String> {
    let primitive = workload.primitive();
    let mut row = Row {
        backend: label.to_string(),
        workload,
        ours: None,
        floor: None,
        floor_recipe: floor.and_then(|f| f.recipe(primitive)),
    };
    let Some(ours) = distlock_contenders(url, settings, workload).await? else {
        // Not served: no floor either, nothing to compare it with.
        row.floor_recipe = None;
        progress.inc(2);
        return Ok(row);
    };
    let theirs = match floor {
        Some(f) => floor_contenders(f, settings, workload).await?,
        None => None,
    };
    // Connections a side opens on its first cycles (distlock's session
    // connections, opened on demand) are opened before either is measured.
    warm_up(workload, &ours, settings).await?;
    if let Some(t) = &theirs {
        warm_up(workload, t, settings).await?;
    }
    let slice = settings.duration / SLICES;
    let (mut our_tally, mut floor_tally) = (Tally::default(), Tally::default());
    for i in 0..SLICES {
        // ours, floor, floor, ours, ours, floor, …
        let ours_first = i % 2 == 0;
        for side in [ours_first, !ours_first] {
            match (side, &theirs) {
                (true, _) => our_tally.add(measure(workload, &ours, settings, slice).await?),
                (false, Some(t)) => floor_tally.add(measure(workload, t, settings, slice).await?),
                (false, None) => {}
            }
        }
    }
    row.ours = Some(our_tally.numbers());
    row.floor = theirs.is_some().then(|| floor_tally.numbers());
    progress.inc(2);
    Ok(row)
}

/// Whether a backend with `caps` serves `primitive`.
fn serves(caps: &Capabilities, primitive: Primitive) -> bool {
    match primitive {
        Primitive::Mutex => true,
        Primitive::Semaphore => caps.semaphore,
        Primitive::ReadWrite => caps.shared,
    }
}

/// A distlock client (own connection) per client of `workload`; `None`
/// when the backend does not serve the workload's primitive.
async fn distlock_contenders(
    url: &str,
    settings: Settings,
    workload: Workload,
) -> Result<Option<Vec<Arc<dyn Contender>>>, String> {
    let mut out: Vec<Arc<dyn Contender>> = Vec::new();
    let options =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(60)));
    for _ in 0..workload.clients(settings) {
        let backend = distlock::connect(url).await.map_err(|e| e.to_string())?;
        if !serves(&backend.capabilities(), workload.primitive()) {
            return Ok(None);
        }
        out.push(Arc::new(Distlock {
            backend,
            held: Mutex::new(HashMap::new()),
            options,
        }));
    }
    Ok(Some(out))
}

/// A floor client per client of `workload`; `None` when the floor has no
/// recipe for the workload's primitive.
async fn floor_contenders(
    floor: &RawFloor,
    settings: Settings,
    workload: Workload,
) -> Result<Option<Vec<Arc<dyn Contender>>>, String> {
    let mut out = Vec::new();
    for _ in 0..workload.clients(settings) {
        match floor.contender(workload.primitive()).await? {
            Some(c) => out.push(c),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The names a workload's clients pick from, unique to this run.
fn names_for(workload: Workload, settings: Settings) -> Result<Vec<LockName>, String> {
    let tag: u64 = rand::thread_rng().gen();
    let count = match workload {
        Workload::ManyNames => settings.names.max(1),
        Workload::Uncontended | Workload::Contended | Workload::Semaphore | Workload::ReadWrite => {
            1
        }
    };
    (0..count)
        .map(|i| LockName::new(format!("bench/{tag:x}/{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// One unmeasured take + give-back by every client at once, as the
/// workload's first cycle does (on a name of the workload's kind, in the
/// mode of the client's first cycle): what a side sets up on its first use
/// (a connection opened on demand) is not counted in its cycles.
async fn warm_up(
    workload: Workload,
    contenders: &[Arc<dyn Contender>],
    settings: Settings,
) -> Result<(), String> {
    let names = names_for(workload, settings)?;
    let cycles = contenders.iter().enumerate().map(|(client, c)| {
        let name = &names[client % names.len()];
        async move {
            let mode = workload.mode(settings, client, 0);
            c.take(name, mode).await?;
            c.give_back(name, mode).await
        }
    });
    futures::future::try_join_all(cycles).await.map(|_| ())
}

/// Runs one workload: the numbers of take + give-back cycles (for
/// contention, the wait is part of the cycle).
async fn measure(
    workload: Workload,
    contenders: &[Arc<dyn Contender>],
    settings: Settings,
    duration: Duration,
) -> Result<Tally, String> {
    let names = Arc::new(names_for(workload, settings)?);
    let stop_at = Instant::now() + duration;
    let start = Instant::now();
    // Contended: the client of each grant, in grant order (each client
    // notes its grant while it holds the one name, so the notes are in the
    // order of the holds).
    let holders = (workload == Workload::Contended).then(|| Arc::new(Mutex::new(Vec::new())));
    let mut tasks = Vec::new();
    for (client, c) in contenders.iter().enumerate() {
        let c = Arc::clone(c);
        let names = names.clone();
        let hold = settings.hold;
        let holders = holders.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut cycle = 0;
            while Instant::now() < stop_at {
                let name = &names[rand::thread_rng().gen_range(0..names.len())];
                let mode = workload.mode(settings, client, cycle);
                cycle += 1;
                let t = Instant::now();
                c.take(name, mode).await?;
                if let Some(holders) = &holders {
                    lock(holders).push(client);
                }
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                }
                c.give_back(name, mode).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        let samples = t.await.map_err(|e| e.to_string())??;
        tally.per_client.push(samples.len() as u64);
        tally.samples.extend(samples);
    }
    tally.elapsed = start.elapsed();
    tally.changes = holders.map(|h| holder_changes(&lock(&h)));
    Ok(tally)
}

/// The cycles of one side of a row, over one or more slices.
#[derive(Debug, Default)]
struct Tally {
    /// Every cycle's time.
    samples: Vec<Duration>,
    /// Cycles per client (clients in the same order in every slice).
    per_client: Vec<u64>,
    /// Time spent measuring.
    elapsed: Duration,
    /// Holder changes within the slices (contended workload only).
    changes: Option<u64>,
}

impl Tally {
    /// Adds the cycles of another slice.
    fn add(&mut self, slice: Tally) {
        self.samples.extend(slice.samples);
        if self.per_client.len() < slice.per_client.len() {
            self.per_client.resize(slice.per_client.len(), 0);
        }
        for (total, n) in self.per_client.iter_mut().zip(slice.per_client) {
            *total += n;
        }
        self.elapsed += slice.elapsed;
        self.changes = match (self.changes, slice.changes) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }

    /// The numbers of the report.
    fn numbers(self) -> Numbers {
        let fewest = self.per_client.iter().copied().min().unwrap_or(0);
        let mut numbers = summarize(self.samples, self.elapsed);
        numbers.fewest = fewest;
        numbers.changes = self.changes;
        numbers
    }
}

/// How many grants in `holders` (the client of each grant, in order) went
/// to another client than the grant before.
fn holder_changes(holders: &[usize]) -> u64 {
    holders.windows(2).filter(|w| w[0] != w[1]).count() as u64
}

/// Cycle count, rate, percentiles and longest of `samples` taken over
/// `elapsed` (`fewest` is the cycle count: one client).
fn summarize(mut samples: Vec<Duration>, elapsed: Duration) -> Numbers {
    samples.sort();
    let pick = |q: f64| -> Duration {
        if samples.is_empty() {
            return Duration::ZERO;
        }
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)]
    };
    let ops = samples.len() as u64;
    Numbers {
        ops,
        per_sec: ops as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        p50: pick(0.5),
        p99: pick(0.99),
        max: pick(1.0),
        fewest: ops,
        changes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(per_sec: f64, p50_us: u64) -> Numbers {
        Numbers {
            ops: 100,
            per_sec,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p50_us * 2),
            max: Duration::from_micros(p50_us * 3),
            fewest: 10,
            changes: None,
        }
    }

    #[test]
    fn ratios_are_slow_down_factors() {
        let row = Row {
            backend: "redis://h".into(),
            workload: Workload::Contended,
            ours: Some(numbers(750.0, 400)),
            floor: Some(numbers(1000.0, 100)),
            floor_recipe: None,
        };
        // Slower than the floor: both ratios above 1.
        assert_eq!(row.latency_ratio(), Some(4.0));
        assert!((row.throughput_ratio().unwrap() - 1000.0 / 750.0).abs() < 1e-9);
        let no_floor = Row {
            floor: None,
            ..row.clone()
        };
        assert_eq!(no_floor.latency_ratio(), None);
        let not_served = Row { ours: None, ..row };
        assert_eq!(not_served.throughput_ratio(), None);
    }

    #[test]
    fn each_primitive_needs_its_claim() {
        let mutex_only = Capabilities::builder().build();
        assert!(serves(&mutex_only, Primitive::Mutex));
        assert!(!serves(&mutex_only, Primitive::Semaphore));
        assert!(!serves(&mutex_only, Primitive::ReadWrite));
        let all = Capabilities::builder().semaphore(true).shared(true).build();
        assert!(serves(&all, Primitive::Semaphore) && serves(&all, Primitive::ReadWrite));
    }

    #[tokio::test]
    async fn memory_runs_the_semaphore_and_rw_workloads_on_distlock_and_its_floor() {
        let settings = Settings {
            duration: Duration::from_millis(100),
            clients: 4,
            hold: Duration::ZERO,
            names: 4,
            permits: 2,
            read_share: 0.9,
        };
        let floor = floor::for_url("memory://bench-modes").await.unwrap();
        let progress = indicatif::ProgressBar::hidden();
        for workload in [Workload::Semaphore, Workload::ReadWrite] {
            let row = run_workload(
                "memory://bench-modes",
                "memory://bench-modes",
                floor.as_ref(),
                workload,
                settings,
                &progress,
            )
            .await
            .unwrap();
            assert!(row.ours.is_some_and(|n| n.ops > 0), "{row:?}");
            assert!(row.floor.is_some_and(|n| n.ops > 0), "{row:?}");
            assert!(row.floor_recipe.is_some(), "{row:?}");
        }
    }

    #[test]
    fn slices_add_up_per_client() {
        let slice = |per_client: Vec<u64>, changes: Option<u64>| Tally {
            samples: per_client
                .iter()
                .flat_map(|n| (0..*n).map(|_| Duration::from_millis(1)))
                .collect(),
            per_client,
            elapsed: Duration::from_millis(500),
            changes,
        };
        let mut tally = Tally::default();
        tally.add(slice(vec![5, 1, 3], Some(4)));
        tally.add(slice(vec![1, 6, 3], Some(7)));
        let n = tally.numbers();
        // The least-served client over the whole run, not in one slice.
        assert_eq!(n.fewest, 6);
        assert_eq!(n.ops, 19);
        assert_eq!(n.changes, Some(11));
        assert!((n.per_sec - 19.0).abs() < 1e-9);
        let mut uncounted = Tally::default();
        uncounted.add(slice(vec![2], None));
        assert_eq!(uncounted.numbers().changes, None);
    }

    #[test]
    fn holder_changes_count_grants_to_another_client() {
        assert_eq!(holder_changes(&[]), 0);
        assert_eq!(holder_changes(&[3]), 0);
        assert_eq!(holder_changes(&[0, 0, 0, 1, 1, 0]), 2);
        assert_eq!(holder_changes(&[0, 1, 2, 0, 1, 2]), 5);
    }

    #[test]
    fn percentiles_pick_from_sorted_samples() {
        let samples = (1..=100).rev().map(Duration::from_millis).collect();
        let n = summarize(samples, Duration::from_secs(1));
        assert_eq!(n.ops, 100);
        assert_eq!(n.p50, Duration::from_millis(51));
        assert_eq!(n.p99, Duration::from_millis(99));
        assert_eq!(n.max, Duration::from_millis(100));
        assert_eq!(summarize(Vec::new(), Duration::ZERO).p50, Duration::ZERO);
    }
}
