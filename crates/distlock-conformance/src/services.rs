//! Stopping and starting the shared test servers, for fault tests.
//!
//! Fault tests stop a server node, check what the backend does meanwhile,
//! and start the node again. They do it through `scripts/services.sh`
//! (`stop-node`, `kill-node`, `start-node` *service node*), which serialises
//! such commands and, on `start-node`, waits until the node answers again.
//! [`StoppedNodes`] restarts every node it stopped when it is dropped — also
//! when the test panics — so one failed fault test never leaves a server
//! down for the next.
//!
//! Services and nodes, as the script names them: `redis` 1..=5 (the Redlock
//! instances) and 6 (the password-protected one), `zookeeper` 1..=3, `etcd`
//! 1..=3, `postgres` 1, `mariadb` 1.
//!
//! Every call blocks its thread until the script is done (a clean stop or a
//! start takes up to seconds). Inside a multi-thread tokio runtime it first
//! tells the runtime (`block_in_place`), so the test's other tasks — clients
//! under contention, guards being extended — keep running meanwhile.
//!
//! ```no_run
//! use distlock_conformance::services::StoppedNodes;
//!
//! # async fn demo() {
//! let mut down = StoppedNodes::stop("redis", &[2, 5]);
//! // … the backend runs with two of five instances gone …
//! down.start_all(); // or let the drop restart them
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// The environment variable naming the services script (set by
/// `scripts/services.sh env`).
pub const SCRIPT_ENV: &str = "DISTLOCK_SERVICES_SCRIPT";

/// What a failed script call says about getting the servers going.
const START_HINT: &str = "start the servers with `scripts/services.sh up` and load their \
                          settings with `eval \"$(scripts/services.sh env)\"`";

/// Serialises the fault tests of one test binary.
///
/// Tests that stop, kill or partition servers must not run beside each other:
/// one test's stopped node is another's missing quorum. `cargo test` runs the
/// tests of one binary in parallel (and binaries one after the other), so each
/// fault test holds this guard for its whole run:
///
/// ```no_run
/// # async fn demo() {
/// let _serial = distlock_conformance::services::exclusive().await;
/// // stop nodes, partition clients, check the outcome …
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: a dropped wait takes no place in line.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// The services script: `$DISTLOCK_SERVICES_SCRIPT`, else
/// `scripts/services.sh` of this workspace.
pub fn script() -> PathBuf {
    match std::env::var_os(SCRIPT_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/services.sh"
        )),
    }
}

/// Stops `node` of `service` cleanly (SIGTERM, waiting for it to exit).
///
/// # Panics
///
/// When the script cannot be run or reports a failure; the message names
/// the command.
#[track_caller]
pub fn stop_node(service: &str, node: usize) {
    run(NodeCommand::Stop, service, node);
}

/// Kills `node` of `service` hard (SIGKILL): a crash rather than a shutdown.
///
/// # Panics
///
/// As for [`stop_node`].
#[track_caller]
pub fn kill_node(service: &str, node: usize) {
    run(NodeCommand::Kill, service, node);
}

/// Starts `node` of `service` and waits until it answers (a node that
/// answers already is left alone).
///
/// # Panics
///
/// As for [`stop_node`]; also when the node does not come up within the
/// script's timeout.
#[track_caller]
pub fn start_node(service: &str, node: usize) {
    run(NodeCommand::Start, service, node);
}

/// The script's per-node commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeCommand {
    Stop,
    Kill,
    Start,
}

impl fmt::Display for NodeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeCommand::Stop => "stop-node",
            NodeCommand::Kill => "kill-node",
            NodeCommand::Start => "start-node",
        })
    }
}

/// Runs one per-node command through `bash` (so the script needs no
/// executable bit), panicking with the command line on failure.
#[track_caller]
fn run(command: NodeCommand, service: &str, node: usize) {
    if let Err(why) = try_run(command, service, node) {
        panic!("{why}");
    }
}

/// Runs one per-node command; `Err` describes what failed.
fn try_run(command: NodeCommand, service: &str, node: usize) -> Result<(), String> {
    let script = script();
    let line = format!("{} {command} {service} {node}", script.display());
    let status = blocking(|| {
        Command::new("bash")
            .arg(&script)
            .arg(command.to_string())
            .arg(service)
            .arg(node.to_string())
            .status()
    });
    match status {
        Err(e) => Err(format!("cannot run `{line}`: {e}; {START_HINT}")),
        Ok(s) if !s.success() => Err(format!(
            "`{line}` failed ({s}); see its output above; {START_HINT}"
        )),
        Ok(_) => Ok(()),
    }
}

/// Runs blocking work, letting a multi-thread tokio runtime move its other
/// tasks off this thread meanwhile.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Nodes of one service stopped for a test; every node still stopped is
/// started again when this value is dropped, also when the test panics.
///
/// One guard covers one service; stop further nodes with
/// [`stop_node`](StoppedNodes::stop_node) as the test goes on, start some
/// early with [`start_node`](StoppedNodes::start_node) or all with
/// [`start_all`](StoppedNodes::start_all).
#[must_use = "the nodes are started again as soon as this guard is dropped"]
pub struct StoppedNodes {
    service: String,
    nodes: Vec<usize>,
    after_restart: Option<Box<dyn Fn() + Send>>,
}

