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
        AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(Duration::from_secs(60)));
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

/// The chart, as a standalone SVG: two log-scale panels grouped by backend,
/// throughput (distlock and its floor) and p50 latency relative to the floor.
pub fn svg(rows: &[Row]) -> String {
    let mut groups: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|(b, _)| *b == r.backend) {
            Some((_, members)) => members.push(r),
            None => groups.push((r.backend.clone(), vec![r])),
        }
    }
    let labels = short_labels(&groups.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>());
    let throughput: Vec<Vec<Bar>> = groups
        .iter()
        .map(|(_, members)| {
            members
                .iter()
                .flat_map(|r| {
                    let color = workload_color(r.workload);
                    let mut bars = vec![Bar {
                        value: r.per_sec,
                        color,
                        faded: false,
                    }];
                    if let Some((f, _, _)) = r.floor {
                        bars.push(Bar {
                            value: f,
                            color,
                            faded: true,
                        });
                    }
                    bars
                })
                .collect()
        })
        .collect();
    let ratios: Vec<Vec<Bar>> = groups
        .iter()
        .map(|(_, members)| {
            members
                .iter()
                .filter_map(|r| {
                    r.latency_ratio()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .map(|value| Bar {
                            value,
                            color: workload_color(r.workload),
                            faded: false,
                        })
                })
                .collect()
        })
        .collect();
    let panel_h = 230.0;
    let mut out = String::new();
    let width = (LEFT + groups.len() as f64 * GROUP_W + 40.0).max(560.0);
    let height = 2.0 * (panel_h + 110.0) + 40.0;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    panel(
        &mut out,
        40.0,
        panel_h,
        "Throughput, ops/s (log scale): solid = distlock, faded = raw floor",
        &labels,
        &throughput,
        None,
    );
    panel(
        &mut out,
        40.0 + panel_h + 110.0,
        panel_h,
        "p50 latency vs raw floor (log scale; dashed = floor)",
        &labels,
        &ratios,
        Some(1.0),
    );
    let legend_y = height - 18.0;
    for (i, w) in ["uncontended", "contended", "many-names"]
        .iter()
        .enumerate()
    {
        let x = LEFT + i as f64 * 140.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y:.0}" width="12" height="12" fill="{c}"/><text x="{tx}" y="{ty:.0}">{w}</text>"#,
            y = legend_y - 10.0,
            c = workload_color(w),
            tx = x + 18.0,
            ty = legend_y
        );
    }
    out.push_str("</svg>\n");
    out
}

const LEFT: f64 = 80.0;
const GROUP_W: f64 = 150.0;

struct Bar {
    value: f64,
    color: &'static str,
    faded: bool,
}

fn workload_color(workload: &str) -> &'static str {
    match workload {
        "uncontended" => "#3b6fd8",
        "contended" => "#d8643b",
        _ => "#3ba86b",
    }
}

/// One log-scale panel of grouped bars, with an optional reference line.
fn panel(
    out: &mut String,
    top: f64,
    height: f64,
    title: &str,
    labels: &[String],
    groups: &[Vec<Bar>],
    reference: Option<f64>,
) {
    let values = groups.iter().flatten().map(|b| b.value).chain(reference);
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (lo, hi) = (1.0, 10.0);
    }
    let (lo_exp, hi_exp) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let y_of = |v: f64| top + height - height * (v.log10() - lo_exp) / (hi_exp - lo_exp);
    let right = LEFT + groups.len() as f64 * GROUP_W;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.0}" font-size="14">{}</text>"#,
        top - 14.0,
        xml_escape(title)
    );
    let mut e = lo_exp;
    while e <= hi_exp {
        let v = 10f64.powf(e);
        let y = y_of(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{}</text>"##,
            tick_label(v),
            tx = LEFT - 6.0,
            ty = y + 4.0
        );
        e += 1.0;
    }
    for (g, bars) in groups.iter().enumerate() {
        let x0 = LEFT + g as f64 * GROUP_W + 10.0;
        let bar_w = ((GROUP_W - 30.0) / bars.len().max(1) as f64).min(30.0);
        for (i, b) in bars.iter().enumerate() {
            let y = y_of(b.value.max(10f64.powf(lo_exp)));
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}" fill-opacity="{o}"><title>{v:.2}</title></rect>"#,
                x = x0 + i as f64 * bar_w,
                w = bar_w - 2.0,
                h = top + height - y,
                c = b.color,
                o = if b.faded { "0.35" } else { "1" },
                v = b.value
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{y:.0}" text-anchor="middle">{}</text>"#,
            xml_escape(&labels[g]),
            x = LEFT + g as f64 * GROUP_W + GROUP_W / 2.0,
            y = top + height + 18.0
        );
    }
    if let Some(r) = reference {
        let y = y_of(r);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#333" stroke-dasharray="6 4"/>"##
        );
    }
}

fn tick_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Short labels for backend URLs: the scheme, numbered when repeated.
fn short_labels(urls: &[&str]) -> Vec<String> {
    let schemes: Vec<&str> = urls
        .iter()
        .map(|u| u.split(':').next().unwrap_or(u))
        .collect();
    schemes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = schemes.iter().filter(|t| *t == s).count();
            if n > 1 {
                let k = schemes[..i].iter().filter(|t| *t == s).count() + 1;
                format!("{s} #{k}")
            } else {
                s.to_string()
            }
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
