//! `distlock bench`: one set of workloads, every backend URL given, one report.
//!
//! Workloads:
//! - `uncontended`: one client acquires and releases one name in a loop.
//! - `contended`: K clients compete for one name, holding it for `--hold`.
//! - `many-names`: K clients each take random names out of `--names`.
//!
//! For each backend that has one, the same workloads also run against its
//! *raw floor* ([`crate::floor`]): the bare commands an expert would issue by
//! hand (a put-if-absent and a delete, with no fencing, no waiting queue and
//! no validity bookkeeping). Ratios compare distlock to that floor, measured in
//! the same run on the same servers.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock::{AcquireOptions, DistributedLock, LockName, Wait};
use rand::Rng;

use crate::floor::{self, Floor};

/// One workload's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub duration: Duration,
    pub clients: usize,
    pub hold: Duration,
    pub names: usize,
}

/// One measured row.
#[derive(Clone, Debug)]
pub struct Row {
    pub backend: String,
    pub workload: &'static str,
    pub ops: u64,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The floor's numbers for the same workload, when the backend has one.
    pub floor: Option<(f64, Duration, Duration)>,
}

impl Row {
    /// distlock's p50 latency over the floor's (lower is better; 1.0 = floor).
    pub fn latency_ratio(&self) -> Option<f64> {
        self.floor.map(|(_, p50, _)| ratio(self.p50, p50))
    }

