//! The keeper of one session: proves it alive, and says when it is not.
//!
//! The server ends a session it has not heard from for the session timeout
//! (`idle_session_timeout`, `wait_timeout`), freeing its locks. Every
//! statement the server answers is proof of life: it heard from the
//! session no earlier than when the statement was sent (plus the time the
//! server spent on it). A session that holds locks is pinged whenever it
//! has had no such proof for `session_ping`; an idle one every third of
//! the timeout, and it is closed once unused for [`IDLE_CLOSE`].
//!
//! With no proof for three pings (at most half the timeout) the session is
//! `Suspended`: its locks may still be held, or not. Once the timeout, less
//! the core's drift allowance ([`valid_until`]), has passed since the last
//! proof, it is `Lost`: no later than the server can have ended it, so its
//! holders hear of the loss before anyone else can take their locks. A
//! ping that finds the session ended (terminated by an administrator,
//! killed, the server restarted) loses it at once.

use std::sync::Weak;
use std::time::{Duration, Instant};

use distlock_core::validity::valid_until;

use super::connection::{Failure, Session};
use super::pool::Sessions;
use crate::config::SessionSettings;

/// How long a session that holds nothing stays open unused.
pub(crate) const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// Keeps `session` (of `sessions`) until it ends or is dropped.
pub(crate) async fn keep(
    session: Weak<Session>,
    sessions: Weak<Sessions>,
    settings: SessionSettings,
) {
    let ping = settings.ping();
    let timeout = settings.timeout;
    let suspend_after = settings.suspend_after();
    loop {
        let Some(s) = session.upgrade() else {
            return;
        };
        match next(&s, ping, timeout, suspend_after) {
            Step::End(why) => {
                if let Some(why) = why {
                    s.lose(&why);
                }
                s.close_now();
                if let Some(sessions) = sessions.upgrade() {
                    sessions.forget(&s);
                }
                return;
            }
            Step::Ping {
                suspend_at,
                lost_at,
            } => {
                let ping = s.ping(None);
                tokio::pin!(ping);
                let mut suspended = false;
                loop {
                    tokio::select! {
                        pinged = &mut ping => {
                            if let Err(Failure::Gone(why)) = pinged {
                                tracing::debug!(session = s.id(), reason = why, "distlock.sql.session_ping_failed");
                            }
                            break;
                        }
                        () = tokio::time::sleep_until(suspend_at.into()), if !suspended => {
                            s.suspend();
                            suspended = true;
                        }
                        () = tokio::time::sleep_until(lost_at.into()) => break,
                    }
                }
            }
            Step::Sleep(until) => {
                drop(s);
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
}

/// What the keeper does next.
enum Step {
    /// The session ends (lost for this reason, or closed quietly).
    End(Option<String>),
    /// Ping it now: it is suspended at `suspend_at`, lost at `lost_at`,
    /// unless the server answers before.
    Ping {
        /// When it is reported `Suspended` without an answer.
        suspend_at: Instant,
        /// When it is lost without an answer.
        lost_at: Instant,
    },
    /// Look again then.
    Sleep(Instant),
}

/// Decides the keeper's next step for `s`.
fn next(s: &Session, ping: Duration, timeout: Duration, suspend_after: Duration) -> Step {
    let now = Instant::now();
    if s.is_gone() {
        return Step::End(None);
    }
    let look_again = now + ping;
    if s.is_blocking() {
        // A waiting statement: the server does not count the session idle.
        return Step::Sleep(look_again);
    }
    let contact = s.contact();
    let lost_at = valid_until(contact, timeout);
    if now >= lost_at {
        return Step::End(Some(format!(
            "no answer from the database for the session timeout ({timeout:?}): the server \
             has ended the session, or will before anyone else can take its locks"
        )));
    }
    if s.retire_if_unused(IDLE_CLOSE) {
        tracing::debug!(session = s.id(), "distlock.sql.session_closed_unused");
        return Step::End(None);
    }
    let idle = s.is_idle();
    let suspend_at = contact + suspend_after;
    if !idle && now >= suspend_at {
        s.suspend();
    }
    let due = contact + if idle { timeout / 3 } else { ping };
    if now >= due {
        return Step::Ping {
            suspend_at: if idle { lost_at } else { suspend_at },
            lost_at,
        };
    }
    let mut wake = due.min(lost_at).min(look_again);
    if !idle && now < suspend_at {
        wake = wake.min(suspend_at);
    }
    Step::Sleep(wake)
}
