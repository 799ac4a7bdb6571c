//! The benchmark's report: a Markdown table and an SVG chart of the rows
//! [`crate::bench`] measured.
//!
//! Both compare distlock with each backend's raw floor as *slow-down
//! factors*, so that a number above 1 always means "slower than the floor":
//! p50 latency ÷ the floor's p50, and the floor's throughput ÷ distlock's.

use std::fmt::Write as _;
use std::time::Duration;

use distlock::BackendUrl;

use crate::bench::Row;
use crate::workload::{Primitive, Settings, Workload};

/// The header of the latency ratio column.
pub const LATENCY_RATIO: &str = "p50 ÷ floor p50 (lower is better, 1.00 = floor)";
/// The header of the throughput ratio column.
pub const THROUGHPUT_RATIO: &str = "floor ops/s ÷ ops/s (lower is better, 1.00 = floor)";
/// What the table shows for a workload the backend does not serve.
pub const NOT_SERVED: &str = "not served";
/// The title of the chart's ratio panel.
const LATENCY_PANEL: &str =
    "p50 latency ÷ raw floor's p50 (log scale; lower is better; dashed line = floor = 1)";

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// A slow-down factor: `1.33` (no `x` suffix, which reads as a speed-up).
fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}"),
        Some(_) => "∞".into(),
        None => "–".into(),
    }
}

/// The Markdown report: settings, the table, how to read the ratios, and
/// what each floor does.
pub fn markdown(rows: &[Row], settings: Settings) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Settings: {} per workload, {} clients for contended, many-names, semaphore and rw, \
         hold {:?}, {} names, {} permits, {:.0} % of rw cycles reading (a fixed pattern per client).\n",
        humantime::format_duration(settings.duration),
        settings.clients,
        settings.hold,
        settings.names,
        settings.permits,
        settings.read_share * 100.0,
    );
    let _ = writeln!(
        s,
        "| backend | workload | ops | ops/s | p50 | p99 | max | fewest per client | holder changes | floor ops/s | floor p50 | floor max | floor fewest per client | {LATENCY_RATIO} | {THROUGHPUT_RATIO} |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let floor = match r.floor {
            Some(f) => [
                format!("{:.0}", f.per_sec),
                fmt_d(f.p50),
                fmt_d(f.max),
                f.fewest.to_string(),
            ],
            None => ["–".into(), "–".into(), "–".into(), "–".into()],
        };
        let ours = match r.ours {
            Some(n) => [
                n.ops.to_string(),
                format!("{:.0}", n.per_sec),
                fmt_d(n.p50),
                fmt_d(n.p99),
                fmt_d(n.max),
                n.fewest.to_string(),
                n.changes.map_or_else(|| "–".into(), |c| c.to_string()),
            ],
            None => [
                NOT_SERVED.into(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ],
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.backend,
            r.workload.name(),
            ours[0],
            ours[1],
            ours[2],
            ours[3],
            ours[4],
            ours[5],
            ours[6],
            floor[0],
            floor[1],
            floor[2],
            floor[3],
            fmt_ratio(r.latency_ratio()),
            fmt_ratio(r.throughput_ratio()),
        );
    }
    let _ = writeln!(
        s,
        "\nBoth ratios are slow-down factors against the raw floor: 2.00 means distlock's \
         median cycle takes twice the floor's, or distlock completes half the floor's cycles \
         per second; below 1.00 distlock is faster than the floor. \"{NOT_SERVED}\": the \
         backend's capabilities do not claim the workload's mode. \"holder changes\" \
         (contended only): how many grants went to another client than the grant before, \
         out of ops − 1; a lock that the releasing client keeps re-taking changes holder \
         rarely."
    );
    write_recipes(&mut s, rows);
    s
}

/// One line per backend and primitive with a floor: what the floor does.
fn write_recipes(s: &mut String, rows: &[Row]) {
    let mut seen: Vec<(&str, Primitive)> = Vec::new();
    for r in rows {
        let Some(recipe) = r.floor_recipe else {
            continue;
        };
        let primitive = r.workload.primitive();
        if seen.contains(&(r.backend.as_str(), primitive)) {
            continue;
        }
        if seen.is_empty() {
            let _ = writeln!(s, "\nRaw floors:\n");
        }
        seen.push((&r.backend, primitive));
        let _ = writeln!(s, "- `{}`, {}: {recipe}", r.backend, primitive.name());
    }
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
                    let Some(ours) = r.ours else {
                        return Vec::new();
                    };
                    let mut bars = vec![Bar {
                        value: ours.per_sec,
                        color,
                        faded: false,
                    }];
                    if let Some(f) = r.floor {
                        bars.push(Bar {
                            value: f.per_sec,
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
    let legend_w = LEFT + Workload::ALL.len() as f64 * LEGEND_W;
    let width = (LEFT + groups.len() as f64 * GROUP_W + 40.0).max(legend_w);
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
        "Throughput, ops/s (log scale; higher is better): solid = distlock, faded = raw floor",
        &labels,
        &throughput,
        None,
    );
    panel(
        &mut out,
        40.0 + panel_h + 110.0,
        panel_h,
        LATENCY_PANEL,
        &labels,
        &ratios,
        Some(1.0),
    );
    let legend_y = height - 18.0;
    for (i, w) in Workload::ALL.iter().enumerate() {
        let x = LEFT + i as f64 * LEGEND_W;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y:.0}" width="12" height="12" fill="{c}"/><text x="{tx}" y="{ty:.0}">{w}</text>"#,
            y = legend_y - 10.0,
            c = workload_color(*w),
            tx = x + 18.0,
            ty = legend_y,
            w = w.name()
        );
    }
    out.push_str("</svg>\n");
    out
}

