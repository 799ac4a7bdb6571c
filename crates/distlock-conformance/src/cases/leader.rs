//! Leader election: one leader at a time, terms (fencing tokens) that rise,
//! identities stored with the hold, observers that see every leader in
//! order, and a killed leader replaced by a waiting candidate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distlock_core::{
    AcquireOptions, DistributedLock, Leader, LeaderObserver, Leadership, LockClient, LockError,
    LockName, Wait, MAX_LABEL_LEN, OBSERVE_POLL,
};

use super::support::{
    assert_history, clients, joined, long_ttl, must, opts, short_ttl, skip, unique_name,
};
use crate::child::{report, ChildProcess};
use crate::harness::Harness;
use crate::history::{History, Hold};

/// Candidates campaigning at once.
const CANDIDATES: usize = 4;
/// Terms each candidate wins.
const TERMS: usize = 5;
/// Leaders in turn in the observer case.
const LEADERS: usize = 4;
/// How long an observer may take to report a change it can see.
const SEEN_WITHIN: Duration = Duration::from_secs(15);
/// An observer's poll interval where the backend claims `watch`: so long
/// that only change notices can make it report in time.
const NOTICES_ONLY: Duration = Duration::from_secs(3600);

/// Identities with the characters a backend might trip on (separators,
/// quotes, braces, non-ASCII), one of the longest allowed among them.
fn identities() -> Vec<String> {
    let longest = format!("{}é", "n".repeat(MAX_LABEL_LEN - 2));
    vec![
        "node-1".into(),
        "node:2 ünï 🔒".into(),
        "'{three}' \"x\" ; %".into(),
        longest,
    ]
}

/// A client over `backend` whose guards use `ttl`.
fn client(backend: &Arc<dyn DistributedLock>, ttl: Duration) -> LockClient {
    LockClient::with_defaults(backend.clone(), AcquireOptions::new(ttl))
}

/// A campaign that must win within `wait`.
async fn must_elect(
    case: &str,
    c: &LockClient,
    name: &LockName,
    identity: &str,
    wait: Duration,
) -> Leadership {
    let o = c.defaults().with_wait(Wait::For(wait));
    match c.elect_with(name, identity, &o).await {
        Ok(leadership) => leadership,
        Err(e) => panic!("[{case}] the campaign of `{identity}` for `{name}` failed: {e}"),
    }
}

/// Without `labels`, a campaign is `Unsupported`.
async fn refuses_elections(case: &str, c: &Arc<dyn DistributedLock>) {
    let name = unique_name("no-labels");
    let r = c
        .elect(&name, "node-1", &opts(long_ttl(&c.capabilities())))
        .await;
    assert!(
        matches!(r, Err(LockError::Unsupported { .. })),
        "[{case}] backend does not claim `labels` but a campaign gave {r:?} instead of Unsupported"
    );
    skip(case, "backend stores no holder labels (labels = false)");
}

/// While `leadership` leads, the status names it and its term.
async fn assert_status_names(case: &str, c: &Arc<dyn DistributedLock>, leadership: &Leadership) {
    let name = leadership.name();
    let status = must(case, "status of an election", c.status(&name).await);
    assert!(
        status.held && status.holder.as_deref() == Some(leadership.identity()),
        "[{case}] backend claims `labels` but while `{}` led `{name}` the status read {:?} (held {})",
        leadership.identity(),
        status.holder,
        status.held
    );
    assert_eq!(
        status.fencing_token,
        Some(leadership.term()),
        "[{case}] backend claims `labels` but the status of `{name}` does not show the leader's term"
    );
}

/// Bad identities are refused before anything is sent.
async fn assert_identities_checked(case: &str, c: &Arc<dyn DistributedLock>) {
    let name = unique_name("bad-identity");
    let o = opts(long_ttl(&c.capabilities()));
    for (bad, why) in [
        (String::new(), "an empty identity"),
        ("n".repeat(MAX_LABEL_LEN + 1), "an identity over the limit"),
        ("a\0b".to_string(), "an identity with NUL"),
    ] {
        let r = c.elect(&name, &bad, &o).await;
        assert!(
            matches!(r, Err(LockError::InvalidConfig { .. })),
            "[{case}] {why} gave {r:?}, not InvalidConfig"
        );
    }
}

