//! How etcd client errors become [`LockError`]s, and what a failed request
//! says about the member it went to.

use distlock_core::LockError;

/// The backend name leases and errors carry.
pub(crate) const BACKEND: &str = "etcd";

/// What a failed request tells about the endpoint it went to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made: the request was never sent.
    NotSent,
    /// The endpoint (or its member's view of the cluster) is unusable; the
    /// request may or may not have been applied.
    Endpoint,
    /// An answer from a working member (compare failed, permission denied…).
    Answer,
}

/// Sorts a client error into a [`Failure`].
pub(crate) fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) => Failure::Endpoint,
        E::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                tonic::Code::Unavailable if message.contains("connect") => Failure::NotSent,
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown => Failure::Endpoint,
                _ => Failure::Answer,
            }
        }
        _ => Failure::Answer,
    }
}

/// Whether the server refused the credentials.
pub(crate) fn is_auth_failure(e: &etcd_client::Error) -> bool {
    let s = e.to_string();
    s.contains("authentication failed") || s.contains("invalid user ID or password")
}

/// Whether the server answered that an etcd lease does not exist (it
/// expired, or was revoked).
pub(crate) fn is_lease_not_found(e: &LockError) -> bool {
    match e {
        LockError::Backend { source, .. } => source.to_string().contains("lease not found"),
        _ => false,
    }
}

/// Turns a client error into a `LockError`: transport trouble and a cluster
/// without a leader are `Unavailable`, the rest `Backend` with context.
pub(crate) fn map_err(context: &str, e: etcd_client::Error) -> LockError {
    match classify(&e) {
        Failure::NotSent | Failure::Endpoint => {
            let detail = match &e {
                etcd_client::Error::GRpcStatus(s) => with_causes(s.message(), s),
                other => other.to_string(),
            };
            LockError::unavailable(BACKEND, format!("{context}: {detail}"))
        }
        Failure::Answer => LockError::backend(BACKEND, context.to_string(), e),
    }
}

/// `message`, followed by what caused `status` (a TLS alert, a refused
/// connection), which the status message alone does not say.
fn with_causes(message: &str, status: &tonic::Status) -> String {
    let mut detail = message.to_string();
    let mut cause = std::error::Error::source(status);
    while let Some(c) = cause {
        let text = c.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        cause = c.source();
    }
    detail
}
