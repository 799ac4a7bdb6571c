//! One pub/sub connection of the notifier, and the events it delivers: to
//! one server, classic channels on a RESP2 pub/sub connection; to a Redis
//! Cluster, sharded channels (`SSUBSCRIBE`, each on its channel's shard) on
//! a RESP3 cluster connection that pushes the messages.

use futures::stream::{BoxStream, StreamExt};
use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};

use super::EVERYONE;
use crate::instance::Instance;

/// Where subscriptions are sent.
pub(super) enum Sink {
    /// One server's pub/sub connection.
    Plain(PubSubSink),
    /// A cluster connection: sharded channels.
    Sharded(ClusterConnection),
}

impl Sink {
    /// Subscribes `channel` (one round trip).
    pub(super) async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Sink::Plain(sink) => sink.subscribe(channel).await,
            Sink::Sharded(conn) => conn.ssubscribe(channel).await,
        }
    }

    /// Unsubscribes `channel` (one round trip).
    pub(super) async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Sink::Plain(sink) => sink.unsubscribe(channel).await,
            Sink::Sharded(conn) => conn.sunsubscribe(channel).await,
        }
    }
}

/// What a connection delivers; its stream ends when the connection (or, on
/// a cluster, one of its node connections) is lost.
pub(super) enum Event {
    /// A message published on a subscribed channel.
    Message { channel: String, payload: String },
    /// The server ended a subscription: on a cluster, the channel's slot
    /// moved to another shard (or our own unsubscribe was confirmed).
    Dropped(String),
}

/// Opens a pub/sub connection to `instance`.
///
/// # Cancel safety
///
/// Cancel safe: a connection not yet returned is dropped with the future.
pub(super) async fn open(instance: &Instance) -> Result<(Sink, BoxStream<'static, Event>), ()> {
    if let Some(nodes) = instance.nodes() {
        let (pushes, received) = tokio::sync::mpsc::unbounded_channel();
        let conn = nodes.subscriber(pushes).await.map_err(|_| ())?;
        let events = futures::stream::unfold(received, |mut received| async move {
            loop {
                let push = received.recv().await?;
                if let Some(event) = event_of(push)? {
                    return Some((event, received));
                }
            }
        });
        return Ok((Sink::Sharded(conn), events.boxed()));
    }
    let client = instance.client().await.map_err(|_| ())?;
    let (sink, stream) = client.get_async_pubsub().await.map_err(|_| ())?.split();
    let events = stream.map(|msg| Event::Message {
        channel: msg.get_channel_name().to_string(),
        payload: msg.get_payload().unwrap_or_else(|_| EVERYONE.to_string()),
    });
    Ok((Sink::Plain(sink), events.boxed()))
}

/// A pushed message as an event: `None` when the connection was lost,
/// `Some(None)` for a push that says nothing to the waiters (a
/// subscription confirmed).
fn event_of(push: PushInfo) -> Option<Option<Event>> {
    let text = |v: Option<&Value>| match v {
        Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match push.kind {
        PushKind::Disconnection => None,
        PushKind::SMessage | PushKind::Message => {
            let channel = text(push.data.first());
            let payload = text(push.data.get(1)).unwrap_or_else(|| EVERYONE.to_string());
            Some(channel.map(|channel| Event::Message { channel, payload }))
        }
        PushKind::SUnsubscribe | PushKind::Unsubscribe => {
            Some(text(push.data.first()).map(Event::Dropped))
        }
        _ => Some(None),
    }
}
