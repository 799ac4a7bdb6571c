//! A throw-away `redis-server` of a test's own: a free port on loopback, a
//! scratch directory under `target/services/`, no persistence unless asked
//! (`--save "" --appendonly no`), stopped and removed on drop. The shared
//! servers of `scripts/services.sh` are never touched.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// What redis-server prints once it accepts connections.
const READY: &str = "Ready to accept connections";
/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Servers started by this process so far (each gets its own directory).
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// One private redis-server process.
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// A configuration file given first (a sentinel needs one it can write).
    config: Option<PathBuf>,
    /// The log line that says the server is ready.
    ready: &'static str,
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A new scratch directory under the workspace's `target/services/`.
fn scratch_dir() -> PathBuf {
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/services/private-redis")
        .join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

impl PrivateRedis {
    /// Starts a server without persistence; `extra` are more
    /// `redis-server` arguments (e.g. `["--replicaof", "127.0.0.1", "6379"]`).
    pub fn start(extra: &[&str]) -> Self {
        Self::launch(PrivateRedis {
            child: None,
            port: 0,
            dir: scratch_dir(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            config: None,
            ready: READY,
        })
    }

    /// Starts a sentinel monitoring `primary` as `master` (quorum 1; it
    /// fails nothing over within a test: `down-after-milliseconds` stays
    /// at its 30 s).
    pub fn sentinel(primary: &PrivateRedis, master: &str) -> Self {
        let dir = scratch_dir();
        let config = dir.join("sentinel.conf");
        let monitor = format!("sentinel monitor {master} 127.0.0.1 {} 1\n", primary.port());
        std::fs::write(&config, monitor)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        Self::launch(PrivateRedis {
            child: None,
            port: 0,
            dir,
            extra: vec!["--sentinel".to_string()],
            config: Some(config),
            ready: "+monitor",
        })
    }

    fn launch(mut server: PrivateRedis) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                // Someone took the port between our probe and the bind.
                Err(log) => last = log,
            }
        }
        panic!("redis-server did not start:\n{last}");
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `SHUTDOWN NOSAVE`: the server exits and forgets everything (waits
    /// for the process to end).
    pub async fn shutdown_nosave(&mut self) {
        let client = redis::Client::open(format!("redis://{}", self.addr())).unwrap();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot reach the private redis {}: {e}", self.addr()));
        // The server closes the connection instead of answering.
        let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query_async(&mut conn)
            .await;
        if let Some(mut child) = self.child.take() {
            let status = child.wait().expect("wait for redis-server");
            assert!(status.success(), "redis-server exited with {status}");
        }
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the server's process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("a running server");
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// Kills the server (`SIGKILL`: it persists nothing) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (empty: it
    /// persisted nothing).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a server that is running");
        if let Err(log) = self.spawn() {
            panic!(
                "redis-server did not start again on {}:\n{log}",
                self.addr()
            );
        }
    }

    /// Starts the process and waits for its ready line; the output it
    /// printed when it did not get ready.
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_str().expect("a UTF-8 scratch path").to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let config = self
            .config
            .as_ref()
            .map(|c| c.to_string_lossy().to_string());
        if let Some(config) = &config {
            args.insert(0, config);
        }
        let mut child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `redis-server` ({e}); scripts/services.sh up installs it")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        let ready = self.ready;
        // Reads the log to its end (so the server never blocks on a full
        // pipe), telling when the ready line came, or the log so far when
        // the server exited first.
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut told = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told && line.contains(ready) {
                    told = ready_tx.send(Ok(())).is_ok();
                }
                log.push_str(&line);
                log.push('\n');
            }
            if !told {
                let _ = ready_tx.send(Err(log));
            }
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(log)) => {
                let _ = child.wait();
                Err(log)
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("no `{}` within {START_TIMEOUT:?}", self.ready))
            }
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
