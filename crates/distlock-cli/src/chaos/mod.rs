//! `distlock chaos`: K client processes contend for one lock while a
//! nemesis kills, pauses and cuts them off and kills server nodes; the
//! runner checks what they report.
//!
//! Each client (`distlock chaos-client`, this same executable) takes the
//! lock again and again and, while holding it, writes its fencing token to a
//! fenced store (a SQLite file that refuses a token lower than one it has
//! accepted) — once at once, once at the end of its hold without checking
//! the lock first. The runner records every hold, write and loss signal,
//! runs the history checker over the holds (no two overlap, tokens rise),
//! counts stale writes accepted (must be 0) and refused, checks that every
//! holder a pause caught reported the loss, and measures the longest time
//! the lock stood free, overall and after each kind of fault.

mod client;
mod events;
mod nemesis;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distlock::sync::lock;
use distlock::BackendUrl;
use distlock_conformance::{FaultProxy, ProxyMode};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::Notify;

pub use client::{run as run_client, ClientSettings};
pub use nemesis::FaultKind;

use crate::exit;
use events::{analyse, wall_ns, Event, Fault, Findings, Paused, Record};
use nemesis::NodePick;

/// How a chaos run goes.
#[derive(Clone, Debug)]
pub struct ChaosSettings {
    pub url: String,
    pub clients: usize,
    pub acquisitions: usize,
    pub max_duration: Duration,
    pub ttl: Duration,
    pub hold_max: Duration,
    pub faults: Vec<FaultKind>,
    pub fault_every: Duration,
    pub services: PathBuf,
    /// The clients take no lock (see [`ClientSettings::unlocked`]).
    pub unlocked: bool,
    /// Run this long without faults first, to compare grant rates.
    pub baseline: Duration,
}

/// What the clients reported so far, and who holds the lock now.
#[derive(Default)]
struct Shared {
    record: Record,
    holder: Option<(usize, u64)>,
    /// The holder once its first write is done, until it gives the hold
    /// back: between its writes, so a pause catches it outside the store
    /// (a process stopped inside a SQLite write would stop every writer).
    holding: Option<(usize, u64)>,
    /// The writes the holder reported so far (two per hold).
    holder_writes: u8,
    acquisitions: usize,
    /// The holds given back: (client, token).
    released: HashSet<(usize, u64)>,
    /// The highest token granted so far, and the highest a write carried
    /// that the store accepted.
    highest_granted: u64,
    highest_written: u64,
}

/// How long the nemesis waits for a holder to pick, or for a paused holder
/// to give its hold back after it resumed.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a paused or cut-off holder stays so at most, waiting for
/// another client to take the lock (past any ttl or session timeout).
const OUTAGE_LIMIT: Duration = Duration::from_secs(60);

/// Server nodes a `nodes` fault may kill.
struct Nodes {
    service: &'static str,
    pick: NodePick,
    hosts: Vec<String>,
    rounds: usize,
}

/// A chaos run in progress.
struct Runner {
    settings: ChaosSettings,
    name: String,
    store: PathBuf,
    urls: Vec<String>,
    proxies: Vec<Vec<FaultProxy>>,
    children: Vec<Option<Child>>,
    shared: Arc<Mutex<Shared>>,
    /// Notified at every event a client reports.
    reported: Arc<Notify>,
    nodes: Option<Nodes>,
}

/// Runs a chaos run and reports it; the exit code says whether it was safe.
pub async fn run(settings: ChaosSettings) -> u8 {
    let mut runner = match Runner::new(settings).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("distlock: chaos: {}", distlock::redact_url(&e));
            return exit::CONFIG;
        }
    };
    println!(
        "chaos: {} on `{}`: {} clients, ttl {:?}, holds up to {:?}, a fault every {:?} ({})",
        distlock::redact_url(&runner.settings.url),
        runner.name,
        runner.settings.clients,
        runner.settings.ttl,
        runner.settings.hold_max,
        runner.settings.fault_every,
        runner.fault_names().join(", ")
    );
    let baseline = runner.baseline().await;
    let faulted_from = (Instant::now(), lock(&runner.shared).acquisitions);
    let driven = runner.drive().await;
    let faulted = rate(faulted_from, lock(&runner.shared).acquisitions);
    runner.stop_all().await;
    let mut record = std::mem::take(&mut lock(&runner.shared).record);
    match runner.accepted_writes().await {
        Ok(tokens) => record.accepted = tokens,
        Err(e) => {
            eprintln!("distlock: chaos: {e}");
            return exit::SOFTWARE;
        }
    }
    let findings = analyse(&record);
    print_report(&findings);
    if let Some(baseline) = baseline {
        println!(
            "grants/s without faults      {baseline:.1}\ngrants/s with faults         {faulted:.1} ({:.2} of the rate without)",
            faulted / baseline.max(f64::MIN_POSITIVE)
        );
    }
    let _ = std::fs::remove_file(&runner.store);
    if !findings.safe() {
        println!("verdict: UNSAFE");
        return exit::VIOLATION;
    }
    match driven {
        Ok(()) => {
            println!("verdict: safe");
            exit::OK
        }
        Err(e) => {
            println!("verdict: safe, but the run did not finish: {e}");
            exit::UNAVAILABLE
        }
    }
}

