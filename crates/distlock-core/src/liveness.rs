//! The sending side of a session's [`Liveness`], for backends whose locks
//! live with a session (a ZooKeeper session, an etcd lease, a database
//! connection): the one place where its moves are ruled.
//!
//! `Live` and `Suspended` alternate as the session's server stops and
//! resumes answering; `Lost` is final and reported once, with its reason.
//! Guards follow the receivers ([`LockBackend::session`](crate::LockBackend::session)).

use tokio::sync::watch;

use crate::backend::Liveness;

/// A session's liveness, starting `Live`. Clones report to the same
/// receivers.
#[derive(Clone, Debug)]
pub struct SessionLiveness {
    tx: watch::Sender<Liveness>,
}

impl Default for SessionLiveness {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionLiveness {
    /// A live session.
    pub fn new() -> Self {
        SessionLiveness {
            tx: watch::channel(Liveness::Live).0,
        }
    }

    /// A receiver that follows this session.
    pub fn subscribe(&self) -> watch::Receiver<Liveness> {
        self.tx.subscribe()
    }

    /// The session's liveness now.
    pub fn current(&self) -> Liveness {
        self.tx.borrow().clone()
    }

    /// True once the session is lost.
    pub fn is_lost(&self) -> bool {
        matches!(*self.tx.borrow(), Liveness::Lost(_))
    }

    /// `Live` → `Suspended`: the server stopped answering, its locks may or
    /// may not be held. True if this call changed it.
    pub fn suspend(&self) -> bool {
        self.tx.send_if_modified(|l| {
            let change = *l == Liveness::Live;
            if change {
                *l = Liveness::Suspended;
            }
            change
        })
    }

    /// `Suspended` → `Live`: the server answered again. True if this call
    /// changed it.
    pub fn recover(&self) -> bool {
        self.tx.send_if_modified(|l| {
            let change = *l == Liveness::Suspended;
            if change {
                *l = Liveness::Live;
            }
            change
        })
    }

    /// → `Lost` for `why`, once: true if this call lost it (a later call
    /// keeps the first reason).
    pub fn lose(&self, why: &str) -> bool {
        self.tx.send_if_modified(|l| {
            if matches!(l, Liveness::Lost(_)) {
                false
            } else {
                *l = Liveness::Lost(why.to_string());
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_suspended_alternate_and_lost_is_final_and_first() {
        let s = SessionLiveness::new();
        let rx = s.subscribe();
        assert!(!s.recover(), "a live session does not recover");
        assert!(s.suspend());
        assert!(!s.suspend());
        assert_eq!(*rx.borrow(), Liveness::Suspended);
        assert!(s.recover());
        assert_eq!(s.current(), Liveness::Live);
        assert!(s.lose("first"));
        assert!(!s.lose("second"));
        assert!(!s.suspend() && !s.recover());
        assert_eq!(*rx.borrow(), Liveness::Lost("first".into()));
        assert!(s.clone().is_lost());
    }
}
