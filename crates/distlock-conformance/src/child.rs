//! Child processes for the cross-process cases and tests (a client killed
//! while it holds or waits): the current test binary is run again, only
//! the case's own test, with an environment variable that turns the case
//! into its child part. The child reports on stdout with
//! marked lines (`<MARK> <value>`) and, where the case needs it, waits for
//! a line on stdin before it goes on.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::cases::support::must;

/// How long a child may take to start and report.
const CHILD_REPORTS_WITHIN: Duration = Duration::from_secs(60);

/// A child process of a case, its stdout read line by line.
pub struct ChildProcess {
    case: &'static str,
    /// The process itself.
    pub process: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProcess {
    /// Re-runs this test binary, only `test_path` (as libtest names it),
    /// with `env` set; stdin is piped when the child waits to be told.
    pub fn spawn(
        case: &'static str,
        test_path: &str,
        env: &[(&str, &str)],
        stdin: bool,
    ) -> ChildProcess {
        let exe = must(case, "path of the test binary", std::env::current_exe());
        let mut command = Command::new(exe);
        command
            .args([test_path, "--exact", "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        if stdin {
            command.stdin(std::process::Stdio::piped());
        }
        let mut process = must(case, "spawn of the child process", command.spawn());
        let Some(stdout) = process.stdout.take() else {
            panic!("[{case}] the child's stdout was not captured");
        };
        ChildProcess {
            case,
            process,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads the child's output until a line carrying `mark`; the rest of
    /// that line, trimmed.
    pub async fn mark(&mut self, mark: &str) -> String {
        let case = self.case;
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                // libtest may have printed `test … ... ` on the same line.
                if let Some((_, rest)) = line.split_once(mark) {
                    return Some(rest.trim().to_string());
                }
            }
            None
        };
        match tokio::time::timeout(CHILD_REPORTS_WITHIN, read).await {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!("[{case}] the child exited without reporting `{mark}`"),
            Err(_) => {
                panic!("[{case}] the child did not report `{mark}` within {CHILD_REPORTS_WITHIN:?}")
            }
        }
    }

    /// The number the child reported after `mark` (a fencing token).
    pub async fn number(&mut self, mark: &str) -> u64 {
        let case = self.case;
        let rest = self.mark(mark).await;
        rest.parse()
            .unwrap_or_else(|_| panic!("[{case}] the child reported `{mark} {rest}`, not a number"))
    }

    /// Tells a waiting child to go on (one line on its stdin).
    pub async fn tell(&mut self, line: &str) {
        let case = self.case;
        let Some(stdin) = self.process.stdin.as_mut() else {
            panic!("[{case}] the child's stdin was not piped");
        };
        let sent = stdin.write_all(format!("{line}\n").as_bytes()).await;
        must(case, "writing to the child's stdin", sent);
        must(case, "flushing the child's stdin", stdin.flush().await);
    }

    /// SIGKILLs the child and reaps it.
    pub async fn kill(&mut self) {
        must(self.case, "SIGKILL of the child", self.process.start_kill());
        let _ = self.process.wait().await;
    }

    /// Waits for the child to exit on its own.
    pub async fn exited(&mut self) {
        let case = self.case;
        let waited = tokio::time::timeout(CHILD_REPORTS_WITHIN, self.process.wait()).await;
        match waited {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => panic!("[{case}] the child failed: {status}"),
            Ok(Err(e)) => panic!("[{case}] waiting for the child: {e}"),
            Err(_) => panic!("[{case}] the child did not exit within {CHILD_REPORTS_WITHIN:?}"),
        }
    }
}

/// The child's side: reports `mark` and `value` on a line of its own.
pub fn report(mark: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    // Start on a fresh line: libtest may have printed the test's name.
    println!("\n{mark} {value}");
    let _ = std::io::stdout().flush();
}

/// The child's side: waits for a line on stdin.
pub async fn told(case: &str) -> String {
    let mut line = String::new();
    let mut stdin = BufReader::new(tokio::io::stdin());
    must(
        case,
        "reading the parent's word",
        stdin.read_line(&mut line).await,
    );
    line.trim().to_string()
}

/// The message of a task that panicked (empty for one that was cancelled).
pub fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}