/// Runs `distlock chaos-client` until killed: the client's side.
pub async fn client(settings: ClientSettings) -> u8 {
    match run_client(settings).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("distlock: chaos client: {}", distlock::redact_url(&e));
            exit::UNAVAILABLE
        }
    }
}

impl Runner {
    /// Checks the settings, starts the proxies and the clients.
    async fn new(mut settings: ChaosSettings) -> Result<Runner, String> {
        let url = BackendUrl::parse(&settings.url).map_err(|e| e.to_string())?;
        let scheme = url.scheme().to_string();
        if scheme == "memory" {
            return Err("memory:// lives inside one process; chaos clients are processes".into());
        }
        let hosts: Vec<String> = match scheme.as_str() {
            "sqlite" => Vec::new(),
            _ => url
                .hosts()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|h| format!("{}:{}", h.name, h.port))
                .collect(),
        };
        let nodes = nemesis::node_plan(&scheme, hosts.len()).map(|(service, pick)| Nodes {
            service,
            pick,
            hosts: hosts.clone(),
            rounds: 0,
        });
        settings.faults.retain(|k| match k {
            FaultKind::Partition => !hosts.is_empty(),
            FaultKind::Nodes => nodes.is_some(),
            _ => true,
        });
        let dir = std::env::temp_dir().join(format!("distlock-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut runner = Runner {
            name: format!("chaos-{}-{}", std::process::id(), wall_ns() % 1_000_000),
            store: dir.join("store.db"),
            urls: Vec::new(),
            proxies: Vec::new(),
            children: Vec::new(),
            shared: Arc::new(Mutex::new(Shared::default())),
            reported: Arc::new(Notify::new()),
            nodes,
            settings,
        };
        client::open_store(&runner.store).await?;
        runner.start_proxies(&hosts).await?;
        for i in 0..runner.settings.clients {
            let child = runner.spawn(i)?;
            runner.children.push(Some(child));
        }
        Ok(runner)
    }