impl fmt::Debug for StoppedNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoppedNodes")
            .field("service", &self.service)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl StoppedNodes {
    /// A guard for `service` that has stopped nothing yet.
    pub fn new(service: &str) -> Self {
        StoppedNodes {
            service: service.to_string(),
            nodes: Vec::new(),
            after_restart: None,
        }
    }

    /// Stops `nodes` of `service` cleanly, one after the other.
    ///
    /// # Panics
    ///
    /// As for [`stop_node`](fn@stop_node); nodes stopped before the failure are
    /// started again.
    #[track_caller]
    pub fn stop(service: &str, nodes: &[usize]) -> Self {
        let mut guard = Self::new(service);
        for &node in nodes {
            guard.stop_node(node);
        }
        guard
    }

    /// Kills `nodes` of `service` hard (SIGKILL), one after the other.
    ///
    /// # Panics
    ///
    /// As for [`kill_node`](fn@kill_node).
    #[track_caller]
    pub fn kill(service: &str, nodes: &[usize]) -> Self {
        let mut guard = Self::new(service);
        for &node in nodes {
            guard.kill_node(node);
        }
        guard
    }

    /// Runs `hook` after the guard restarted nodes (in
    /// [`start_all`](StoppedNodes::start_all) and on drop), for example to
    /// wait until a cluster has a leader again.
    pub fn after_restart(mut self, hook: impl Fn() + Send + 'static) -> Self {
        self.after_restart = Some(Box::new(hook));
        self
    }

    /// Stops one more node cleanly; from now on it is restarted on drop.
    ///
    /// # Panics
    ///
    /// As for [`stop_node`](fn@stop_node).
    #[track_caller]
    pub fn stop_node(&mut self, node: usize) -> &mut Self {
        self.remember(node);
        stop_node(&self.service, node);
        self
    }

    /// Kills one more node hard; from now on it is restarted on drop.
    ///
    /// # Panics
    ///
    /// As for [`kill_node`](fn@kill_node).
    #[track_caller]
    pub fn kill_node(&mut self, node: usize) -> &mut Self {
        self.remember(node);
        kill_node(&self.service, node);
        self
    }

    /// Starts one stopped node now (waiting until it answers); the guard
    /// forgets it.
    ///
    /// # Panics
    ///
    /// As for [`start_node`](fn@start_node).
    #[track_caller]
    pub fn start_node(&mut self, node: usize) -> &mut Self {
        start_node(&self.service, node);
        self.nodes.retain(|n| *n != node);
        self
    }

    /// Starts every node still stopped, then runs the
    /// [`after_restart`](StoppedNodes::after_restart) hook.
    ///
    /// # Panics
    ///
    /// As for [`start_node`](fn@start_node).
    #[track_caller]
    pub fn start_all(&mut self) {
        if self.nodes.is_empty() {
            return;
        }
        for node in std::mem::take(&mut self.nodes) {
            start_node(&self.service, node);
        }
        if let Some(hook) = &self.after_restart {
            hook();
        }
    }

    /// The nodes this guard will start again.
    pub fn stopped(&self) -> &[usize] {
        &self.nodes
    }

    /// The service the nodes belong to.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn remember(&mut self, node: usize) {
        if !self.nodes.contains(&node) {
            self.nodes.push(node);
        }
    }
}

impl Drop for StoppedNodes {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.start_all();
            return;
        }
        // Already unwinding: report a failed restart instead of panicking
        // again (which would abort and hide the test's own failure).
        for node in std::mem::take(&mut self.nodes) {
            if let Err(why) = try_run(NodeCommand::Start, &self.service, node) {
                eprintln!("while unwinding: {why}");
            }
        }
        if let Some(hook) = &self.after_restart {
            let run = std::panic::AssertUnwindSafe(hook);
            if std::panic::catch_unwind(run).is_err() {
                eprintln!(
                    "while unwinding: the after-restart hook of {} panicked",
                    self.service
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_defaults_to_the_workspace_copy() {
        if std::env::var_os(SCRIPT_ENV).is_some() {
            return;
        }
        let path = script();
        assert!(path.ends_with("scripts/services.sh"), "{path:?}");
        assert!(path.exists(), "{path:?} is missing");
    }

    #[test]
    fn an_empty_guard_starts_nothing() {
        let guard = StoppedNodes::new("redis");
        assert!(guard.stopped().is_empty());
        assert_eq!(guard.service(), "redis");
        drop(guard);
    }

    #[test]
    fn commands_use_the_script_vocabulary() {
        assert_eq!(NodeCommand::Stop.to_string(), "stop-node");
        assert_eq!(NodeCommand::Kill.to_string(), "kill-node");
        assert_eq!(NodeCommand::Start.to_string(), "start-node");
    }
}
