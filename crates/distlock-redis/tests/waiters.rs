//! A waiter that dies must not stall the line (fair mode, one instance).
//!
//! A child process (this test binary run again, only the test at hand)
//! queues for a lock another client holds, and a live waiter queues behind
//! it. The child is then SIGKILLed, or frozen with SIGSTOP (its connections
//! stay open), and the holder releases. The live waiter must get the lock
//! before the bound a dead waiter used to cost: the child asks for a
//! [`DEAD_TTL`] hold, which a hand-over without waiter liveness gives it
//! whole. Each scenario also runs against the backend built without waiter
//! liveness, which must fail it.
//!
//! Nothing here measures time: the live waiter's acquire has a deadline,
//! [`NEXT_WAIT`], far below the old bound and far above the new one (a
//! killed waiter's process is seen gone at once; a frozen one holds a hand-
//! over until its queue entry's deadline, at most the waiter-liveness
//! window, default 1 s). The killed case runs with a 60 s window, so only
//! the crash check can let the next waiter in before its deadline.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{AcquireOptions, DistributedLock, LockName, Wait};
use distlock_redis::{RedisBackend, RedisConfig};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The hold the dead waiter asks for: what it cost the line before.
const DEAD_TTL: Duration = Duration::from_secs(120);
/// How long the live waiter behind it waits: ample on a loaded machine for
/// a window of 1 s, and far below [`DEAD_TTL`] and the killed case's 60 s
/// window.
const NEXT_WAIT: Duration = Duration::from_secs(15);
/// The bound on every step that only waits for the servers or the child.
const STEP: Duration = Duration::from_secs(60);
/// The key prefix of these tests' locks.
const PREFIX: &str = "dead-waiters:";

/// Turns this test binary into the child waiter: the lock name.
const CHILD_LOCK_ENV: &str = "DISTLOCK_REDIS_DEAD_WAITER_LOCK";
/// The child's backend URL.
const CHILD_URL_ENV: &str = "DISTLOCK_REDIS_DEAD_WAITER_URL";
/// Set when the child's backend runs without waiter liveness.
const CHILD_BLIND_ENV: &str = "DISTLOCK_REDIS_DEAD_WAITER_BLIND";
/// The line the child prints once it watches the lock's channel.
const WATCHING: &str = "DISTLOCK-DEAD-WAITER-WATCHING";

/// What happens to the waiter at the head of the line.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL: its process, and so its connections, are gone.
    Kill,
    /// SIGSTOP: silent, its connections still open.
    Freeze,
}

impl Fault {
    fn done(self) -> &'static str {
        match self {
            Fault::Kill => "killed",
            Fault::Freeze => "frozen",
        }
    }
}

/// Which backend every client of a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Liveness {
    Checked,
    /// Without waiter liveness (the purpose-broken variant).
    Blind,
}

async fn backend(url: &str, liveness: Liveness) -> Arc<dyn DistributedLock> {
    let config = RedisConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let backend = match liveness {
        Liveness::Checked => RedisBackend::from_config(config).await,
        Liveness::Blind => RedisBackend::from_config_blind_to_dead_waiters(config).await,
    };
    Arc::new(
        backend.unwrap_or_else(|e| panic!("cannot reach redis: {e}; {}", common::START_SERVERS)),
    )
}

/// One scenario: its lock, its URL, its clients.
struct Scene {
    test: &'static str,
    fault: Fault,
    liveness: Liveness,
    url: String,
    lock: LockName,
    holder: Arc<dyn DistributedLock>,
}

impl Scene {
    async fn new(test: &'static str, fault: Fault, liveness: Liveness) -> Scene {
        let window = match fault {
            Fault::Kill => "60s",
            Fault::Freeze => "1s",
        };
        let url = format!("{}&waiter_timeout={window}", common::single_url(PREFIX));
        let tag = distlock_core::OwnerToken::random().to_hex();
        let lock = LockName::new(format!("{test}/{tag}")).unwrap();
        let holder = backend(&url, liveness).await;
        Scene {
            test,
            fault,
            liveness,
            url,
            lock,
            holder,
        }
    }