const LEFT: f64 = 80.0;
const GROUP_W: f64 = 200.0;
const LEGEND_W: f64 = 120.0;

struct Bar {
    value: f64,
    color: &'static str,
    faded: bool,
}

fn workload_color(workload: Workload) -> &'static str {
    match workload {
        Workload::Uncontended => "#3b6fd8",
        Workload::Contended => "#d8643b",
        Workload::ManyNames => "#3ba86b",
        Workload::Semaphore => "#8a4fd0",
        Workload::ReadWrite => "#c9a227",
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
    let schemes: Vec<String> = urls
        .iter()
        .map(|u| match BackendUrl::parse(u) {
            Ok(url) => url.scheme().to_string(),
            Err(_) => u.to_string(),
        })
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
                s.clone()
            }
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Numbers;

    fn row(workload: Workload, ours_per_sec: f64, floor_per_sec: f64) -> Row {
        let numbers = |per_sec: f64, p50_us: u64| Numbers {
            ops: 10,
            per_sec,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p50_us),
            max: Duration::from_micros(p50_us),
            fewest: 1,
            changes: (workload == Workload::Contended).then_some(9),
        };
        Row {
            backend: "redis://127.0.0.1:6379".into(),
            workload,
            ours: Some(numbers(ours_per_sec, 400)),
            floor: Some(numbers(floor_per_sec, 300)),
            floor_recipe: Some("SET key NX PX / DEL"),
        }
    }

    fn settings() -> Settings {
        Settings {
            duration: Duration::from_secs(1),
            clients: 2,
            hold: Duration::ZERO,
            names: 4,
            permits: 3,
            read_share: 0.9,
        }
    }

    #[test]
    fn a_workload_the_backend_does_not_serve_says_so() {
        let served = row(Workload::Semaphore, 750.0, 1000.0);
        let not_served = Row {
            workload: Workload::ReadWrite,
            ours: None,
            floor: None,
            floor_recipe: None,
            ..served.clone()
        };
        let table = markdown(&[served, not_served.clone()], settings());
        assert!(
            table.contains("| rw | not served | – | – | – | – | – | – | – |"),
            "{table}"
        );
        assert!(
            table.contains("3 permits, 90 % of rw cycles reading"),
            "{table}"
        );
        assert!(svg(&[not_served]).starts_with("<svg"));
    }

    #[test]
    fn each_primitive_s_floor_is_described_once() {
        let mut sem = row(Workload::Semaphore, 750.0, 1000.0);
        sem.floor_recipe = Some("a counter script");
        let rows = [
            row(Workload::Uncontended, 750.0, 1000.0),
            row(Workload::Contended, 750.0, 1000.0),
            sem,
        ];
        let table = markdown(&rows, settings());
        assert_eq!(table.matches("SET key NX PX / DEL").count(), 1, "{table}");
        assert!(table.contains(", mutex: SET key NX PX / DEL"), "{table}");
        assert!(table.contains(", semaphore: a counter script"), "{table}");
    }

    #[test]
    fn the_table_says_which_way_the_ratios_go() {
        let table = markdown(&[row(Workload::Contended, 750.0, 1000.0)], settings());
        assert!(table.contains(LATENCY_RATIO), "{table}");
        assert!(table.contains(THROUGHPUT_RATIO), "{table}");
        assert!(LATENCY_RATIO.contains("lower is better"));
        assert!(THROUGHPUT_RATIO.contains("lower is better"));
        // 1000 / 750 and 400 µs / 300 µs, with no `x` that reads as a speed-up.
        assert!(table.contains("| 1.33 | 1.33 |"), "{table}");
        assert!(!table.contains("1.33x"), "{table}");
        assert!(table.contains("slow-down"), "{table}");
        assert!(table.contains("SET key NX PX / DEL"), "{table}");
    }

    #[test]
    fn only_the_contended_row_counts_holder_changes() {
        let rows = [
            row(Workload::Contended, 750.0, 1000.0),
            row(Workload::ManyNames, 750.0, 1000.0),
        ];
        let table = markdown(&rows, settings());
        assert!(
            table.contains("| fewest per client | holder changes |"),
            "{table}"
        );
        assert!(
            table.contains("| contended | 10 | 750 | 400 µs | 400 µs | 400 µs | 1 | 9 |"),
            "{table}"
        );
        assert!(
            table.contains("| many-names | 10 | 750 | 400 µs | 400 µs | 400 µs | 1 | – |"),
            "{table}"
        );
    }

    #[test]
    fn chart_labels_are_schemes_numbered_when_repeated() {
        assert_eq!(
            short_labels(&["redis://a", "REDIS://b", "memory://"]),
            ["redis #1", "redis #2", "memory"]
        );
    }

    #[test]
    fn the_chart_says_which_way_the_ratio_goes() {
        let rows: Vec<Row> = Workload::ALL
            .iter()
            .map(|w| row(*w, 750.0, 1000.0))
            .collect();
        let chart = svg(&rows);
        assert!(chart.starts_with("<svg"));
        assert!(chart.contains("lower is better"), "{chart}");
        for w in Workload::ALL {
            assert!(chart.contains(w.name()), "{chart}");
        }
    }
}