    fn fault_names(&self) -> Vec<&'static str> {
        self.settings.faults.iter().map(|k| k.name()).collect()
    }

    /// One fault proxy per client and server when partitions are wanted;
    /// each client's URL names its own proxies.
    async fn start_proxies(&mut self, hosts: &[String]) -> Result<(), String> {
        let partitions = self.settings.faults.contains(&FaultKind::Partition);
        for _ in 0..self.settings.clients {
            let mut url = self.settings.url.clone();
            let mut proxies = Vec::new();
            if partitions {
                for host in hosts {
                    let upstream = tokio::net::lookup_host(host.as_str())
                        .await
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| format!("cannot resolve {host}"))?;
                    let proxy = FaultProxy::start(upstream)
                        .await
                        .map_err(|e| format!("cannot start a fault proxy: {e}"))?;
                    if !url.contains(host.as_str()) {
                        return Err(format!(
                            "partitions need every server's host:port written in the URL ({host} is not)"
                        ));
                    }
                    url = url.replacen(host.as_str(), &proxy.addr().to_string(), 1);
                    proxies.push(proxy);
                }
            }
            self.urls.push(url);
            self.proxies.push(proxies);
        }
        Ok(())
    }

    /// Starts client `i`; its lines go to the record.
    fn spawn(&self, i: usize) -> Result<Child, String> {
        let s = &self.settings;
        let mut child = client::command()?
            .arg("chaos-client")
            .args(["--backend", &self.urls[i], "--name", &self.name])
            .args(["--ttl", &format!("{}ms", s.ttl.as_millis())])
            .args(["--hold-max", &format!("{}ms", s.hold_max.as_millis())])
            .arg("--store")
            .arg(&self.store)
            .args(s.unlocked.then_some("--unlocked"))
            .env("DISTLOCK_LOG", "off")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a chaos client: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (shared, reported) = (self.shared.clone(), self.reported.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(event) = Event::parse(&line) {
                    note(&shared, i, event);
                    reported.notify_waiters();
                }
            }
        });
        Ok(child)
    }

    /// The grant rate with no faults, over the baseline time (none for a
    /// zero baseline).
    async fn baseline(&self) -> Option<f64> {
        if self.settings.baseline.is_zero() {
            return None;
        }
        // Count from the first grant: the clients start up meanwhile.
        self.until(|s| (s.acquisitions > 0).then_some(())).await;
        let from = (Instant::now(), lock(&self.shared).acquisitions);
        tokio::time::sleep(self.settings.baseline).await;
        Some(rate(from, lock(&self.shared).acquisitions))
    }

    /// Causes faults until enough acquisitions were made and every kind of
    /// fault happened, or the time runs out.
    async fn drive(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut ran: HashSet<&'static str> = HashSet::new();
        let mut next = 0;
        loop {
            let enough = lock(&self.shared).acquisitions >= self.settings.acquisitions;
            if enough && self.settings.faults.iter().all(|k| ran.contains(k.name())) {
                return Ok(());
            }
            if started.elapsed() > self.settings.max_duration {
                return Err(format!(
                    "{} acquisitions and faults {:?} after {:?}",
                    lock(&self.shared).acquisitions,
                    ran,
                    self.settings.max_duration
                ));
            }
            tokio::time::sleep(self.settings.fault_every).await;
            let Some(&kind) = self
                .settings
                .faults
                .get(next % self.settings.faults.len().max(1))
            else {
                continue;
            };
            if let Some(fault) = self.cause(kind).await? {
                eprintln!(
                    "chaos: {} done; {} acquisitions so far",
                    fault.kind,
                    lock(&self.shared).acquisitions
                );
                next += 1;
                ran.insert(fault.kind);
                lock(&self.shared).record.faults.push(fault);
            }
        }
    }

    /// Causes one fault of `kind` and heals it; `None` when it could not be
    /// caused now (nobody holds the lock).
    async fn cause(&mut self, kind: FaultKind) -> Result<Option<Fault>, String> {
        let holder = match kind {
            FaultKind::KillHolder | FaultKind::Partition => self.until(|s| s.holder).await,
            FaultKind::Pause => self.until(|s| s.holding).await,
            _ => lock(&self.shared).holder,
        };
        let outage = self.settings.ttl * 2;
        let began = wall_ns();
        let mut paused = None;
        match kind {
            FaultKind::KillWaiter => {
                let others: Vec<usize> = (0..self.settings.clients)
                    .filter(|c| holder.is_none_or(|(h, _)| h != *c))
                    .collect();
                let Some(&victim) =
                    others.get(rand::thread_rng().gen_range(0..others.len().max(1)))
                else {
                    return Ok(None);
                };
                self.restart(victim, None).await?;
            }
            FaultKind::KillHolder => {
                let Some((victim, token)) = holder else {
                    return Ok(None);
                };
                self.restart(victim, Some(token)).await?;
            }
            FaultKind::Pause => {
                let Some((victim, token)) = holder else {
                    return Ok(None);
                };
                // Stopped past its ttl (or session), until another client
                // has taken the lock and written with its newer token.
                let stopped_at = match self.signal(victim, libc::SIGSTOP) {
                    Some(pid) => nemesis::stopped_at(pid).await,
                    None => wall_ns(),
                };
                tokio::time::sleep(outage).await;
                self.until_within(OUTAGE_LIMIT, |s| (s.highest_written > token).then_some(()))
                    .await;
                self.signal(victim, libc::SIGCONT);
                paused = Some(Paused {
                    client: victim,
                    token,
                    stopped_at,
                });
                // Its report of the hold (lost or not) comes before the next fault.
                self.until(|s| s.released.contains(&(victim, token)).then_some(()))
                    .await;
            }
            FaultKind::Partition => {
                let Some((victim, token)) = holder else {
                    return Ok(None);
                };
                // Cut off until another client has taken the lock.
                self.cut(victim, ProxyMode::Blackhole);
                tokio::time::sleep(outage).await;
                self.until_within(OUTAGE_LIMIT, |s| (s.highest_granted > token).then_some(()))
                    .await;
                self.cut(victim, ProxyMode::Pass);
            }
            FaultKind::Nodes => self.kill_nodes(outage).await?,
        }
        Ok(Some(Fault {
            kind: kind.name(),
            began,
            paused,
        }))
    }

    /// Waits (up to [`PATIENCE`]) until `what` finds something in what the
    /// clients reported.
    async fn until<T>(&self, what: impl Fn(&Shared) -> Option<T>) -> Option<T> {
        self.until_within(PATIENCE, what).await
    }

    /// [`until`](Self::until), waiting up to `patience`.
    async fn until_within<T>(
        &self,
        patience: Duration,
        what: impl Fn(&Shared) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let reported = self.reported.notified();
            if let Some(found) = what(&lock(&self.shared)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, reported).await.is_err() {
                return None;
            }
        }
    }

    /// SIGKILLs client `victim` (holding `token`, if it does) and starts it
    /// again.
    async fn restart(&mut self, victim: usize, token: Option<u64>) -> Result<(), String> {
        // The victim acts no more from the moment the signal is sent.
        let killed_at = wall_ns();
        if let Some(mut child) = self.children[victim].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        {
            let mut shared = lock(&self.shared);
            if let Some(token) = token {
                shared.record.killed.insert((victim, token), killed_at);
            }
            if shared.holder.is_some_and(|(h, _)| h == victim) {
                shared.holder = None;
            }
            if shared.holding.is_some_and(|(h, _)| h == victim) {
                shared.holding = None;
            }
        }
        self.children[victim] = Some(self.spawn(victim)?);
        Ok(())
    }

    /// Sends `signal` to client `client`; its pid, if it runs.
    fn signal(&self, client: usize, signal: i32) -> Option<i32> {
        let pid = self.children[client]
            .as_ref()
            .and_then(Child::id)
            .and_then(|p| i32::try_from(p).ok())?;
        // SAFETY: kill(2) on a child this runner started and has not reaped.
        unsafe {
            libc::kill(pid, signal);
        }
        Some(pid)
    }

    fn cut(&self, client: usize, mode: ProxyMode) {
        for proxy in &self.proxies[client] {
            proxy.set_mode(mode);
        }
    }

    /// Kills the nodes of this round, waits `outage`, starts them again.
    async fn kill_nodes(&mut self, outage: Duration) -> Result<(), String> {
        let Some(nodes) = self.nodes.as_mut() else {
            return Ok(());
        };
        let chosen = match &nodes.pick {
            NodePick::Fixed(list) => list.clone(),
            NodePick::FollowerThenLeader => {
                let leader = nemesis::leader(nodes.service, &nodes.hosts)
                    .await
                    .unwrap_or(1);
                if nodes.rounds % 2 == 1 {
                    vec![leader]
                } else {
                    vec![if leader == 1 { 2 } else { 1 }]
                }
            }
        };
        nodes.rounds += 1;
        let (service, script) = (nodes.service, self.settings.services.clone());
        for &n in &chosen {
            nemesis::services(&script, "kill-node", service, n).await?;
        }
        println!("chaos: killed {service} {chosen:?}");
        tokio::time::sleep(outage).await;
        for &n in &chosen {
            nemesis::services(&script, "start-node", service, n).await?;
        }
        Ok(())
    }

    /// The store's log of accepted writes.
    async fn accepted_writes(&self) -> Result<Vec<u64>, String> {
        let store = client::open_store(&self.store).await?;
        let tokens = client::accepted_writes(&store).await;
        store.pool().close().await;
        tokens
    }

    /// Kills every client.
    async fn stop_all(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        // Let the readers take the last lines.
        tokio::task::yield_now().await;
    }
}