    /// Runs the scenario: `Err` says how the line stalled.
    async fn run(&self) -> Result<(), String> {
        let ttl = Duration::from_secs(30);
        let held = self
            .holder
            .acquire(&self.lock, &AcquireOptions::try_once(ttl))
            .await
            .unwrap()
            .expect("a new lock is free");
        let mut child = self.spawn_child();
        child.mark(WATCHING).await;
        self.queue_reaches(1).await;
        let next = self.live_waiter().await;
        self.queue_reaches(2).await;
        self.fault(&mut child).await;
        self.holder.release(&held).await.unwrap();
        let outcome = next.await.unwrap();
        child.kill().await;
        match outcome {
            Some((client, lease)) => {
                client.release(&lease).await.unwrap();
                Ok(())
            }
            None => Err(format!(
                "[{}] the live waiter did not get the lock within its {NEXT_WAIT:?} wait: \
                 the {} waiter ahead of it held up the line (it asked for {DEAD_TTL:?}); \
                 the lock now: {:?}",
                self.test,
                self.fault.done(),
                self.holder.status(&self.lock).await
            )),
        }
    }

    /// This test binary again, only this test, as the child waiter.
    fn spawn_child(&self) -> ChildWaiter {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([self.test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_LOCK_ENV, self.lock.as_str())
            .env(CHILD_URL_ENV, &self.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if self.liveness == Liveness::Blind {
            command.env(CHILD_BLIND_ENV, "1");
        }
        let mut process = command.spawn().expect("spawn of the child waiter");
        let stdout = process.stdout.take().expect("the child's stdout");
        ChildWaiter {
            process,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Waits until the server's queue for the lock holds `n` waiters.
    async fn queue_reaches(&self, n: usize) {
        let deadline = Instant::now() + STEP;
        while self.holder.status(&self.lock).await.unwrap().waiters != Some(n) {
            assert!(
                Instant::now() < deadline,
                "[{}] the queue never reached {n} waiters",
                self.test
            );
            tokio::task::yield_now().await;
        }
    }

    /// A live waiter queued behind the child: its lease and client once
    /// it got the lock, `None` when its wait ran out.
    async fn live_waiter(
        &self,
    ) -> JoinHandle<Option<(Arc<dyn DistributedLock>, distlock_core::Lease)>> {
        let client = backend(&self.url, self.liveness).await;
        let lock = self.lock.clone();
        tokio::spawn(async move {
            let o = AcquireOptions::new(Duration::from_secs(30)).with_wait(Wait::For(NEXT_WAIT));
            let lease = client.acquire(&lock, &o).await.unwrap()?;
            Some((client, lease))
        })
    }

    /// Kills the child (and waits until the server closed its
    /// connections), or freezes it (and waits until the server ran a
    /// request the child may have had in flight: a refresh of its place
    /// landing after the release would confirm the hand-over, as from a
    /// waiter alive at that moment).
    async fn fault(&self, child: &mut ChildWaiter) {
        match self.fault {
            Fault::Freeze => {
                child.signal("STOP");
                child.stopped(self.test).await;
                // Its last request is in the server's socket buffer now, so
                // the server runs it before it answers a later one of ours.
                let _: String = redis::cmd("PING")
                    .query_async(&mut raw().await)
                    .await
                    .unwrap();
            }
            Fault::Kill => {
                // The child and the live waiter subscribe the lock's
                // channel (the holder never waited): once both did, the
                // count falling to one says the server closed the child's
                // connections.
                let channel = format!("{{{PREFIX}{}}}:released", self.lock);
                let mut raw = raw().await;
                self.subscribers_reach(&mut raw, &channel, 2).await;
                child.kill().await;
                self.subscribers_reach(&mut raw, &channel, 1).await;
            }
        }
    }

    /// Waits until `n` connections subscribe `channel`.
    async fn subscribers_reach(
        &self,
        raw: &mut redis::aio::MultiplexedConnection,
        channel: &str,
        n: u64,
    ) {
        let deadline = Instant::now() + STEP;
        loop {
            let (_, count): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(raw)
                .await
                .unwrap();
            if count == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] `{channel}` never had {n} subscribers (it has {count})",
                self.test
            );
            tokio::task::yield_now().await;
        }
    }
}

/// A plain connection to the single instance.
async fn raw() -> redis::aio::MultiplexedConnection {
    let url = format!("redis://{}", common::instance_addrs()[0]);
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// The child waiter's process, its stdout read line by line.
struct ChildWaiter {
    process: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildWaiter {
    /// Reads the child's output until a line carrying `mark`.
    async fn mark(&mut self, mark: &str) {
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                if line.contains(mark) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(STEP, read).await {
            Ok(true) => {}
            Ok(false) => panic!("the child waiter exited without reporting `{mark}`"),
            Err(_) => panic!("the child waiter did not report `{mark}` within {STEP:?}"),
        }
    }

    /// Sends `signal` (a `kill -s` name) to the child.
    fn signal(&self, signal: &str) {
        let pid = self.process.id().expect("the child is running");
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -s {signal} {pid} failed");
    }

    /// Waits until every thread of the child is stopped (`T` in
    /// `/proc/<pid>/task/*/stat`): none is inside a request any more.
    async fn stopped(&self, test: &str) {
        let pid = self.process.id().expect("the child is running");
        let deadline = Instant::now() + STEP;
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "[{test}] the child {pid} did not stop"
            );
            tokio::task::yield_now().await;
        }
    }

    /// SIGKILLs the child and reaps it.
    async fn kill(&mut self) {
        let _ = self.process.start_kill();
        let _ = self.process.wait().await;
    }
}

/// True when every thread of process `pid` is stopped by a signal.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().all(|thread| {
        let stat = std::fs::read_to_string(thread.path().join("stat")).unwrap_or_default();
        // `tid (comm) state …`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            == Some('T')
    })
}

