//! The `distlock` binary, run as a user would.

use std::process::{Command, Output};

fn distlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(args)
        .output()
        .expect("run distlock")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_passes_the_fencing_token_and_the_command_exit_code() {
    let out = distlock(&[
        "run",
        "--backend",
        "memory://",
        "--name",
        "job",
        "--",
        "sh",
        "-c",
        "echo token=$DISTLOCK_FENCING_TOKEN name=$DISTLOCK_LOCK_NAME; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("token=1 name=job"), "{stdout}");
}

#[test]
fn run_hands_the_command_its_lease() {
    let out = distlock(&[
        "run",
        "--backend",
        "memory://",
        "--name",
        "job",
        "--",
        "sh",
        "-c",
        "echo $DISTLOCK_LEASE",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lease = distlock::Lease::import(text(&out.stdout).trim()).expect("an exported lease");
    assert_eq!(lease.name().as_str(), "job");
}

#[test]
fn a_missing_command_exits_127() {
    let out = distlock(&[
        "run",
        "--backend",
        "memory://",
        "--name",
        "j",
        "--",
        "/no/such/program",
    ]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn bad_urls_and_names_exit_78_without_showing_passwords() {
    let out = distlock(&[
        "run",
        "--backend",
        "gopher://u:hunter2@h",
        "--name",
        "j",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("unknown scheme"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let out = distlock(&["run", "--backend", "memory://", "--name", "", "--", "true"]);
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn bad_durations_are_usage_errors() {
    let out = distlock(&[
        "run",
        "--backend",
        "memory://",
        "--name",
        "j",
        "--ttl",
        "soon",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(text(&out.stderr).contains("not a duration"));
}

#[test]
fn status_reads_a_free_lock() {
    let out = distlock(&["status", "--backend", "memory://", "--name", "free"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("held: no"));
}

#[test]
fn bench_writes_a_table_and_a_chart() {
    let dir = std::env::temp_dir().join(format!("distlock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (md, svg) = (dir.join("b.md"), dir.join("b.svg"));
    let out = distlock(&[
        "bench",
        "--backend",
        "memory://bench",
        "--duration",
        "200ms",
        "--clients",
        "3",
        "--markdown",
        md.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = std::fs::read_to_string(&md).unwrap();
    for workload in ["uncontended", "contended", "many-names"] {
        assert!(table.contains(workload), "{table}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}
