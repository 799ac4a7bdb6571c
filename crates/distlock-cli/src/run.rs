//! `distlock run` and `distlock leader`: a command run while this process
//! holds something — one lock (in any mode), several names at once, or the
//! leadership of an election — stopped if the hold is lost.

use std::time::Duration;

use distlock::{
    AcquireOptions, Leadership, LockClient, LockError, LockGuard, LockName, LostReason, Mode,
    MultiLockGuard, Wait,
};

use crate::exit;

/// How a command's hold is taken and kept.
#[derive(Clone, Copy, Debug)]
pub struct Hold {
    /// Lease length, extended in the background.
    pub ttl: Duration,
    /// How long to wait for the hold.
    pub wait: Wait,
    /// Time between SIGTERM and SIGKILL when the hold is lost.
    pub grace: Duration,
    /// The mode of a single name.
    pub mode: Mode,
    /// Keep the hold at least this long after it was taken, even when the
    /// command ends sooner.
    pub at_least: Option<Duration>,
}

impl Hold {
    /// The acquire options. A minimum longer than the ttl raises the ttl to
    /// it: a runner that crashes then keeps the lock for the minimum, which
    /// is what the minimum asks for anyway.
    fn options(&self) -> AcquireOptions {
        let ttl = self
            .at_least
            .map_or(self.ttl, |minimum| self.ttl.max(minimum));
        let options = AcquireOptions::try_once(ttl).with_wait(self.wait);
        match self.at_least {
            Some(d) => options.with_at_least(d),
            None => options,
        }
    }
}

/// What the command runs under.
enum Held {
    One(LockGuard),
    Many(MultiLockGuard),
    Leader(Leadership),
}

impl Held {
    /// The environment the command sees.
    fn env(&self, mode: Mode) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        let tokens = match self {
            Held::One(g) => {
                env.push(("DISTLOCK_LOCK_NAME", g.name().to_string()));
                env.push(("DISTLOCK_FENCING_TOKEN", g.fencing_token().to_string()));
                env.push(("DISTLOCK_LOCK_MODE", mode_label(mode)));
                env.push(("DISTLOCK_LEASE", g.lease().export()));
                vec![(g.name(), g.fencing_token())]
            }
            Held::Many(g) => g.fencing_tokens(),
            Held::Leader(l) => {
                env.push(("DISTLOCK_LOCK_NAME", l.name().to_string()));
                env.push(("DISTLOCK_FENCING_TOKEN", l.term().to_string()));
                env.push(("DISTLOCK_LEADER_TERM", l.term().to_string()));
                env.push(("DISTLOCK_LEADER_IDENTITY", l.identity().to_string()));
                vec![(l.name(), l.term())]
            }
        };
        let lines = |f: &dyn Fn(&(LockName, distlock::FencingToken)) -> String| {
            tokens.iter().map(f).collect::<Vec<_>>().join("\n")
        };
        env.push(("DISTLOCK_LOCK_NAMES", lines(&|(n, _)| n.to_string())));
        env.push(("DISTLOCK_FENCING_TOKENS", lines(&|(_, t)| t.to_string())));
        env
    }

    fn lost(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = LostReason> + Send>> {
        match self {
            Held::One(g) => Box::pin(g.lost()),
            Held::Many(g) => Box::pin(g.lost()),
            Held::Leader(l) => Box::pin(l.lost()),
        }
    }

    async fn release(self) -> Result<(), LockError> {
        match self {
            Held::One(g) => g.release().await,
            Held::Many(g) => g.release().await,
            Held::Leader(l) => l.resign().await,
        }
    }

    /// How the command's messages name what is held.
    fn describe(&self) -> String {
        match self {
            Held::One(g) => format!("lock `{}`", g.name()),
            Held::Many(g) => {
                let names: Vec<String> = g.names().iter().map(|n| format!("`{n}`")).collect();
                format!("locks {}", names.join(", "))
            }
            Held::Leader(l) => format!("leadership of `{}`", l.name()),
        }
    }
}

/// Reports a library error and returns its exit code.
pub fn fail(context: &str, e: &LockError) -> u8 {
    eprintln!("distlock: {context}: {e}");
    exit::of_error(e)
}

/// The mode as the command sees it in `DISTLOCK_LOCK_MODE`: `exclusive`,
/// `shared` or `permit/<count>`.
fn mode_label(mode: Mode) -> String {
    match mode {
        Mode::Permit { limit } => format!("permit/{limit}"),
        Mode::Shared => "shared".into(),
        _ => "exclusive".into(),
    }
}

