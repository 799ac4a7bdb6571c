//! One granted etcd lease and what this client knows about it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use distlock_core::sync::lock;
use distlock_core::validity::valid_until;
use distlock_core::{Liveness, SessionLiveness};
use tokio::sync::watch;

/// One granted etcd lease: its id, its liveness as reported to guards, and
/// until when it certainly lives on the server (local monotonic clock).
pub(crate) struct LeaseGen {
    id: i64,
    liveness: SessionLiveness,
    alive_until: Mutex<Instant>,
}

impl LeaseGen {
    /// A lease the server granted for `ttl` by a request sent at `sent`.
    pub(crate) fn granted(id: i64, sent: Instant, ttl: Duration) -> Self {
        LeaseGen {
            id,
            liveness: SessionLiveness::new(),
            alive_until: Mutex::new(valid_until(sent, ttl)),
        }
    }

    /// The etcd lease id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Until when the lease certainly lives on the server (local clock).
    pub(crate) fn alive_until(&self) -> Instant {
        *lock(&self.alive_until)
    }

    /// Whether the lease was reported lost.
    pub(crate) fn is_lost(&self) -> bool {
        self.liveness.is_lost()
    }

    /// True when the lease is not lost and has `margin` left to live.
    pub(crate) fn usable(&self, margin: Duration) -> bool {
        !self.is_lost() && self.alive_until() > Instant::now() + margin
    }

    /// A receiver of the lease's liveness.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Liveness> {
        self.liveness.subscribe()
    }

    /// A keep-alive sent at `sent` was answered with `ttl`: the server
    /// restarted the countdown after `sent`. Back to `Live` if suspended.
    pub(crate) fn kept_alive(&self, sent: Instant, ttl: Duration) {
        {
            let until = valid_until(sent, ttl);
            let mut a = lock(&self.alive_until);
            if until > *a {
                *a = until;
            }
        }
        self.liveness.recover();
    }

    /// Keep-alives go unanswered: the lease may or may not live.
    pub(crate) fn suspended(&self) {
        self.liveness.suspend();
    }

    /// Marks the lease lost (once); true if this call did it.
    pub(crate) fn lost(&self, why: &str) -> bool {
        self.liveness.lose(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_moves_live_suspended_live_then_lost_once() {
        let sent = Instant::now();
        let gen = LeaseGen::granted(7, sent, Duration::from_secs(3));
        assert_eq!(gen.alive_until(), valid_until(sent, Duration::from_secs(3)));
        let rx = gen.subscribe();
        gen.suspended();
        assert_eq!(*rx.borrow(), Liveness::Suspended);
        gen.kept_alive(Instant::now(), Duration::from_secs(3));
        assert_eq!(*rx.borrow(), Liveness::Live);
        assert!(gen.lost("gone"));
        assert!(!gen.lost("again"), "lost only once");
        gen.kept_alive(Instant::now(), Duration::from_secs(3));
        assert!(gen.is_lost(), "a lost lease never comes back");
        assert!(!gen.usable(Duration::ZERO));
    }
}
