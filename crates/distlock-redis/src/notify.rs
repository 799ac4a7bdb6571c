//! Release notifications: one pub/sub connection per instance per backend
//! client, shared by every waiter of that client.
//!
//! A waiter registers on its lock's release channel under its owner token
//! (one `watch` counter per waiter), and the channel is subscribed on each
//! instance's pub/sub connection. One reader task per connection fans the
//! published messages out: a message names the waiter to wake (the head of
//! the waiters' queue in fair mode), or `*` for every waiter of the channel.
//! The last waiter of a channel to leave unsubscribes it.
//!
//! Connections are made on first use. When one drops (server restart, network
//! cut), its generation changes and every waiter is woken; each then
//! re-subscribes on the next wait and retries at once, since a release may
//! have been published while the connection was down.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use futures::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::watch;

use crate::instance::Instance;

/// After a failed pub/sub connect, how long before trying that instance again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How long a channel stays subscribed after its last waiter left, so a
/// client that waits on the same lock again (the usual pattern under
/// contention) needs no SUBSCRIBE round trip.
const LINGER: Duration = Duration::from_secs(2);

/// The release notifications of one backend client.
pub(crate) struct Notifier {
    shared: Arc<Shared>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("instances", &self.shared.slots.len())
            .field("channels", &lock(&self.shared.channels).len())
            .finish()
    }
}

struct Shared {
    /// `redis` or `redlock`, for the clean-up's logs.
    backend: &'static str,
    channels: Mutex<HashMap<String, Channel>>,
    /// (instance, channel) -> the connection generation it is subscribed under.
    active: Mutex<HashMap<(usize, String), u64>>,
    slots: Vec<Slot>,
    /// Dropped with the notifier: stops the reader tasks.
    shutdown: watch::Sender<()>,
}

/// The waiters of one release channel in this client, by owner token.
#[derive(Default)]
struct Channel {
    waiters: HashMap<String, watch::Sender<Wake>>,
}

/// What woke a waiter: every wake bumps `seq`; a release that handed the
/// lock to this waiter carries the fencing token it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Wake {
    seq: u64,
    granted: Option<u64>,
}

impl Channel {
    /// Handles one release message: `*` wakes everyone, `<owner>` wakes that
    /// waiter, `<owner>:<fence>` tells that waiter the lock is now its own.
    fn wake(&self, message: &str) {
        let bump = |tx: &watch::Sender<Wake>, granted: Option<u64>| {
            tx.send_modify(|w| {
                w.seq = w.seq.wrapping_add(1);
                if granted.is_some() {
                    w.granted = granted;
                }
            })
        };
        if message == EVERYONE {
            self.waiters.values().for_each(|tx| bump(tx, None));
            return;
        }
        let (who, granted) = match message.split_once(':') {
            Some((who, fence)) => (who, fence.parse().ok()),
            None => (message, None),
        };
        if let Some(tx) = self.waiters.get(who) {
            bump(tx, granted);
        }
    }
}

/// The release message that wakes every waiter (no queue, or nobody left in it).
const EVERYONE: &str = "*";

struct Slot {
    instance: Arc<Instance>,
    /// Changes whenever the pub/sub connection is made or lost.
    generation: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    sink: Option<PubSubSink>,
    retry_after: Option<Instant>,
}

impl Shared {
    /// Delivers a release message to the waiters of its channel.
    fn wake(&self, channel: &str, message: &str) {
        if let Some(c) = lock(&self.channels).get(channel) {
            c.wake(message);
        }
    }

    fn wake_all(&self) {
        for c in lock(&self.channels).values() {
            c.wake(EVERYONE);
        }
    }

    /// Subscribes `channel` on instance `index`, connecting first if needed.
    /// Returns the connection generation it is subscribed under.
    async fn subscribe_on(self: &Arc<Self>, index: usize, channel: &str) -> Option<u64> {
        let slot = &self.slots[index];
        if let Some(generation) = self.active_generation(index, channel) {
            return Some(generation);
        }
        let mut state = slot.state.lock().await;
        if state.sink.is_none() {
            if let Some(at) = state.retry_after {
                if Instant::now() < at {
                    return None;
                }
            }
            match slot.instance.client.get_async_pubsub().await {
                Ok(pubsub) => {
                    let (sink, stream) = pubsub.split();
                    state.sink = Some(sink);
                    state.retry_after = None;
                    let generation = slot.generation.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::spawn(read_messages(
                        Arc::downgrade(self),
                        index,
                        generation,
                        stream,
                        self.shutdown.subscribe(),
                    ));
                }
                Err(_) => {
                    state.retry_after = Some(Instant::now() + RECONNECT_PAUSE);
                    return None;
                }
            }
        }
        let generation = slot.generation.load(Ordering::SeqCst);
        let sink = state.sink.as_mut()?;
        sink.subscribe(channel).await.ok()?;
        lock(&self.active).insert((index, channel.to_string()), generation);
        Some(generation)
    }

