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

/// Pids of the processes whose parent is `parent`, with their state letter.
fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, then parent pid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|p| p.parse().ok()) == Some(parent) {
            found.push((pid, state));
        }
    }
    found
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Polls `done` every 20 ms for up to `secs` seconds.
fn within(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

#[test]
fn clients_die_with_a_killed_runner_even_while_paused() {
    let url = sqlite_url("orphans");
    let mut runner = Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(["chaos", "--backend", &url, "--faults", "pause"])
        .args(["--acquisitions", "100000000", "--max-duration", "120s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start distlock chaos");
    // Kill the runner while one of its clients is stopped by a pause.
    let mut clients = Vec::new();
    let paused = within(90, || {
        clients = children_of(runner.id());
        clients.iter().any(|&(_, state)| state == 'T')
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(paused, "no client was seen paused: {clients:?}");
    let pids: Vec<u32> = clients.iter().map(|&(pid, _)| pid).collect();
    let died = within(10, || pids.iter().all(|&pid| gone(pid)));
    let survivors: Vec<u32> = pids.into_iter().filter(|&p| !gone(p)).collect();
    for pid in &survivors {
        // Leave nothing behind that holds this test's output open.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(died, "clients outlived their runner: {survivors:?}");
}
