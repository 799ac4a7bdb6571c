//! A child process for the tests that kill a client: this test binary run
//! again, only the test that spawns it, with an environment variable that
//! turns that test into the child's part. The child reports on stdout with
//! marked lines.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a child may take to start and report.
const REPORTS_WITHIN: Duration = Duration::from_secs(60);

/// A child process, its stdout read line by line.
pub struct ChildProcess {
    process: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProcess {
    /// Re-runs this test binary, only `test` (its exact name), with `env`.
    pub fn spawn(test: &str, env: &[(&str, String)]) -> ChildProcess {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut process = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the child process");
        let stdout = process.stdout.take().expect("the child's stdout");
        ChildProcess {
            process,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads the child's output until a line carrying `mark`.
    pub async fn mark(&mut self, mark: &str) {
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if line.contains(mark) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(REPORTS_WITHIN, read).await {
            Ok(true) => {}
            Ok(false) => panic!("the child exited without reporting `{mark}`"),
            Err(_) => panic!("the child did not report `{mark}` within {REPORTS_WITHIN:?}"),
        }
    }

    /// SIGKILLs the child and reaps it.
    pub async fn kill(&mut self) {
        self.process.start_kill().expect("SIGKILL of the child");
        let _ = self.process.wait().await;
    }
}

/// The child's side: reports `mark` on a line of its own.
pub fn report(mark: &str) {
    use std::io::Write;
    // Start on a fresh line: libtest may have printed the test's name.
    println!("\n{mark}");
    let _ = std::io::stdout().flush();
}
