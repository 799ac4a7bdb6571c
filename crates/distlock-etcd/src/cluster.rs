//! Reaching the cluster: one client per endpoint, failing over between them.
//!
//! `etcd-client`'s own multi-endpoint channel keeps sending requests to a
//! member that is down, so a stopped node would fail a share of all requests.
//! Instead every request goes to one *active* endpoint; a transport failure
//! moves the active endpoint on to the next one. A request that certainly
//! never left (the connection could not be made) is retried at once on the
//! next endpoint; anything that may have reached a server is reported to the
//! caller instead, so no operation is ever applied twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use distlock_core::sync::lock;
use distlock_core::{LockError, Result};
use etcd_client::{Client, ConnectOptions};

use crate::errors::{classify, is_auth_failure, map_err, Failure, BACKEND};

/// One lazily connected client per endpoint, and which one is in use.
pub(crate) struct Cluster {
    urls: Vec<String>,
    options: ConnectOptions,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// The cluster as shown in errors (no password).
    shown: String,
    user: Option<String>,
    clients: Mutex<Vec<Option<Client>>>,
    active: AtomicUsize,
}

impl Cluster {
    pub(crate) fn new(
        urls: Vec<String>,
        options: ConnectOptions,
        connect_timeout: Duration,
        request_timeout: Duration,
        shown: String,
        user: Option<String>,
    ) -> Self {
        let clients = Mutex::new(vec![None; urls.len()]);
        Cluster {
            urls,
            options,
            connect_timeout,
            request_timeout,
            shown,
            user,
            clients,
            active: AtomicUsize::new(0),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The client of the active endpoint (connecting it if needed), moving
    /// on to the next endpoint when one cannot be connected.
    ///
    /// Round trips: none with an existing client; connecting one with
    /// credentials costs an Authenticate.
    pub(crate) async fn pick(&self) -> Result<(usize, Client)> {
        let mut last = None;
        for _ in 0..self.urls.len() {
            let i = self.active.load(Ordering::SeqCst) % self.urls.len();
            if let Some(c) = lock(&self.clients)[i].clone() {
                return Ok((i, c));
            }
            match self.connect(i).await {
                Ok(c) => return Ok((i, c)),
                // Bad credentials are bad on every member.
                Err(e @ LockError::InvalidConfig { .. }) => return Err(e),
                Err(e) => {
                    last = Some(e);
                    self.failed(i);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            LockError::unavailable(BACKEND, format!("no endpoint of `{}` answers", self.shown))
        }))
    }

    /// Connects endpoint `i`'s client, within the connect timeout, and keeps
    /// it for the next requests.
    async fn connect(&self, i: usize) -> Result<Client> {
        let url = self.urls[i].as_str();
        let connecting = Client::connect([url], Some(self.options.clone()));
        let client = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.connect_error(url, e)),
            Err(_) => {
                return Err(LockError::unavailable(
                    BACKEND,
                    format!("no answer from {url} within {:?}", self.connect_timeout),
                ))
            }
        };
        lock(&self.clients)[i] = Some(client.clone());
        Ok(client)
    }

    /// Why connecting to `url` failed: a configuration mistake (credentials)
    /// or an endpoint that does not answer.
    fn connect_error(&self, url: &str, e: etcd_client::Error) -> LockError {
        if is_auth_failure(&e) {
            return self.auth_error();
        }
        if e.to_string().contains("authentication is not enabled") {
            return LockError::invalid_config(format!(
                "credentials were given for `{}`, but authentication is not enabled on that etcd cluster",
                self.shown
            ));
        }
        tracing::debug!(endpoint = url, error = %e, "distlock.etcd.connect_failed");
        map_err(&format!("connecting to {url}"), e)
    }

    /// Moves off endpoint `i` (if it is still the active one).
    pub(crate) fn failed(&self, i: usize) {
        let next = (i + 1) % self.urls.len();
        if self
            .active
            .compare_exchange(i, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::debug!(from = %self.urls[i], to = %self.urls[next], "distlock.etcd.failover");
        }
    }

    /// Runs one request on the active endpoint, bounded by the request
    /// timeout. A request that could not be sent is retried on the next
    /// endpoint (once per endpoint); any other endpoint failure moves the
    /// active endpoint on and is returned.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_inner(what, false, request).await
    }

    /// Like [`call`](Self::call), for requests that change nothing (reads,
    /// compare-only transactions): those are also retried on the next
    /// endpoint after a failure that may have reached the server.
    pub(crate) async fn read<T, F, Fut>(&self, what: &str, request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_inner(what, true, request).await
    }

    async fn call_inner<T, F, Fut>(&self, what: &str, idempotent: bool, mut request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (i, client) = self.pick().await?;
            match tokio::time::timeout(self.request_timeout, request(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let failure = classify(&e);
                    if failure != Failure::Answer {
                        self.failed(i);
                    }
                    let retry =
                        failure == Failure::NotSent || (idempotent && failure == Failure::Endpoint);
                    if retry && attempts < self.urls.len() {
                        continue;
                    }
                    if is_auth_failure(&e) {
                        return Err(self.auth_error());
                    }
                    return Err(map_err(what, e));
                }
                Err(_) => {
                    self.failed(i);
                    return Err(LockError::unavailable(
                        BACKEND,
                        format!("{what}: no answer within {:?}", self.request_timeout),
                    ));
                }
            }
        }
    }

    fn auth_error(&self) -> LockError {
        LockError::invalid_config(format!(
            "etcd authentication failed for user `{}` at `{}`: wrong user name or password",
            self.user.as_deref().unwrap_or(""),
            self.shown
        ))
    }
}