/// The names of `--name`, checked.
fn lock_names(names: &[String]) -> Result<Vec<LockName>, u8> {
    names
        .iter()
        .map(|n| LockName::new(n.as_str()).map_err(|e| fail("bad lock name", &e)))
        .collect()
}

/// A client of the backend at `url`.
async fn client(url: &str, options: AcquireOptions) -> Result<LockClient, u8> {
    match distlock::connect(url).await {
        Ok(backend) => Ok(LockClient::with_defaults(backend, options)),
        Err(e) => Err(fail("cannot use the backend", &e)),
    }
}

/// `distlock run`: takes `names` (one in `hold.mode`, or several
/// exclusively, all or nothing) and runs `command` while they are held.
pub async fn run(url: &str, names: &[String], hold: Hold, command: &[String]) -> u8 {
    let names = match lock_names(names) {
        Ok(n) => n,
        Err(code) => return code,
    };
    if names.len() > 1 && hold.mode != Mode::Exclusive {
        eprintln!(
            "distlock: several --name take every name exclusively; --permits and --shared take one name"
        );
        return exit::USAGE;
    }
    let options = hold.options();
    let client = match client(url, options).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let taken = match names.as_slice() {
        [one] => client
            .try_lock_as(one, hold.mode, &options)
            .await
            .map(|g| g.map(Held::One)),
        _ => client
            .try_lock_many_with(names.clone(), &options)
            .await
            .map(|g| g.map(Held::Many)),
    };
    let held = match taken {
        Ok(Some(held)) => held,
        Ok(None) => {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            eprintln!(
                "distlock: {} held by someone else; not acquired",
                list.join(", ")
            );
            return exit::NOT_ACQUIRED;
        }
        Err(e) => return fail("acquire failed", &e),
    };
    supervise(held, hold, command).await
}

/// `distlock leader`: campaigns for `name` as `identity` (waiting as long
/// as it takes) and runs `command` while this process leads.
pub async fn leader(url: &str, name: &str, identity: &str, hold: Hold, command: &[String]) -> u8 {
    let name = match lock_names(&[name.to_string()]) {
        Ok(mut n) => n.remove(0),
        Err(code) => return code,
    };
    let options = hold.options();
    let client = match client(url, options).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let leadership = match client.try_elect_with(&name, identity, &options).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!("distlock: `{name}` kept another leader for the whole wait; not leading");
            return exit::NOT_ACQUIRED;
        }
        Err(e) => return fail("campaign failed", &e),
    };
    eprintln!(
        "distlock: leading `{name}` as {identity}, term {}",
        leadership.term()
    );
    supervise(Held::Leader(leadership), hold, command).await
}

/// Runs `command` while `held` lives; gives it back when the command ends,
/// stops the command when it is lost.
async fn supervise(held: Held, hold: Hold, command: &[String]) -> u8 {
    let Some((program, args)) = command.split_first() else {
        return exit::USAGE;
    };
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .envs(held.env(hold.mode))
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("distlock: cannot run `{program}`: {e}");
            let _ = held.release().await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                exit::COMMAND_NOT_FOUND
            } else {
                exit::COMMAND_NOT_EXECUTABLE
            };
        }
    };
    let lost = held.lost();
    tokio::select! {
        status = child.wait() => {
            let code = match status {
                Ok(s) => exit::of_child(s),
                Err(e) => {
                    eprintln!("distlock: waiting for the command failed: {e}");
                    exit::SOFTWARE
                }
            };
            if let Err(e) = held.release().await {
                eprintln!("distlock: release failed: {e}");
                if e.is_not_held() && code == 0 {
                    // The command finished, but the hold had gone by then.
                    return exit::LOST;
                }
            }
            code
        }
        reason = lost => {
            eprintln!("distlock: {} lost ({reason}); stopping the command", held.describe());
            stop_child(&mut child, hold.grace).await;
            exit::LOST
        }
    }
}

/// SIGTERM, then SIGKILL once `grace` has passed.
async fn stop_child(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// The identity `distlock leader` campaigns with by default: this host's
/// name and the process id.
pub fn default_identity() -> String {
    let host = gethostname::gethostname();
    format!("{}/{}", host.to_string_lossy(), std::process::id())
}
