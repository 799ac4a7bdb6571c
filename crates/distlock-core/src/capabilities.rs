//! What a backend promises, as data.

use std::time::Duration;

/// What a backend can do. The conformance suite reads these to decide which
/// cases apply, and checks every claim: a claimed capability that does not
/// hold fails its case.
///
/// The default claims nothing (every flag false) and sets wide ttl limits;
/// a backend states each claim it makes, explicitly:
///
/// ```
/// use distlock_core::Capabilities;
/// assert!(!Capabilities::default().fencing);
/// let caps = Capabilities::builder().fencing(true).ttl_expiry(true).build();
/// assert!(caps.fencing && !caps.fifo);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Fencing tokens strictly increase across successive holders of a name.
    pub fencing: bool,
    /// Waiters are served in arrival order.
    pub fifo: bool,
    /// Waiters are woken by a notification from the release, not by polling.
    pub wait_notification: bool,
    /// A holder's liveness is a session (ZooKeeper, etcd lease) rather than
    /// the per-lock ttl alone.
    pub session_liveness: bool,
    /// An abandoned lock is freed once its ttl passes.
    pub ttl_expiry: bool,
    /// An exported lease can be extended and released by another client or
    /// process.
    pub lease_handoff: bool,
    /// Several processes can share the lock (false only for in-process
    /// backends).
    pub cross_process: bool,
    /// `extend_many` costs one round trip per server rather than one per lease.
    pub batch_extend: bool,
    /// Serves [`Mode::Shared`](crate::Mode::Shared) holds (reader-writer
    /// locks).
    pub shared: bool,
    /// Serves [`Mode::Permit`](crate::Mode::Permit) holds (semaphores).
    pub semaphore: bool,
    /// Upgrades a shared hold to an exclusive one in place
    /// ([`DistributedLock::upgrade`](crate::DistributedLock::upgrade)),
    /// atomically: no other writer can come in between.
    pub upgrade: bool,
    /// Stores a holder label with an exclusive hold (the identity of an
    /// elected leader, [`LockClient::elect`](crate::LockClient::elect)) and
    /// returns it in [`LockStatus::holder`](crate::LockStatus::holder).
    pub labels: bool,
    /// Notifies changes of a name's holders
    /// ([`DistributedLock::changes`](crate::DistributedLock::changes)), so
    /// leader observers wait for a notice instead of polling.
    pub watch: bool,
    /// Keeps a hold released before its
    /// [`AcquireOptions::at_least`](crate::AcquireOptions::at_least) time
    /// held on the server until that time
    /// ([`LockBackend::release_after`](crate::LockBackend::release_after)).
    pub at_least: bool,
    /// The shortest ttl the backend accepts.
    pub min_ttl: Duration,
    /// The longest ttl the backend accepts.
    pub max_ttl: Duration,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            fencing: false,
            fifo: false,
            wait_notification: false,
            session_liveness: false,
            ttl_expiry: false,
            lease_handoff: false,
            cross_process: false,
            batch_extend: false,
            shared: false,
            semaphore: false,
            upgrade: false,
            labels: false,
            watch: false,
            at_least: false,
            min_ttl: Duration::from_millis(1),
            max_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Capabilities {
    /// Starts a backend's declaration from no claims at all; state each one
    /// with the builder's setters.
    pub fn builder() -> CapabilitiesBuilder {
        CapabilitiesBuilder(Capabilities::default())
    }
}

/// Builds [`Capabilities`] (the struct is `#[non_exhaustive]`, so other
/// crates construct it through this).
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct CapabilitiesBuilder(Capabilities);

macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl CapabilitiesBuilder {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.0.$field = value;
                    self
                }
            )*
            /// The finished capabilities.
            pub fn build(self) -> Capabilities {
                self.0
            }
        }
    };
}

setters! {
    fencing: bool,
    fifo: bool,
    wait_notification: bool,
    session_liveness: bool,
    ttl_expiry: bool,
    lease_handoff: bool,
    cross_process: bool,
    batch_extend: bool,
    shared: bool,
    semaphore: bool,
    upgrade: bool,
    labels: bool,
    watch: bool,
    at_least: bool,
    min_ttl: Duration,
    max_ttl: Duration,
}
