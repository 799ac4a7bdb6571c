//! The state of one acquire (or upgrade) across its attempts: what it asks
//! for, and what an unfinished attempt (or a hand-over, fair mode) may have
//! left on the servers and how to undo it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distlock_core::cleanup::CleanupOnDrop;
use distlock_core::sync::lock;
use distlock_core::{AcquireRequest, LockName, Mode, OwnerToken, Result};

use crate::keys::LockKeys;

use super::hold::Hold;
use super::Engine;

/// The state of one acquire across its attempts.
pub(super) struct Acquisition {
    engine: Arc<Engine>,
    pub(super) name: LockName,
    pub(super) keys: LockKeys,
    /// The owner token the core drew for this acquire (an upgrade: the
    /// reader's).
    pub(super) owner: OwnerToken,
    pub(super) ttl: Duration,
    /// The mode asked for (`Exclusive` for an upgrade).
    pub(super) mode: Mode,
    /// Where the hold lives (a Redlock permit's slot is not known yet).
    pub(super) hold: Hold,
    /// An upgrade of the owner's reader hold to the writer.
    pub(super) upgrade: bool,
    /// The caller waits (fair mode: it joins the waiters' queue).
    pub(super) waits: bool,
    /// The holder label of an election (`""` for none), stored with the
    /// hold.
    pub(super) label: String,
    /// Redlock fair mode: this acquire's place in every instance's queue
    /// (see [`Engine::ticket`]); `""` elsewhere.
    pub(super) ticket: String,
    /// Gives back what an unfinished acquire may hold, or leaves the queue,
    /// when the acquire's future is dropped or its wait ran out.
    undo: Mutex<CleanupOnDrop>,
    /// Fair mode: we may have an entry in the waiters' queue.
    queued: AtomicBool,
    /// The last attempt got some instances but not a quorum (or its
    /// validity was spent): retry after a short random pause rather than
    /// waiting for a release message.
    contended: AtomicBool,
    /// Fair Redlock: the last failed attempt kept its partial hold.
    kept: AtomicBool,
}

impl Acquisition {
    /// An acquire of `request.mode`.
    pub(super) fn new(engine: &Arc<Engine>, request: &AcquireRequest) -> Result<Self> {
        let hold = Hold::for_mode(request.mode, !engine.single(), engine.backend)?;
        Ok(Self::with_hold(engine, request, hold, false))
    }

    /// An upgrade of `request.owner`'s reader hold to the writer.
    pub(super) fn upgrade(engine: &Arc<Engine>, request: &AcquireRequest) -> Self {
        Self::with_hold(engine, request, Hold::Exclusive, true)
    }

    fn with_hold(
        engine: &Arc<Engine>,
        request: &AcquireRequest,
        hold: Hold,
        upgrade: bool,
    ) -> Self {
        Acquisition {
            engine: engine.clone(),
            name: request.name.clone(),
            keys: engine.keys(&request.name),
            owner: request.owner,
            ttl: request.options.ttl,
            mode: request.mode,
            hold,
            upgrade,
            waits: request.options.wait.as_duration() != Some(Duration::ZERO),
            label: request.label.clone().unwrap_or_default(),
            ticket: engine.ticket(),
            undo: Mutex::new(CleanupOnDrop::new(engine.backend, "acquire attempt")),
            queued: AtomicBool::new(false),
            contended: AtomicBool::new(false),
            kept: AtomicBool::new(false),
        }
    }

    /// The hold is ours: nothing to give back.
    pub(super) fn finish(&self) {
        lock(&self.undo).disarm();
    }

    /// True when the last attempt lost a split vote.
    pub(super) fn contended(&self) -> bool {
        self.contended.load(Ordering::SeqCst)
    }

    pub(super) fn set_contended(&self, contended: bool) {
        self.contended.store(contended, Ordering::SeqCst);
    }

    /// Fair Redlock: whether this failed attempt may keep its partial
    /// hold — every other time in a row (see `Engine::keeps_partial_hold`).
    pub(super) fn keep_partial_hold(&self) -> bool {
        !self.kept.fetch_xor(true, Ordering::SeqCst)
    }

    /// The attempt about to be sent may put us in the queue.
    pub(super) fn joins_queue(&self) {
        self.queued.store(true, Ordering::SeqCst);
    }

    /// The script took us out of the queue (a refusal for good).
    pub(super) fn left_queue(&self) {
        self.queued.store(false, Ordering::SeqCst);
    }

    /// Arms the undo before a round trip that may take the lock (or queue us).
    pub(super) fn arm_undo(&self) {
        let mut undo = lock(&self.undo);
        if !undo.is_armed() {
            undo.arm(self.undo_task());
        }
    }

    /// After a failed attempt: nothing is left to undo when every partial
    /// hold was given back and we are not queued.
    pub(super) fn settle_undo(&self, clean: bool) {
        if clean && !self.queued.load(Ordering::SeqCst) {
            lock(&self.undo).disarm();
        }
    }

    /// A queued request or an upgrade: leave the queue on every instance
    /// (and release a hold handed to us, or turn an upgraded hold back into
    /// the reader it was); otherwise release the owner token on every
    /// instance. One round trip (every instance in parallel).
    fn undo_task(&self) -> impl Future<Output = ()> + Send + 'static {
        let (engine, keys, owner, ttl) =
            (self.engine.clone(), self.keys.clone(), self.owner, self.ttl);
        let (hold, upgrade) = (self.hold.clone(), self.upgrade);
        async move {
            if engine.queues(&hold) || upgrade {
                let _ = engine.abandon(&keys, owner, &hold, upgrade, ttl).await;
            } else {
                let _ = engine
                    .release_on(&engine.all(), &keys, owner, &hold, ttl)
                    .await;
            }
        }
    }
}
