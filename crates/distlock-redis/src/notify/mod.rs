//! Release notifications: one pub/sub connection per instance per backend
//! client, shared by every waiter of that client.
//!
//! A waiter registers on its lock's release channel under its owner token
//! (one `watch` counter per waiter), and the channel is subscribed on each
//! instance's pub/sub connection. One reader task per connection fans the
//! published messages out: a message names the waiter to wake (the head of
//! the waiters' queue in fair mode), or `*` for every waiter of the channel.
//! A leader observer registers as a *watcher* of the channel: every message
//! wakes it, `+` too (published when a labelled hold — a leader — is
//! granted, and waking no waiter). The last waiter or watcher of a channel
//! to leave unsubscribes it.
//!
//! Connections are made on first use. When one drops (server restart, network
//! cut), its generation changes and every waiter is woken; each then
//! re-subscribes on the next wait and retries at once, since a release may
//! have been published while the connection was down. With Sentinel, each
//! connect goes to the primary the sentinels name then; a failover drops the
//! old primary's pub/sub clients (the sentinels kill them when they demote
//! it, or it died), so the waiters follow. On a Redis Cluster the
//! connection is a cluster connection and the channels are sharded
//! ([`link`]): each subscription goes to its lock's shard, a lost node
//! connection counts as a lost connection, and a subscription the server
//! ends (its slot moved) wakes that channel's waiters, who subscribe again.
//!
//! In fair mode each connection also subscribes the client's *liveness
//! channel* (`<prefix>alive:<client id>`, a random id per backend client)
//! first thing: the server drops that subscription the moment the
//! connection closes — when the process dies, the kernel closes it — so the
//! queue scripts can tell (PUBSUB NUMSUB) that a waiter's process is gone
//! and skip it. Waiters name their client in their queue entries only while
//! the channel is subscribed on the current connection
//! ([`Notifier::alive_client`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::OwnerToken;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::watch;

use crate::instance::Instance;
use link::{Event, Sink};

mod link;

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
    /// Numbers the watchers.
    next_watcher: AtomicU64,
    /// Fair mode: this client's liveness channel.
    alive: Option<Alive>,
}

/// A client's liveness channel (fair mode).
struct Alive {
    /// The random id the queue entries of this client's waiters carry.
    client: String,
    /// `<stem><client>`: subscribed by every pub/sub connection.
    channel: String,
}

/// The waiters of one release channel in this client, by owner token, and
/// its watchers.
#[derive(Default)]
struct Channel {
    waiters: HashMap<String, watch::Sender<Wake>>,
    /// Leader observers, by a number of their own: woken by every message.
    watchers: HashMap<String, watch::Sender<Wake>>,
}

/// What woke a waiter: every wake bumps the number.
type Wake = u64;

impl Channel {
    /// Handles one release message: `*` wakes everyone, `<owner>` wakes that
    /// waiter, and so does `<owner>:<fence>` (a hold handed to that waiter,
    /// which its next attempt confirms).
    fn wake(&self, message: &str) {
        let bump = |tx: &watch::Sender<Wake>| tx.send_modify(|w| *w = w.wrapping_add(1));
        self.watchers.values().for_each(bump);
        if message == GRANTED {
            return;
        }
        if message == EVERYONE {
            self.waiters.values().for_each(bump);
            return;
        }
        let who = message.split_once(':').map_or(message, |(who, _)| who);
        if let Some(tx) = self.waiters.get(who) {
            bump(tx);
        }
    }
}

/// The release message that wakes every waiter (no queue, or nobody left in it).
const EVERYONE: &str = "*";

/// The message announcing a labelled grant (a new leader): it wakes the
/// watchers only.
const GRANTED: &str = "+";

impl Channel {
    /// The registrations of one kind.
    fn of(&mut self, watcher: bool) -> &mut HashMap<String, watch::Sender<Wake>> {
        if watcher {
            &mut self.watchers
        } else {
            &mut self.waiters
        }
    }

