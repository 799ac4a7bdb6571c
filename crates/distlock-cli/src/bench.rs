//! `distlock bench`: one set of workloads, every backend URL given, one report.
//!
//! Workloads ([`Workload`]):
//! - `uncontended`: one client acquires and releases one name in a loop.
//! - `contended`: K clients compete for one name, holding it for `--hold`.
//! - `many-names`: K clients each take random names out of `--names`.
//!
//! For each backend that has one, the same workloads also run against its
//! *raw floor* ([`crate::floor`]): the bare commands an expert would issue by
//! hand (a put-if-absent and a delete, with no fencing, no waiting queue and
//! no validity bookkeeping). Ratios compare distlock to that floor, measured in
//! the same run on the same servers; [`crate::report`] writes them out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock::sync::lock;
use distlock::{AcquireOptions, DistributedLock, Lease, LockName, Wait};
use rand::Rng;

use crate::floor::{self, Floor};
use crate::workload::{Contender, Settings, Workload};

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
}

/// One measured row: distlock on one backend for one workload, and the
/// backend's raw floor for the same workload.
#[derive(Clone, Debug)]
pub struct Row {
    /// The backend URL, redacted.
    pub backend: String,
    /// The workload.
    pub workload: Workload,
    /// distlock's numbers.
    pub ours: Numbers,
    /// The floor's numbers, when the backend has a floor.
    pub floor: Option<Numbers>,
    /// What the floor does (from the registry), when it has one.
    pub floor_recipe: Option<&'static str>,
}

impl Row {
    /// distlock's p50 latency divided by the floor's: a slow-down factor
    /// (lower is better; 1.0 = as fast as the floor).
    pub fn latency_ratio(&self) -> Option<f64> {
        self.floor.map(|f| ratio(self.ours.p50, f.p50))
    }

    /// The floor's throughput divided by distlock's: a slow-down factor too
    /// (lower is better; 1.0 = as fast as the floor; 2.0 = half the floor's
    /// throughput).
    pub fn throughput_ratio(&self) -> Option<f64> {
        self.floor.map(|f| {
            if self.ours.per_sec > 0.0 {
                f.per_sec / self.ours.per_sec
            } else {
                f64::INFINITY
            }
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
    async fn take(&self, name: &LockName) -> Result<(), String> {
        match self.backend.acquire(name, &self.options).await {
            Ok(Some(lease)) => {
                lock(&self.held).insert(name.clone(), lease);
                Ok(())
            }
            Ok(None) => Err(format!("`{name}` not acquired within the wait")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn give_back(&self, name: &LockName) -> Result<(), String> {
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
            let contenders = distlock_contenders(url, settings, workload).await?;
            let ours = measure(workload, contenders, settings).await?;
            progress.inc(1);
            let floor_numbers = match &floor {
                Some(f) => {
                    progress.set_message(format!("{label}: {} (raw floor)", workload.name()));
                    let contenders = floor_contenders(f.floor.as_ref(), settings, workload).await?;
                    Some(measure(workload, contenders, settings).await?)
                }
                None => None,
            };
            progress.inc(1);
            rows.push(Row {
                backend: label.clone(),
                workload,
                ours,
                floor: floor_numbers,
                floor_recipe: floor.as_ref().map(|f| f.recipe),
            });
        }
    }
    Ok(rows)
}

async fn distlock_contenders(
    url: &str,
    settings: Settings,
    workload: Workload,
) -> Result<Vec<Arc<dyn Contender>>, String> {
    let mut out: Vec<Arc<dyn Contender>> = Vec::new();
    let options =
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(60)));
    for _ in 0..workload.clients(settings) {
        let backend = distlock::connect(url).await.map_err(|e| e.to_string())?;
        out.push(Arc::new(Distlock {
            backend,
            held: Mutex::new(HashMap::new()),
            options,
        }));
    }
    Ok(out)
}

async fn floor_contenders(
    floor: &dyn Floor,
    settings: Settings,
    workload: Workload,
) -> Result<Vec<Arc<dyn Contender>>, String> {
    let mut out = Vec::new();
    for _ in 0..workload.clients(settings) {
        out.push(floor.contender().await?);
    }
    Ok(out)
}

/// The names a workload's clients pick from, unique to this run.
fn names_for(workload: Workload, settings: Settings) -> Result<Vec<LockName>, String> {
    let tag: u64 = rand::thread_rng().gen();
    let count = match workload {
        Workload::ManyNames => settings.names.max(1),
        Workload::Uncontended | Workload::Contended => 1,
    };
    (0..count)
        .map(|i| LockName::new(format!("bench/{tag:x}/{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// Runs one workload: the numbers of take + give-back cycles (for
/// contention, the wait is part of the cycle).
async fn measure(
    workload: Workload,
    contenders: Vec<Arc<dyn Contender>>,
    settings: Settings,
) -> Result<Numbers, String> {
    let names = Arc::new(names_for(workload, settings)?);
    let stop_at = Instant::now() + settings.duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in contenders {
        let names = names.clone();
        let hold = settings.hold;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < stop_at {
                let name = &names[rand::thread_rng().gen_range(0..names.len())];
                let t = Instant::now();
                c.take(name).await?;
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                }
                c.give_back(name).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(summarize(all, start.elapsed()))
}

/// Cycle count, rate and percentiles of `samples` taken over `elapsed`.
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
        }
    }

    #[test]
    fn ratios_are_slow_down_factors() {
        let row = Row {
            backend: "redis://h".into(),
            workload: Workload::Contended,
            ours: numbers(750.0, 400),
            floor: Some(numbers(1000.0, 100)),
            floor_recipe: None,
        };
        // Slower than the floor: both ratios above 1.
        assert_eq!(row.latency_ratio(), Some(4.0));
        assert!((row.throughput_ratio().unwrap() - 1000.0 / 750.0).abs() < 1e-9);
        let none = Row { floor: None, ..row };
        assert_eq!(none.latency_ratio(), None);
    }

    #[test]
    fn percentiles_pick_from_sorted_samples() {
        let samples = (1..=100).rev().map(Duration::from_millis).collect();
        let n = summarize(samples, Duration::from_secs(1));
        assert_eq!(n.ops, 100);
        assert_eq!(n.p50, Duration::from_millis(51));
        assert_eq!(n.p99, Duration::from_millis(99));
        assert_eq!(summarize(Vec::new(), Duration::ZERO).p50, Duration::ZERO);
    }
}