    /// The floor's throughput over distlock's (1.0 = floor).
    pub fn throughput_ratio(&self) -> Option<f64> {
        self.floor.map(|(fps, _, _)| {
            if self.per_sec > 0.0 {
                fps / self.per_sec
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

/// Something that can take and give back a named lock: distlock or a floor.
#[distlock::async_trait]
pub trait Contender: Send + Sync {
    /// Takes `name`, waiting; returns when held.
    async fn take(&self, name: &LockName) -> Result<(), String>;
    /// Gives `name` back.
    async fn give_back(&self, name: &LockName) -> Result<(), String>;
}

/// distlock through the trait object, remembering the current lease per name.
struct Distlock {
    backend: Arc<dyn DistributedLock>,
    held: Mutex<std::collections::HashMap<LockName, distlock::Lease>>,
    options: AcquireOptions,
}

#[distlock::async_trait]
impl Contender for Distlock {
    async fn take(&self, name: &LockName) -> Result<(), String> {
        match self.backend.acquire(name, &self.options).await {
            Ok(Some(lease)) => {
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), lease);
                Ok(())
            }
            Ok(None) => Err(format!("`{name}` not acquired within the wait")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn give_back(&self, name: &LockName) -> Result<(), String> {
        let lease = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
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
        for workload in ["uncontended", "contended", "many-names"] {
            progress.set_message(format!("{label}: {workload}"));
            let contenders = distlock_contenders(url, settings, workload).await?;
            let (ops, per_sec, p50, p99) = measure(workload, contenders, settings).await?;
            progress.inc(1);
            let floor_numbers = match &floor {
                Some(f) => {
                    progress.set_message(format!("{label}: {workload} (raw floor)"));
                    let contenders = floor_contenders(f.as_ref(), settings, workload).await?;
                    let (_, fps, fp50, fp99) = measure(workload, contenders, settings).await?;
                    Some((fps, fp50, fp99))
                }
                None => None,
            };
            progress.inc(1);
            rows.push(Row {
                backend: label.clone(),
                workload,
                ops,
                per_sec,
                p50,
                p99,
                floor: floor_numbers,
            });
        }
    }
    Ok(rows)
}

fn clients_for(workload: &str, settings: Settings) -> usize {
    if workload == "uncontended" {
        1
    } else {
        settings.clients.max(1)
    }
}

async fn distlock_contenders(
    url: &str,
    settings: Settings,
    workload: &str,
) -> Result<Vec<Arc<dyn Contender>>, String> {
    let mut out: Vec<Arc<dyn Contender>> = Vec::new();
    let options =
        AcquireOptions::new(Duration::from_secs(30)).wait(Wait::For(Duration::from_secs(60)));
    for _ in 0..clients_for(workload, settings) {
        let backend = distlock::connect(url).await.map_err(|e| e.to_string())?;
        out.push(Arc::new(Distlock {
            backend,
            held: Mutex::new(Default::default()),
            options,
        }));
    }
    Ok(out)
}

async fn floor_contenders(
    floor: &dyn Floor,
    settings: Settings,
    workload: &str,
) -> Result<Vec<Arc<dyn Contender>>, String> {
    let mut out = Vec::new();
    for _ in 0..clients_for(workload, settings) {
        out.push(floor.contender().await?);
    }
    Ok(out)
}

/// Runs one workload: returns (operations, per second, p50, p99) of
/// take+give-back cycles (for contention, the wait is part of the cycle).
async fn measure(
    workload: &str,
    contenders: Vec<Arc<dyn Contender>>,
    settings: Settings,
) -> Result<(u64, f64, Duration, Duration), String> {
    let tag: u64 = rand::thread_rng().gen();
    let names: Vec<LockName> = match workload {
        "many-names" => (0..settings.names.max(1))
            .map(|i| LockName::new(format!("bench/{tag:x}/{i}")))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        _ => vec![LockName::new(format!("bench/{tag:x}/one")).map_err(|e| e.to_string())?],
    };
    let names = Arc::new(names);
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
    let elapsed = start.elapsed();
    all.sort();
    let pick = |q: f64| -> Duration {
        if all.is_empty() {
            return Duration::ZERO;
        }
        let i = ((all.len() as f64 - 1.0) * q).round() as usize;
        all[i.min(all.len() - 1)]
    };
    let ops = all.len() as u64;
    Ok((
        ops,
        ops as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
    ))
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        Some(_) => "∞".into(),
        None => "–".into(),
    }
}

/// The Markdown table.
pub fn markdown(rows: &[Row], settings: Settings) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Settings: {} per workload, {} clients for contended and many-names, hold {:?}, {} names.\n",
        humantime::format_duration(settings.duration),
        settings.clients,
        settings.hold,
        settings.names
    );
    let _ = writeln!(
        s,
        "| backend | workload | ops | ops/s | p50 | p99 | floor ops/s | floor p50 | p50 vs floor | throughput vs floor |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (fops, fp50) = match r.floor {
            Some((f, p, _)) => (format!("{f:.0}"), fmt_d(p)),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.workload,
            r.ops,
            r.per_sec,
            fmt_d(r.p50),
            fmt_d(r.p99),
            fops,
            fp50,
            fmt_ratio(r.latency_ratio()),
            fmt_ratio(r.throughput_ratio()),
        );
    }
    s
}

/// A grouped bar chart of throughput (distlock vs floor) per backend and
/// workload, as a standalone SVG.
pub fn svg(rows: &[Row]) -> String {
    let bar_w = 18.0;
    let group_gap = 26.0;
    let left = 70.0;
    let top = 40.0;
    let height = 260.0;
    let max = rows
        .iter()
        .flat_map(|r| [r.per_sec, r.floor.map(|f| f.0).unwrap_or(0.0)])
        .fold(1.0_f64, f64::max);
    let width = left + rows.len() as f64 * (2.0 * bar_w + group_gap) + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-family="sans-serif" font-size="11">"#,
        w = width,
        h = top + height + 150.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="14">Throughput (operations/s): distlock (blue) vs raw floor (grey)</text>"#
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let y = top + height - height * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v:.0}</text>"##,
            x2 = width - 20.0,
            tx = left - 6.0,
            ty = y + 4.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let x = left + 10.0 + i as f64 * (2.0 * bar_w + group_gap);
        let bar = |s: &mut String, x: f64, v: f64, color: &str| {
            let h = height * v / max;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w}" height="{h:.1}" fill="{color}"><title>{v:.0}/s</title></rect>"#,
                y = top + height - h
            );
        };
        bar(&mut s, x, r.per_sec, "#3b6fd8");
        if let Some((f, _, _)) = r.floor {
            bar(&mut s, x + bar_w, f, "#9a9a9a");
        }
        let label = format!("{} · {}", short_backend(&r.backend), r.workload);
        let _ = writeln!(
            s,
            r#"<text transform="translate({tx:.1},{ty:.1}) rotate(-45)" text-anchor="end">{}</text>"#,
            xml_escape(&label),
            tx = x + bar_w,
            ty = top + height + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn short_backend(url: &str) -> String {
    let s = url.split('?').next().unwrap_or(url);
    if s.len() > 28 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(27).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s.to_string()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