    fn is_empty(&self) -> bool {
        self.waiters.is_empty() && self.watchers.is_empty()
    }
}

struct Slot {
    instance: Arc<Instance>,
    /// Changes whenever the pub/sub connection is made or lost.
    generation: AtomicU64,
    /// The generation the liveness channel is subscribed under (0: none).
    alive: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    sink: Option<Sink>,
    retry_after: Option<Instant>,
}

impl Shared {
    /// Delivers a release message to the waiters of its channel.
    fn wake(&self, channel: &str, message: &str) {
        if let Some(c) = lock(&self.channels).get(channel) {
            c.wake(message);
        }
    }

    /// The server ended `channel`'s subscription on instance `index`'s
    /// connection `generation` (a cluster moved the channel's slot): unless
    /// we unsubscribed it ourselves (then it is no longer active), its
    /// waiters retry at once and subscribe again, on the new shard.
    fn dropped(&self, index: usize, generation: u64, channel: &str) {
        let key = (index, channel.to_string());
        let was = {
            let mut active = lock(&self.active);
            match active.get(&key) {
                Some(g) if *g == generation => active.remove(&key),
                _ => None,
            }
        };
        if was.is_some() {
            self.wake(channel, EVERYONE);
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
        let mut fresh = false;
        if state.sink.is_none() {
            if let Some(at) = state.retry_after {
                if Instant::now() < at {
                    return None;
                }
            }
            match link::open(&slot.instance).await {
                Ok((sink, events)) => {
                    state.sink = Some(sink);
                    state.retry_after = None;
                    let generation = slot.generation.fetch_add(1, Ordering::SeqCst) + 1;
                    fresh = true;
                    tokio::spawn(read_messages(
                        Arc::downgrade(self),
                        index,
                        generation,
                        events,
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
        if fresh {
            self.subscribe_alive(slot, sink, generation).await;
        }
        sink.subscribe(channel).await.ok()?;
        lock(&self.active).insert((index, channel.to_string()), generation);
        Some(generation)
    }

    /// Fair mode: subscribes this client's liveness channel on a new
    /// connection (one round trip, on the first wait of the connection).
    /// Without it (refused, say, by an ACL) waiters are judged by their
    /// queue entries' deadlines alone.
    async fn subscribe_alive(&self, slot: &Slot, sink: &mut Sink, generation: u64) {
        if let Some(alive) = &self.alive {
            if sink.subscribe(&alive.channel).await.is_ok() {
                slot.alive.store(generation, Ordering::SeqCst);
            }
        }
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
    mut events: BoxStream<'static, Event>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(shared) = shared.upgrade() else { return };
                match event {
                    Some(Event::Message { channel, payload }) => shared.wake(&channel, &payload),
                    Some(Event::Dropped(channel)) => shared.dropped(index, generation, &channel),
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
    /// The notifications of one backend client over `instances`; with
    /// `alive_stem` (fair mode), each pub/sub connection subscribes the
    /// client's liveness channel `<alive_stem><random client id>`.
    pub(crate) fn new(
        backend: &'static str,
        instances: &[Arc<Instance>],
        alive_stem: Option<&str>,
    ) -> Self {
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
                        alive: AtomicU64::new(0),
                        state: tokio::sync::Mutex::new(SlotState::default()),
                    })
                    .collect(),
                shutdown,
                next_watcher: AtomicU64::new(0),
                alive: alive_stem.map(|stem| {
                    let client = OwnerToken::random().to_hex();
                    Alive {
                        channel: format!("{stem}{client}"),
                        client,
                    }
                }),
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
        self.register(channel, owner, false, needed, timeout).await
    }

    /// Registers a watcher on `channel` (woken by every message; see
    /// [`Subscription::notice`]) and subscribes it as
    /// [`subscribe`](Self::subscribe) does.
    ///
    /// Costs one round trip per instance (SUBSCRIBE), in parallel, unless
    /// the channel is subscribed already.
    pub(crate) async fn watch(
        &self,
        channel: &str,
        needed: usize,
        timeout: Duration,
    ) -> Subscription {
        let number = self.shared.next_watcher.fetch_add(1, Ordering::Relaxed);
        self.register(channel, format!("watcher-{number}"), true, needed, timeout)
            .await
    }

    async fn register(
        &self,
        channel: &str,
        owner: String,
        watcher: bool,
        needed: usize,
        timeout: Duration,
    ) -> Subscription {
        let wake = {
            let mut channels = lock(&self.shared.channels);
            let entry = channels.entry(channel.to_string()).or_default();
            let (tx, rx) = watch::channel(0);
            entry.of(watcher).insert(owner.clone(), tx);
            rx
        };
        let mut sub = Subscription {
            shared: self.shared.clone(),
            channel: channel.to_string(),
            owner,
            watcher,
            wake,
            subscribed: vec![None; self.shared.slots.len()],
            needed,
            timeout,
            unsubscribe: CleanupOnDrop::new(self.shared.backend, "release-channel subscription"),
        };
        sub.refresh().await;
        sub
    }

    /// Fair mode: this client's id while its liveness channel is subscribed
    /// on the current connection to instance `index`, so that a queue
    /// entry naming it there is dropped as soon as the connection closes.
    /// `None` before the first wait, and while reconnecting.
    pub(crate) fn alive_client(&self, index: usize) -> Option<&str> {
        let alive = self.shared.alive.as_ref()?;
        let slot = self.shared.slots.get(index)?;
        let subscribed = slot.alive.load(Ordering::SeqCst);
        (subscribed != 0 && subscribed == slot.generation.load(Ordering::SeqCst))
            .then_some(alive.client.as_str())
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
    /// Our owner token: release messages naming it (or `*`) wake us. A
    /// watcher's own number.
    owner: String,
    /// A watcher: every message wakes it.
    watcher: bool,
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

    /// Waits for a release message (or a hand-over to us), at most `bound`
    /// (the holder's remaining ttl), or at most `poll` while too few
    /// instances are subscribed for a release to be sure to reach us.
    /// Returns at once after re-subscribing on a reconnected instance (a
    /// release may have been missed).
    pub(crate) async fn wait(&mut self, bound: Duration, poll: Duration) {
        if self.wake.has_changed().unwrap_or(false) {
            // A release reached us after the last attempt was sent: that
            // attempt may have missed it, so the caller retries at once.
            self.mark();
            return;
        }
        if self.refresh().await {
            return;
        }
        let bound = if self.live() >= self.needed {
            bound
        } else {
            bound.min(poll)
        };
        match tokio::time::timeout(bound, self.wake.changed()).await {
            Ok(Ok(())) => self.mark(),
            Err(_) => {}
            Ok(Err(_)) => tokio::time::sleep(bound).await,
        }
    }

    /// A watcher's wait for the next message on the channel (a grant, a
    /// release, a hand-over). Returns at once after re-subscribing on a
    /// reconnected instance (a message may have been missed), and after
    /// `poll` while too few instances are subscribed for a message to be
    /// sure to reach us.
    pub(crate) async fn notice(&mut self, poll: Duration) {
        if self.refresh().await {
            return;
        }
        if self.live() < self.needed {
            return tokio::time::sleep(poll).await;
        }
        if self.wake.changed().await.is_err() {
            tokio::time::sleep(poll).await;
        }
    }

    /// Forgets the wakes received so far: called just before an attempt is
    /// sent, which sees every release (and hand-over) before it, so that
    /// only a release after it makes the next [`wait`](Self::wait) return
    /// at once.
    pub(crate) fn mark(&mut self) {
        self.wake.borrow_and_update();
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
                    c.of(self.watcher).remove(&self.owner);
                    if c.is_empty() {
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
