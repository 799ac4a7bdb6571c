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
        "--permits",
        "2",
        "--read-share",
        "0.5",
        "--markdown",
        md.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = std::fs::read_to_string(&md).unwrap();
    for workload in ["uncontended", "contended", "many-names", "semaphore", "rw"] {
        assert!(table.contains(workload), "{table}");
    }
    // The ratio columns say which way they go, and the floor is described.
    assert!(
        table.contains("p50 ÷ floor p50 (lower is better, 1.00 = floor)"),
        "{table}"
    );
    assert!(
        table.contains("floor ops/s ÷ ops/s (lower is better, 1.00 = floor)"),
        "{table}"
    );
    assert!(
        table.contains("a mutex-guarded set of held names"),
        "{table}"
    );
    assert!(
        table.contains("2 permits, 50 % of rw cycles reading"),
        "{table}"
    );
    assert!(table.contains("semaphore: a mutex-guarded map"), "{table}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg"));
    assert!(chart.contains("lower is better"), "{chart}");
}

/// A SQLite lock file of this test's own.
fn sqlite_url(test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("distlock-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("locks.db").display())
}

/// Starts `distlock run` holding `name` with a command that prints its lease
/// and then sleeps; returns the process and the lease once it holds the lock.
fn start_holder(url: &str, name: &str, ttl: &str) -> (std::process::Child, String) {
    start_holder_for(url, name, ttl, 60)
}

/// [`start_holder`] whose command ends after `secs` seconds.
fn start_holder_for(url: &str, name: &str, ttl: &str, secs: u32) -> (std::process::Child, String) {
    let command = format!("echo \"$DISTLOCK_LEASE\"; exec sleep {secs}");
    start_printing(
        &[
            "run",
            "--backend",
            url,
            "--name",
            name,
            "--ttl",
            ttl,
            "--grace",
            "2s",
        ],
        &command,
    )
}

/// Starts `distlock <args> -- sh -c <command>` and returns it with the
/// first line the command printed (once it holds its lock).
fn start_printing(args: &[&str], command: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_distlock"))
        .args(args)
        .args(["--", "sh", "-c", command])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the command printed a line").unwrap();
    (child, first)
}

#[test]
fn a_held_lock_is_not_acquired_and_exits_75() {
    let url = sqlite_url("held");
    let (mut holder, _) = start_holder(&url, "busy", "30s");
    let out = distlock(&["run", "--backend", &url, "--name", "busy", "--", "true"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not acquired"));
    let status = distlock(&["status", "--backend", &url, "--name", "busy"]);
    assert!(
        text(&status.stdout).contains("held: yes"),
        "{}",
        text(&status.stdout)
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn waiting_gets_the_lock_once_the_holder_is_done() {
    let url = sqlite_url("wait");
    let (mut holder, _) = start_holder_for(&url, "turn", "30s", 1);
    let out = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "turn",
        "--wait",
        "20s",
        "--",
        "sh",
        "-c",
        "echo token=$DISTLOCK_FENCING_TOKEN",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("token="));
    assert!(holder.wait().unwrap().success());
}

#[test]
fn a_lost_lock_stops_the_command_and_exits_77() {
    let url = sqlite_url("lost");
    let (holder, lease) = start_holder(&url, "fragile", "1s");
    // Take the lease away behind the runner's back: its next extension is
    // refused, the lock is lost, and the command must be stopped.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = distlock::connect(&url).await.unwrap();
        backend
            .release(&distlock::Lease::import(&lease).unwrap())
            .await
            .unwrap();
    });
    let started = std::time::Instant::now();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the command was not stopped promptly"
    );
}

/// `distlock run --permits N` as a user would: that many runners hold the
/// name at once, one more is not acquired, another count is refused.
#[test]
fn runners_share_a_semaphore_by_permits() {
    let url = sqlite_url("permits");
    let args = ["run", "--backend", &url, "--name", "pool", "--permits", "2"];
    let holder = |_| start_printing(&args, "echo \"$DISTLOCK_LOCK_MODE\"; exec sleep 60");
    let (mut first, mode) = holder(60);
    assert_eq!(mode, "permit/2");
    let (mut second, _) = holder(60);
    let third = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "pool",
        "--permits",
        "2",
        "--",
        "true",
    ]);
    assert_eq!(third.status.code(), Some(75), "{}", text(&third.stderr));
    let other_count = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "pool",
        "--permits",
        "3",
        "--",
        "true",
    ]);
    assert_eq!(
        other_count.status.code(),
        Some(78),
        "{}",
        text(&other_count.stderr)
    );
    assert!(
        text(&other_count.stderr).contains("2 permits"),
        "{}",
        text(&other_count.stderr)
    );
    let writer = distlock(&["run", "--backend", &url, "--name", "pool", "--", "true"]);
    assert_eq!(writer.status.code(), Some(75), "{}", text(&writer.stderr));
    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// `distlock run --shared`: readers together, never beside a writer.
#[test]
fn shared_runners_read_together() {
    let url = sqlite_url("shared");
    let args = ["run", "--backend", &url, "--name", "doc", "--shared"];
    let (mut reader, _) = start_printing(&args, "echo held; exec sleep 60");
    let second = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "doc",
        "--shared",
        "--",
        "true",
    ]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let writer = distlock(&["run", "--backend", &url, "--name", "doc", "--", "true"]);
    assert_eq!(writer.status.code(), Some(75), "{}", text(&writer.stderr));
    let both = distlock(&[
        "run",
        "--backend",
        &url,
        "--name",
        "doc",
        "--shared",
        "--permits",
        "2",
        "--",
        "true",
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    reader.kill().unwrap();
    reader.wait().unwrap();
}