/// Candidates campaign at once, over and over, each resigning after a
/// short term: two never lead at once, every term is above the one
/// before, and while one leads the status names it and its term.
pub async fn one_leader_at_a_time_under_contention(h: &dyn Harness) {
    const CASE: &str = "one_leader_at_a_time_under_contention";
    let all = clients(h, CANDIDATES).await;
    let caps = all[0].capabilities();
    if !caps.labels {
        return refuses_elections(CASE, &all[0]).await;
    }
    assert_identities_checked(CASE, &all[0]).await;
    let name = unique_name("leader-contention");
    let history = History::new();
    let ids = identities();
    let tasks: Vec<_> = all
        .into_iter()
        .enumerate()
        .map(|(i, backend)| {
            let (name, history, identity) = (name.clone(), history.clone(), ids[i].clone());
            let ttl = long_ttl(&caps);
            tokio::spawn(async move {
                let c = client(&backend, ttl);
                for _ in 0..TERMS {
                    let leadership =
                        must_elect(CASE, &c, &name, &identity, Duration::from_secs(60)).await;
                    let start = Instant::now();
                    assert_status_names(CASE, &backend, &leadership).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let end = Instant::now();
                    let term = leadership.term().get();
                    must(CASE, "a resignation", leadership.resign().await);
                    history.record(Hold {
                        client: i,
                        fencing: term,
                        start,
                        end,
                    });
                }
            })
        })
        .collect();
    for task in tasks {
        joined(CASE, task.await);
    }
    assert_eq!(history.len(), CANDIDATES * TERMS, "[{CASE}] terms missing");
    assert_history(CASE, &caps, &history);
}

/// The observer's next report of a leader (skipping vacancies), which must
/// come within [`SEEN_WITHIN`].
async fn next_leader(case: &str, observer: &mut LeaderObserver, watching: bool) -> Leader {
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, observer.changed()).await {
            Ok(Ok(Some(leader))) => return leader,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => panic!("[{case}] the observer failed: {e}"),
            Err(_) if watching => panic!(
                "[{case}] backend claims `watch` but an observer reading only on change notices reported no new leader of `{}` within {SEEN_WITHIN:?}",
                observer.name()
            ),
            Err(_) => panic!(
                "[{case}] an observer polling every {OBSERVE_POLL:?} reported no new leader of `{}` within {SEEN_WITHIN:?}",
                observer.name()
            ),
        }
    }
}

/// Leaders follow one another, each leading until an observer — reading
/// only on change notices where the backend claims `watch` — reported it:
/// the observer reports every one, in order, with its identity and its
/// term, terms rising; then the vacancy.
pub async fn observers_see_every_leader_in_order(h: &dyn Harness) {
    const CASE: &str = "observers_see_every_leader_in_order";
    let all = clients(h, LEADERS + 1).await;
    let caps = all[0].capabilities();
    if !caps.labels {
        return refuses_elections(CASE, &all[0]).await;
    }
    let ttl = long_ttl(&caps);
    let name = unique_name("observed");
    let poll = if caps.watch {
        NOTICES_ONLY
    } else {
        OBSERVE_POLL
    };
    let watcher = client(&all[0], ttl);
    let mut observer = must(CASE, "an observer", watcher.observe_with(&name, poll));
    let first = must(CASE, "the first report", observer.changed().await);
    assert_eq!(first, None, "[{CASE}] a fresh election reads as led");
    let mut last_term = None;
    for (i, identity) in identities().into_iter().enumerate().take(LEADERS) {
        let c = client(&all[i + 1], ttl);
        let leadership = must_elect(CASE, &c, &name, &identity, Duration::from_secs(30)).await;
        let seen = next_leader(CASE, &mut observer, caps.watch).await;
        let expected = Leader {
            identity: Some(identity.clone()),
            term: leadership.term(),
        };
        assert_eq!(seen, expected, "[{CASE}] leader {i} was reported wrongly");
        assert!(
            last_term < Some(seen.term),
            "[{CASE}] the term went from {last_term:?} to {}",
            seen.term
        );
        last_term = Some(seen.term);
        must(CASE, "a resignation", leadership.resign().await);
    }
    let vacant = tokio::time::timeout(SEEN_WITHIN, observer.changed()).await;
    assert!(
        matches!(vacant, Ok(Ok(None))),
        "[{CASE}] after the last resignation the observer reported {vacant:?}, not the vacancy"
    );
}

