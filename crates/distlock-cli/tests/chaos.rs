//! `distlock chaos` as an operator runs it, on a SQLite lock file: a run
//! with kills and pauses is safe; clients that take no lock are caught.

use std::process::{Command, Output};

fn chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distlock"))
        .arg("chaos")
        .args(args)
        .output()
        .expect("run distlock chaos")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sqlite_url(test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("distlock-chaos-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("locks.db").display())
}

/// The number on the report line that starts with `label`.
fn figure(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in:\n{report}"))
}

#[test]
fn a_run_with_kills_and_pauses_is_safe_and_pauses_are_caught() {
    let url = sqlite_url("safe");
    let out = chaos(&[
        "--backend",
        &url,
        "--acquisitions",
        "150",
        "--faults",
        "kill-waiter,kill-holder,pause",
        "--hold-max",
        "20ms",
    ]);
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    assert!(figure(&report, "acquisitions") >= 150, "{report}");
    assert_eq!(figure(&report, "overlaps, falling tokens"), 0, "{report}");
    assert_eq!(figure(&report, "stale writes accepted"), 0, "{report}");
    // The pause scenario: the paused holder's late write was refused, and
    // it reported the loss.
    assert!(figure(&report, "stale writes refused") >= 1, "{report}");
    let paused = report
        .lines()
        .find_map(|l| l.strip_prefix("paused holders reporting lost"))
        .expect("a paused-holders line");
    let counts: Vec<u64> = paused
        .split(" of ")
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(counts[1] >= 1 && counts[0] == counts[1], "{report}");
    assert!(report.contains("verdict: safe"), "{report}");
}

#[test]
fn clients_that_take_no_lock_are_caught() {
    let url = sqlite_url("unlocked");
    let out = chaos(&[
        "--backend",
        &url,
        "--acquisitions",
        "100",
        "--faults",
        "kill-waiter",
        "--unlocked",
    ]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(figure(&report, "overlaps, falling tokens") > 0, "{report}");
    assert!(report.contains("verdict: UNSAFE"), "{report}");
}

#[test]
fn an_in_process_backend_and_unknown_faults_are_refused() {
    let out = chaos(&["--backend", "memory://"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let out = chaos(&["--backend", "memory://", "--faults", "earthquake"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown fault"));
}
