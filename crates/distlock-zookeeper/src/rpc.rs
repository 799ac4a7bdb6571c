//! One request to the ensemble: how long it may take, and what its failure
//! says about the session.

use std::future::Future;
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use crate::error::session_ended;
use crate::session::Session;

/// The least time a request gets, even when the caller's wait is over (a
/// try-lock still needs its round trips).
pub(crate) const RPC_FLOOR: Duration = Duration::from_secs(1);

/// How long one request may take: the session's request timeout (by default
/// the session timeout: an answer that takes longer means the session cannot
/// be relied on anyway), cut to the caller's deadline but not below
/// [`RPC_FLOOR`].
fn rpc_bound(session: &Session, deadline: Option<Instant>) -> Duration {
    let limit = session.request_timeout;
    let floor = RPC_FLOOR.min(limit);
    match deadline {
        None => limit,
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .max(floor)
            .min(limit),
    }
}

/// Runs one request bounded by the request timeout; see [`call_until`].
pub(crate) async fn call<T>(
    session: &Session,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    call_until(session, None, request).await
}

/// Runs one request bounded by [`rpc_bound`] (a request that runs out of time
/// fails with `Timeout`). Terminal session errors mark the session lost.
pub(crate) async fn call_until<T>(
    session: &Session,
    deadline: Option<Instant>,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    let result = match tokio::time::timeout(rpc_bound(session, deadline), request).await {
        Ok(r) => r,
        Err(_) => Err(zk::Error::Timeout),
    };
    if let Err(e) = &result {
        if session_ended(e) {
            session.mark_lost(&e.to_string());
        }
    }
    result
}