/// Grants per second since `from` (an instant and the count then).
fn rate(from: (Instant, usize), now: usize) -> f64 {
    now.saturating_sub(from.1) as f64 / from.0.elapsed().as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Records `event` of client `i`.
fn note(shared: &Mutex<Shared>, i: usize, event: Event) {
    let mut s = lock(shared);
    match event {
        Event::Acquired { token, .. } => {
            s.holder = Some((i, token));
            s.holding = None;
            s.holder_writes = 0;
            s.acquisitions += 1;
            s.highest_granted = s.highest_granted.max(token);
        }
        Event::Wrote {
            token, accepted, ..
        } => {
            if accepted {
                s.highest_written = s.highest_written.max(token);
            }
            if s.holder == Some((i, token)) {
                // Between its two writes: pausable; after the second, it
                // is giving the hold back.
                s.holder_writes = s.holder_writes.saturating_add(1);
                s.holding = (s.holder_writes == 1).then_some((i, token));
            }
        }
        Event::Released { token, .. } => {
            s.released.insert((i, token));
            if s.holder == Some((i, token)) {
                s.holder = None;
            }
            if s.holding == Some((i, token)) {
                s.holding = None;
            }
        }
        _ => {}
    }
    s.record.events.push((i, event));
}

fn print_report(f: &Findings) {
    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    println!("acquisitions                 {}", f.acquisitions);
    println!("overlaps, falling tokens     {}", f.violations.len());
    for v in f.violations.iter().take(5) {
        println!("  {v}");
    }
    println!("stale writes accepted        {}", f.stale_accepted);
    println!("stale writes refused         {}", f.stale_refused);
    println!("writes accepted              {}", f.writes_accepted);
    println!("lost signals                 {}", f.lost_signals);
    println!("losses not signalled         {}", f.unnoticed);
    println!(
        "paused holders reporting lost {} of {}",
        f.paused_reported_lost.0, f.paused_reported_lost.1
    );
    println!("failed acquires              {}", f.acquire_errors);
    println!("failed store writes          {}", f.store_errors);
    println!("longest gap                  {}", secs(f.longest_gap));
    for (kind, (count, gap)) in &f.gap_after {
        println!("after {kind:<12} ×{count:<4} longest gap {}", secs(*gap));
    }
}