/// Environment variable that turns a test process into the child leader
/// of [`leader_is_replaced_when_killed`] (its value: the election's name).
const CHILD_LEADER_ENV: &str = "DISTLOCK_CONFORMANCE_CHILD_LEADER";
/// The line the child leader prints with its term.
const LEADS_MARK: &str = "DISTLOCK-CHILD-LEADS";

/// A child process leads and is SIGKILLed while a candidate here waits:
/// the candidate leads within the backend's liveness bound with a higher
/// term, and an observer reports the child, then the candidate.
pub async fn leader_is_replaced_when_killed(h: &dyn Harness, test_path: &str) {
    const CASE: &str = "leader_is_replaced_when_killed";
    if let Ok(name) = std::env::var(CHILD_LEADER_ENV) {
        return child_leads(h, &name).await;
    }
    let all = clients(h, 2).await;
    let caps = all[0].capabilities();
    if !caps.cross_process {
        return skip(CASE, "backend is in-process only (cross_process = false)");
    }
    if !caps.labels {
        return refuses_elections(CASE, &all[0]).await;
    }
    let ttl = short_ttl(&caps);
    let name = unique_name("killed-leader");
    let mut observer = must(CASE, "an observer", client(&all[0], ttl).observe(&name));
    let mut child =
        ChildProcess::spawn(CASE, test_path, &[(CHILD_LEADER_ENV, name.as_str())], false);
    let child_term = child.number(LEADS_MARK).await;
    let seen = next_leader(CASE, &mut observer, false).await;
    assert_eq!(
        (seen.identity.as_deref(), seen.term.get()),
        (Some("child"), child_term),
        "[{CASE}] the observer did not report the child leading"
    );
    let candidate = client(&all[1], ttl);
    let o = opts(ttl);
    let r = candidate.try_elect_with(&name, "candidate", &o).await;
    assert!(
        matches!(r, Ok(None)),
        "[{CASE}] a second campaign beside the child leader gave {r:?}"
    );
    let bound = h.liveness_bound(ttl) + Duration::from_secs(5);
    let campaign = {
        let (candidate, name) = (candidate.clone(), name.clone());
        tokio::spawn(async move { must_elect(CASE, &candidate, &name, "candidate", bound).await })
    };
    child.kill().await;
    let killed_at = Instant::now();
    let leadership = joined(CASE, campaign.await);
    println!(
        "[{CASE}] a new leader {:?} after SIGKILL (bound {bound:?})",
        killed_at.elapsed()
    );
    assert!(
        leadership.term().get() > child_term,
        "[{CASE}] the new leader's term {} is not above the killed leader's {child_term}",
        leadership.term()
    );
    let seen = next_leader(CASE, &mut observer, false).await;
    assert_eq!(
        seen,
        Leader {
            identity: Some("candidate".into()),
            term: leadership.term()
        },
        "[{CASE}] the observer did not report the new leader"
    );
    must(CASE, "a resignation", leadership.resign().await);
}

/// The child's part: lead, say so with the term, lead until killed.
async fn child_leads(h: &dyn Harness, name: &str) {
    const CASE: &str = "leader_is_replaced_when_killed";
    let backend = h.client().await;
    let ttl = short_ttl(&backend.capabilities());
    let name = must(CASE, "the child's election name", LockName::new(name));
    let leadership = must_elect(
        CASE,
        &client(&backend, ttl),
        &name,
        "child",
        Duration::from_secs(30),
    )
    .await;
    report(LEADS_MARK, leadership.term());
    // Lead (kept alive in the background) until killed.
    std::future::pending::<()>().await;
}
