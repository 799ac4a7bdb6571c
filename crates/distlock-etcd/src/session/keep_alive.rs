//! The task that keeps one etcd lease alive.
//!
//! Every `ttl / 3` it sends a keep-alive on one stream and waits for the
//! answer. No answer within `ttl / 3`, or a broken stream: the lease is
//! `Suspended` and a new stream is opened (on the next endpoint). Its
//! `alive_until` passing, or the server answering that the lease is gone:
//! the task ends with the reason the lease is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;
use tokio::time::timeout_at;

use crate::cluster::Cluster;
use crate::session::lease::LeaseGen;

/// Why the keep-alive task ended.
pub(crate) enum Ended {
    /// The lease is lost, for this reason.
    Lost(String),
    /// The session was dropped: nobody needs the lease any more.
    Shutdown,
}

/// Keeps `gen` (granted for `ttl`) alive until it is lost or `shutdown`
/// ends (its sender, the session, is dropped).
///
/// Round trips: one keep-alive message every `ttl / 3`, plus a stream
/// opening (one keep-alive) after each failure.
pub(crate) async fn keep_alive(
    cluster: Arc<Cluster>,
    gen: Arc<LeaseGen>,
    ttl: Duration,
    mut shutdown: watch::Receiver<()>,
) -> Ended {
    let keeper = Keeper {
        cluster,
        gen,
        ttl,
        interval: ttl / 3,
    };
    tokio::select! {
        _ = shutdown.changed() => Ended::Shutdown,
        why = keeper.run() => Ended::Lost(why),
    }
}

const LAPSED: &str = "keep-alives failed for the whole lease ttl";
const GONE: &str = "the server says the lease is gone";
const EXPIRED: &str = "the server says the lease expired";

struct Keeper {
    cluster: Arc<Cluster>,
    gen: Arc<LeaseGen>,
    ttl: Duration,
    interval: Duration,
}

/// What opening a keep-alive stream gave.
enum Opened {
    /// A stream whose first keep-alive, sent at `sent`, was answered.
    Stream {
        endpoint: usize,
        sent: Instant,
        keeper: LeaseKeeper,
        stream: Box<LeaseKeepAliveStream>,
    },
    /// The server does not know the lease.
    Gone,
    /// No stream: move off `endpoint` (if known), and `pause` before the
    /// next try when the endpoint answered with an error (not a timeout).
    Failed {
        endpoint: Option<usize>,
        pause: bool,
    },
}

/// How a working stream ended.
enum StreamEnd {
    /// The lease is lost, for this reason.
    Lost(&'static str),
    /// The stream broke or went silent: open another one.
    Broken,
}

impl Keeper {
    /// Opens streams and keeps the lease alive on each until the lease is
    /// lost; returns why.
    async fn run(&self) -> String {
        loop {
            if Instant::now() >= self.gen.alive_until() {
                return LAPSED.to_string();
            }
            match self.open().await {
                Opened::Stream {
                    endpoint,
                    sent,
                    keeper,
                    stream,
                } => {
                    self.gen.kept_alive(sent, self.ttl);
                    match self.keep(sent, keeper, stream).await {
                        StreamEnd::Lost(why) => return why.to_string(),
                        StreamEnd::Broken => self.endpoint_failed(Some(endpoint)),
                    }
                }
                Opened::Gone => return GONE.to_string(),
                Opened::Failed { endpoint, pause } => {
                    self.endpoint_failed(endpoint);
                    if pause {
                        self.pause().await;
                    }
                }
            }
        }
    }

    /// Opens a keep-alive stream on the active endpoint (its first
    /// keep-alive is sent and answered inside), giving it at most one
    /// interval and never past `alive_until`.
    async fn open(&self) -> Opened {
        let sent = Instant::now();
        let until = (sent + self.interval).min(self.gen.alive_until()).into();
        let (endpoint, client) = match timeout_at(until, self.cluster.pick()).await {
            Ok(Ok(picked)) => picked,
            Ok(Err(e)) => {
                self.log_failure(&e.to_string());
                return Opened::Failed {
                    endpoint: None,
                    pause: true,
                };
            }
            Err(_) => {
                return Opened::Failed {
                    endpoint: None,
                    pause: false,
                }
            }
        };
        let mut leases = client.lease_client();
        match timeout_at(until, leases.keep_alive(self.gen.id())).await {
            Ok(Ok((keeper, stream))) => Opened::Stream {
                endpoint,
                sent,
                keeper,
                stream: Box::new(stream),
            },
            Ok(Err(e)) if e.to_string().contains("lease not found") => Opened::Gone,
            Ok(Err(e)) => {
                self.log_failure(&e.to_string());
                Opened::Failed {
                    endpoint: Some(endpoint),
                    pause: true,
                }
            }
            Err(_) => Opened::Failed {
                endpoint: Some(endpoint),
                pause: false,
            },
        }
    }

    /// Every interval after `last_sent`: one keep-alive on the stream, and
    /// its answer within an interval.
    async fn keep(
        &self,
        mut last_sent: Instant,
        mut keeper: LeaseKeeper,
        mut stream: Box<LeaseKeepAliveStream>,
    ) -> StreamEnd {
        loop {
            tokio::time::sleep_until((last_sent + self.interval).into()).await;
            let sent = Instant::now();
            last_sent = sent;
            if keeper.keep_alive().await.is_err() {
                return StreamEnd::Broken;
            }
            let answer_by = (sent + self.interval).min(self.gen.alive_until());
            match timeout_at(answer_by.into(), stream.message()).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    let granted = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(0));
                    self.gen.kept_alive(sent, granted);
                }
                Ok(Ok(Some(_))) => return StreamEnd::Lost(EXPIRED),
                // Broken stream or no answer in time.
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return StreamEnd::Broken,
            }
        }
    }

    /// Keep-alives go unanswered: suspended, and the next stream goes to
    /// the next endpoint.
    fn endpoint_failed(&self, endpoint: Option<usize>) {
        if let Some(i) = endpoint {
            self.cluster.failed(i);
        }
        self.gen.suspended();
    }

    /// A short pause before reconnecting after an error answer.
    async fn pause(&self) {
        let pause = Instant::now() + Duration::from_millis(100).min(self.interval);
        tokio::time::sleep_until(pause.min(self.gen.alive_until()).into()).await;
    }

    fn log_failure(&self, error: &str) {
        tracing::debug!(
            lease = %format!("{:x}", self.gen.id()),
            error,
            "distlock.etcd.keepalive_failed"
        );
    }
}
