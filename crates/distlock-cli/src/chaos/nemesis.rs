//! The faults the chaos runner causes, and how each is healed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::events::wall_ns;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL a client that waits for the lock; start it again.
    KillWaiter,
    /// SIGKILL the client that holds the lock; start it again.
    KillHolder,
    /// SIGSTOP the holder for twice the ttl, then SIGCONT it.
    Pause,
    /// Cut the holder off from the servers (its fault proxies drop
    /// everything) for twice the ttl.
    Partition,
    /// Kill server nodes through the services script, start them again.
    Nodes,
}

impl FaultKind {
    /// Every kind, in the order the nemesis cycles through them.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::KillWaiter,
        FaultKind::Pause,
        FaultKind::KillHolder,
        FaultKind::Partition,
        FaultKind::Nodes,
    ];

    /// The name in `--faults` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillWaiter => "kill-waiter",
            FaultKind::KillHolder => "kill-holder",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Nodes => "nodes",
        }
    }

    /// Parses a comma-separated `--faults` list (`all` for every kind).
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        s.split(',')
            .map(|n| {
                Self::ALL
                    .into_iter()
                    .find(|k| k.name() == n.trim())
                    .ok_or_else(|| {
                        let known: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                        format!("unknown fault `{n}`; known: {}, or all", known.join(", "))
                    })
            })
            .collect()
    }
}

/// Which server nodes a `nodes` fault kills, for a backend URL's scheme,
/// as the services script names them: (service, rounds of node numbers —
/// each round's nodes are killed together and started again before the
/// next round).
pub fn node_plan(scheme: &str, hosts: usize) -> Option<(&'static str, NodePick)> {
    match scheme {
        // Two of the instances: a majority of five stays.
        "redlock" if hosts >= 5 => Some(("redis", NodePick::Fixed(vec![1, 2]))),
        "zk" | "zookeeper" => Some(("zookeeper", NodePick::FollowerThenLeader)),
        "etcd" => Some(("etcd", NodePick::FollowerThenLeader)),
        "postgres" | "postgresql" => Some(("postgres", NodePick::Fixed(vec![1]))),
        "mysql" | "mariadb" => Some(("mariadb", NodePick::Fixed(vec![1]))),
        _ => None,
    }
}

/// How the nodes of a `nodes` fault are chosen.
#[derive(Clone, Debug)]
pub enum NodePick {
    /// These nodes, every time.
    Fixed(Vec<usize>),
    /// A follower the first time, the leader the next, and so on.
    FollowerThenLeader,
}

/// Runs `scripts/services.sh <command> <service> <node>`.
pub async fn services(
    script: &PathBuf,
    command: &str,
    service: &str,
    node: usize,
) -> Result<(), String> {
    let out = tokio::process::Command::new(script)
        .args([command, service, &node.to_string()])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {command} {service} {node} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether the ZooKeeper server at `addr` leads its ensemble (`srvr`).
async fn zookeeper_leads(addr: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"srvr").await.is_err() {
        return false;
    }
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut answer));
    matches!(read.await, Ok(Ok(_))) && answer.lines().any(|l| l.trim() == "Mode: leader")
}

/// Whether the etcd member at `addr` leads its cluster.
#[cfg(feature = "etcd")]
async fn etcd_leads(addr: &str) -> bool {
    let Ok(mut client) = etcd_client::Client::connect([addr], None).await else {
        return false;
    };
    match client.status().await {
        Ok(s) => s.header().is_some_and(|h| h.member_id() == s.leader()),
        Err(_) => false,
    }
}

#[cfg(not(feature = "etcd"))]
async fn etcd_leads(_addr: &str) -> bool {
    false
}

/// The node (1-based, in the URL's host order) that leads, if any answers.
pub async fn leader(service: &str, hosts: &[String]) -> Option<usize> {
    for (i, addr) in hosts.iter().enumerate() {
        let leads = match service {
            "zookeeper" => zookeeper_leads(addr).await,
            "etcd" => etcd_leads(addr).await,
            _ => false,
        };
        if leads {
            return Some(i + 1);
        }
    }
    None
}

/// Once the process `pid`, just sent SIGSTOP, is stopped: the wall time
/// (ns) then, read after the kernel shows it stopped (`/proc/<pid>/stat`),
/// so that everything the process did before it stopped happened earlier.
/// Where `/proc` cannot tell, the time after a short wait.
pub async fn stopped_at(pid: i32) -> u64 {
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..1000 {
        let Ok(text) = tokio::fs::read_to_string(&stat).await else {
            break;
        };
        // The state is the first field after the command name's ')'.
        let state = text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('T' | 't')) {
            return wall_ns();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    wall_ns()
}
