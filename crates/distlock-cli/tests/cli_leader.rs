//! `distlock run` over several names and with `--at-least`, `distlock
//! leader` and `distlock observe`, run as a user would (processes on one
//! SQLite lock file).

use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};

fn distlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(args)
        .output()
        .expect("run distlock")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A SQLite lock file of this test's own.
fn sqlite_url(test: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("distlock-cli-leader-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("locks.db").display())
}

/// Starts `distlock <args> -- sh -c <command>`; returns it with the lines
/// its command prints.
fn start(
    args: &[&str],
    command: &str,
) -> (
    Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(args)
        .args(["--", "sh", "-c", command])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

fn run_true(url: &str, names: &[&str]) -> Output {
    let mut args = vec!["run", "--backend", url];
    for n in names {
        args.extend(["--name", n]);
    }
    args.extend(["--", "true"]);
    distlock(&args)
}

#[test]
fn several_names_are_held_together_all_or_nothing() {
    let url = sqlite_url("multi");
    let (mut holder, mut lines) = start(
        &["run", "--backend", &url, "--name", "b", "--name", "a"],
        "echo \"$DISTLOCK_LOCK_NAMES\" | tr '\\n' ,; echo; echo \"$DISTLOCK_FENCING_TOKENS\" | wc -l; exec sleep 60",
    );
    // The names in the one global order, whatever order they were given.
    assert_eq!(lines.next().unwrap().unwrap(), "a,b,");
    assert_eq!(lines.next().unwrap().unwrap().trim(), "2");
    for taken in [&["a"][..], &["b"], &["c", "b"]] {
        let out = run_true(&url, taken);
        assert_eq!(
            out.status.code(),
            Some(75),
            "{taken:?}: {}",
            text(&out.stderr)
        );
    }
    // All or nothing: the refused run over c and b left c free.
    let out = run_true(&url, &["c"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn several_names_with_a_mode_are_a_usage_error() {
    let url = sqlite_url("multi-mode");
    let out = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "a",
        "--name",
        "b",
        "--shared",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn at_least_keeps_the_lock_after_the_command_and_the_process_end() {
    let url = sqlite_url("at-least");
    let out = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "nightly",
        "--at-least",
        "1h",
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The runner has exited; the lock stays held for the rest of the hour.
    let again = run_true(&url, &["nightly"]);
    assert_eq!(again.status.code(), Some(75), "{}", text(&again.stderr));
    let status = distlock(&["status", "--backend", &url, "--name", "nightly"]);
    assert!(
        text(&status.stdout).contains("held: yes"),
        "{}",
        text(&status.stdout)
    );
    // A short minimum passes, and the lock frees by itself.
    let out = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "hourly",
        "--at-least",
        "1s",
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let waited = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "hourly",
        "--wait",
        "30s",
        "--",
        "true",
    ]);
    assert!(waited.status.success(), "{}", text(&waited.stderr));
}

/// The term a `distlock leader` command printed as `term=<n>`.
fn term(line: &str) -> u64 {
    line.strip_prefix("term=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a term line: {line}"))
}

#[test]
fn a_leader_runs_its_command_and_another_takes_over_with_a_higher_term() {
    let url = sqlite_url("leader");
    let leader = |id: &'static str| {
        start(
            &[
                "leader",
                "--backend",
                &url,
                "--name",
                "cron",
                "--identity",
                id,
                "--ttl",
                "2s",
            ],
            "echo term=$DISTLOCK_LEADER_TERM; echo id=$DISTLOCK_LEADER_IDENTITY; exec sleep 60",
        )
    };
    let (mut first, mut first_lines) = leader("node-a");
    let first_term = term(&first_lines.next().unwrap().unwrap());
    assert_eq!(first_lines.next().unwrap().unwrap(), "id=node-a");
    let observed = distlock(&[
        "observe",
        "--backend",
        &url,
        "--name",
        "cron",
        "--changes",
        "1",
    ]);
    assert_eq!(
        text(&observed.stdout).trim(),
        format!("leader node-a term {first_term}")
    );
    // The second candidate waits; the first dies without resigning.
    let (mut second, mut second_lines) = leader("node-b");
    first.kill().unwrap();
    first.wait().unwrap();
    let second_term = term(&second_lines.next().unwrap().unwrap());
    assert!(second_term > first_term, "{second_term} after {first_term}");
    let observed = distlock(&[
        "observe",
        "--backend",
        &url,
        "--name",
        "cron",
        "--changes",
        "1",
    ]);
    assert_eq!(
        text(&observed.stdout).trim(),
        format!("leader node-b term {second_term}")
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

#[test]
fn a_leader_exits_with_its_command_and_resigns() {
    let url = sqlite_url("resign");
    let out = distlock(&[
        "leader",
        "--backend",
        &url,
        "--name",
        "once",
        "--identity",
        "me",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let observed = distlock(&[
        "observe",
        "--backend",
        &url,
        "--name",
        "once",
        "--changes",
        "1",
    ]);
    assert_eq!(text(&observed.stdout).trim(), "no leader");
}

#[test]
fn a_bad_identity_is_a_configuration_error() {
    let url = sqlite_url("identity");
    let long = "x".repeat(300);
    for identity in ["", long.as_str()] {
        let out = distlock(&[
            "leader",
            "--backend",
            &url,
            "--name",
            "n",
            "--identity",
            identity,
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    }
}