    /// The generation `channel` is subscribed under on instance `index`, if
    /// it is subscribed on the current connection.
    fn active_generation(&self, index: usize, channel: &str) -> Option<u64> {
        let current = self.slots[index].generation.load(Ordering::SeqCst);
        let active = lock(&self.active);
        match active.get(&(index, channel.to_string())) {
            Some(g) if *g == current => Some(current),
            _ => None,
        }
    }

    /// Unsubscribes `channel` on instance `index` unless a waiter came back.
    async fn unsubscribe_on(&self, index: usize, channel: &str) {
        let slot = &self.slots[index];
        let mut state = slot.state.lock().await;
        // Forget the subscription first, then look for waiters: a waiter
        // registers before it looks at `active`, so either we see it here and
        // keep the subscription, or it finds none and subscribes again (after
        // this lock).
        let key = (index, channel.to_string());
        let was = lock(&self.active).remove(&key);
        if lock(&self.channels).contains_key(channel) {
            if let Some(generation) = was {
                lock(&self.active).insert(key, generation);
            }
            return;
        }
        if was != Some(slot.generation.load(Ordering::SeqCst)) {
            return; // not subscribed on the current connection
        }
        if let Some(sink) = state.sink.as_mut() {
            let _ = sink.unsubscribe(channel).await;
        }
    }
}