/// The child's part, when this binary runs as the child waiter: watch the
/// lock's channel (so its pub/sub connection, and its client's liveness
/// channel, are up before it queues), say so, and wait for the lock until
/// the parent kills or freezes it.
async fn child_waiter() -> bool {
    let Ok(lock) = std::env::var(CHILD_LOCK_ENV) else {
        return false;
    };
    let url = std::env::var(CHILD_URL_ENV).expect("the child's URL");
    let liveness = match std::env::var(CHILD_BLIND_ENV) {
        Ok(_) => Liveness::Blind,
        Err(_) => Liveness::Checked,
    };
    let client = backend(&url, liveness).await;
    let lock = LockName::new(lock).unwrap();
    let _watching = client.changes(&lock).await.unwrap();
    println!("\n{WATCHING}");
    let o = AcquireOptions::new(DEAD_TTL).with_wait(Wait::For(DEAD_TTL));
    let _ = client.acquire(&lock, &o).await;
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_waiter_does_not_stall_the_line() {
    const TEST: &str = "a_killed_waiter_does_not_stall_the_line";
    if child_waiter().await {
        return;
    }
    let scene = Scene::new(TEST, Fault::Kill, Liveness::Checked).await;
    if let Err(e) = scene.run().await {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_waiter_stalls_the_line_for_its_window_at_most() {
    const TEST: &str = "a_frozen_waiter_stalls_the_line_for_its_window_at_most";
    if child_waiter().await {
        return;
    }
    let scene = Scene::new(TEST, Fault::Freeze, Liveness::Checked).await;
    if let Err(e) = scene.run().await {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiter_liveness_a_killed_waiter_stalls_the_line() {
    const TEST: &str = "without_waiter_liveness_a_killed_waiter_stalls_the_line";
    if child_waiter().await {
        return;
    }
    let scene = Scene::new(TEST, Fault::Kill, Liveness::Blind).await;
    let err = scene
        .run()
        .await
        .expect_err("the blind hand-over must stall the line");
    assert!(err.contains("held up the line"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiter_liveness_a_frozen_waiter_stalls_the_line() {
    const TEST: &str = "without_waiter_liveness_a_frozen_waiter_stalls_the_line";
    if child_waiter().await {
        return;
    }
    let scene = Scene::new(TEST, Fault::Freeze, Liveness::Blind).await;
    let err = scene
        .run()
        .await
        .expect_err("the blind hand-over must stall the line");
    assert!(err.contains("held up the line"), "{err}");
}
