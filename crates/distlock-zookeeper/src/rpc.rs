//! One request to the ensemble: how long it may take, and what its failure
//! says about the session.

use std::future::Future;
use std::time::Instant;

use distlock_core::waiting::request_bound;
use distlock_core::Liveness;

use zookeeper_client as zk;

use crate::error::session_ended;
use crate::session::Session;

/// Runs one request bounded by the request timeout; see [`call_until`].
pub(crate) async fn call<T>(
    session: &Session,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    call_until(session, None, request).await
}

/// Runs one request bounded by the session's request timeout cut to the
/// caller's deadline ([`request_bound`]; a request that runs out of time
/// fails with `Timeout`). Terminal session errors mark the session lost.
pub(crate) async fn call_until<T>(
    session: &Session,
    deadline: Option<Instant>,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    let result =
        match tokio::time::timeout(request_bound(session.request_timeout, deadline), request).await
        {
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

/// [`call_until`], ended at once with `SessionExpired` when the session is
/// declared lost meanwhile. For the reads of a waiting acquire: a request
/// sent while the connection is down waits for a reconnect, and once this
/// client gave the session up the acquire should start over on a new one
/// rather than sit out the request timeout.
pub(crate) async fn call_while_live<T>(
    session: &Session,
    deadline: Option<Instant>,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    let mut live = session.liveness();
    let lost = async move {
        loop {
            if matches!(*live.borrow_and_update(), Liveness::Lost(_)) {
                return;
            }
            if live.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        answer = call_until(session, deadline, request) => answer,
        () = lost => Err(zk::Error::SessionExpired),
    }
}