/// The reader task of one pub/sub connection.
async fn read_messages(
    shared: Weak<Shared>,
    index: usize,
    generation: u64,
    mut stream: redis::aio::PubSubStream,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(shared) = shared.upgrade() else { return };
                match msg {
                    Some(msg) => {
                        let who: String = msg.get_payload().unwrap_or_else(|_| EVERYONE.to_string());
                        shared.wake(msg.get_channel_name(), &who);
                    }
                    None => {
                        let slot = &shared.slots[index];
                        {
                            let mut state = slot.state.lock().await;
                            if slot.generation.load(Ordering::SeqCst) == generation {
                                state.sink = None;
                                slot.generation.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        tracing::debug!(instance = %slot.instance.label, "distlock.redis.pubsub_lost");
                        shared.wake_all();
                        return;
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Notifier {
    pub(crate) fn new(backend: &'static str, instances: &[Arc<Instance>]) -> Self {
        let (shutdown, _) = watch::channel(());
        Notifier {
            shared: Arc::new(Shared {
                backend,
                channels: Mutex::new(HashMap::new()),
                active: Mutex::new(HashMap::new()),
                slots: instances
                    .iter()
                    .map(|i| Slot {
                        instance: i.clone(),
                        generation: AtomicU64::new(0),
                        state: tokio::sync::Mutex::new(SlotState::default()),
                    })
                    .collect(),
                shutdown,
            }),
        }
    }

    /// Registers a waiter on `channel` and subscribes it on every instance
    /// (in parallel, each bounded by `timeout`). `needed` is how many
    /// instances must be subscribed for a release to be sure to reach us.
    ///
    /// Costs one round trip per instance (SUBSCRIBE), in parallel.
    pub(crate) async fn subscribe(
        &self,
        channel: &str,
        owner: String,
        needed: usize,
        timeout: Duration,
    ) -> Subscription {
        let wake = {
            let mut channels = lock(&self.shared.channels);
            let entry = channels.entry(channel.to_string()).or_default();
            let (tx, rx) = watch::channel(Wake::default());
            entry.waiters.insert(owner.clone(), tx);
            rx
        };
        let mut sub = Subscription {
            shared: self.shared.clone(),
            channel: channel.to_string(),
            owner,
            wake,
            subscribed: vec![None; self.shared.slots.len()],
            needed,
            timeout,
            unsubscribe: CleanupOnDrop::new(self.shared.backend, "release-channel subscription"),
        };
        sub.refresh().await;
        sub
    }

    /// True when `channel` is still subscribed (lingering after its last
    /// waiter) on enough instances that registering a waiter costs no round
    /// trip.
    pub(crate) fn is_subscribed(&self, channel: &str, needed: usize) -> bool {
        (0..self.shared.slots.len())
            .filter(|&i| self.shared.active_generation(i, channel).is_some())
            .count()
            >= needed
    }
}

/// One waiter's registration on a release channel; unregisters on drop.
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    channel: String,
    /// Our owner token: release messages naming it (or `*`) wake us.
    owner: String,
    wake: watch::Receiver<Wake>,
    /// Per instance: the connection generation we subscribed under.
    subscribed: Vec<Option<u64>>,
    needed: usize,
    timeout: Duration,
    /// Armed by the last waiter of the channel when it leaves: unsubscribes
    /// the channel after it lingered.
    unsubscribe: CleanupOnDrop,
}

impl Subscription {
    /// (Re)subscribes on instances whose connection changed since we
    /// subscribed there. Returns true if any subscription was renewed.
    async fn refresh(&mut self) -> bool {
        let stale: Vec<usize> = (0..self.subscribed.len())
            .filter(|&i| {
                self.subscribed[i] != Some(self.shared.slots[i].generation.load(Ordering::SeqCst))
            })
            .collect();
        if stale.is_empty() {
            return false;
        }
        let results = futures::future::join_all(stale.iter().map(|&i| {
            let shared = self.shared.clone();
            let channel = self.channel.as_str();
            let timeout = self.timeout;
            async move {
                tokio::time::timeout(timeout, shared.subscribe_on(i, channel))
                    .await
                    .ok()
                    .flatten()
            }
        }))
        .await;
        let mut renewed = false;
        for (i, generation) in stale.into_iter().zip(results) {
            renewed |= generation.is_some();
            self.subscribed[i] = generation;
        }
        renewed
    }

    fn live(&self) -> usize {
        self.subscribed
            .iter()
            .zip(&self.shared.slots)
            .filter(|(g, s)| **g == Some(s.generation.load(Ordering::SeqCst)))
            .count()
    }

    /// Waits for a release message, at most `bound` (the holder's remaining
    /// ttl), or at most `poll` while too few instances are subscribed for a
    /// release to be sure to reach us. Returns at once after re-subscribing
    /// on a reconnected instance (a release may have been missed).
    ///
    /// Returns the fencing token when a release handed the lock to us.
    pub(crate) async fn wait(&mut self, bound: Duration, poll: Duration) -> Option<u64> {
        if self.wake.has_changed().unwrap_or(false) || self.wake.borrow().granted.is_some() {
            // A release reached us after the last attempt was sent: that
            // attempt may have missed it, so the caller retries at once.
            return self.take_grant();
        }
        if self.refresh().await {
            return None;
        }
        let bound = if self.live() >= self.needed {
            bound
        } else {
            bound.min(poll)
        };
        match tokio::time::timeout(bound, self.wake.changed()).await {
            Ok(Ok(())) => self.take_grant(),
            Err(_) => None,
            Ok(Err(_)) => {
                tokio::time::sleep(bound).await;
                None
            }
        }
    }

    /// Forgets the wakes received so far (a hand-over is kept): called just
    /// before an attempt is sent, which sees every release before it, so
    /// that only a release after it makes the next [`wait`](Self::wait)
    /// return at once.
    pub(crate) fn mark(&mut self) {
        self.wake.borrow_and_update();
    }

    /// A hand-over received and not yet taken, if any.
    fn take_grant(&mut self) -> Option<u64> {
        let wake = *self.wake.borrow_and_update();
        if wake.granted.is_some() {
            // Only the waiter reads its own slot; clearing it makes a grant
            // count once.
            if let Some(tx) = lock(&self.shared.channels)
                .get(&self.channel)
                .and_then(|c| c.waiters.get(&self.owner))
            {
                tx.send_modify(|w| w.granted = None);
            }
            let _ = self.wake.borrow_and_update();
        }
        wake.granted
    }
}

impl Drop for Subscription {
    /// Unregisters the waiter; the last waiter of a channel arms the
    /// unsubscribe, which runs in the background after [`LINGER`] unless a
    /// waiter came back by then.
    fn drop(&mut self) {
        let last = {
            let mut channels = lock(&self.shared.channels);
            match channels.get_mut(&self.channel) {
                Some(c) => {
                    c.waiters.remove(&self.owner);
                    if c.waiters.is_empty() {
                        channels.remove(&self.channel);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if !last {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        let channel = std::mem::take(&mut self.channel);
        let slots = self.subscribed.len();
        let timeout = self.timeout;
        self.unsubscribe.arm(async move {
            tokio::time::sleep(LINGER).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let _ = tokio::time::timeout(
                timeout,
                futures::future::join_all((0..slots).map(|i| shared.unsubscribe_on(i, &channel))),
            )
            .await;
        });
        // `self.unsubscribe` is dropped right after this, armed: it spawns
        // the task onto the current runtime.
    }
}
