//! What a successful acquire hands back.

use std::fmt;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::error::{LockError, Result};
use crate::mode::Mode;
use crate::name::{hex, LockName};

/// A random, unguessable 128-bit token naming the owner of one lease.
///
/// Backends store it with the lock and compare it on extend and release, so
/// only the owner (or whoever holds the exported lease) can do either.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerToken([u8; 16]);

impl OwnerToken {
    /// A fresh random token.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        OwnerToken(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The token as 32 lower-case hex digits (what backends store).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        let bad = || LockError::InvalidLease {
            reason: "owner token must be 32 hex digits".into(),
        };
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| bad())?;
        Ok(OwnerToken(bytes))
    }
}

impl fmt::Display for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for OwnerToken {
    /// Shows only a prefix: the full token is what grants release.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerToken({}…)", &self.to_hex()[..8])
    }
}

/// A number that strictly increases across successive holders of one name.
///
/// Pass it to the resource you protect and have the resource refuse writes
/// carrying a token lower than the highest it has seen: that stops a holder
/// that paused past its lease from doing damage (see `docs/safety.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A held lock: name, owner token, fencing token, validity and backend data.
///
/// A lease is plain data. It stays valid until [`valid_until`](Lease::valid_until)
/// (measured on this process's monotonic clock) unless extended. It can be
/// [exported](Lease::export) to a string and [imported](Lease::import) in another
/// process, which may then extend or release it where the backend allows
/// ([`Capabilities::lease_handoff`](crate::Capabilities::lease_handoff)).
#[derive(Clone)]
pub struct Lease {
    backend: String,
    name: LockName,
    owner: OwnerToken,
    fencing: FencingToken,
    ttl: Duration,
    valid_until: Instant,
    mode: Mode,
    data: String,
    hold_until: Option<Instant>,
}

impl Lease {
    /// Builds a lease (for backend implementations).
    pub fn new(
        backend: &str,
        name: LockName,
        owner: OwnerToken,
        fencing: FencingToken,
        ttl: Duration,
        valid_until: Instant,
    ) -> Self {
        Lease {
            backend: backend.to_string(),
            name,
            owner,
            fencing,
            ttl,
            valid_until,
            mode: Mode::Exclusive,
            data: String::new(),
            hold_until: None,
        }
    }

    /// Sets the instant before which a release only shortens the hold to
    /// end then (lock-at-least-for; see
    /// [`AcquireOptions::at_least`](crate::AcquireOptions::at_least)).
    pub fn with_hold_until(mut self, until: Option<Instant>) -> Self {
        self.hold_until = until;
        self
    }

    /// Until when the lock stays held even if released earlier
    /// (lock-at-least-for), on the monotonic clock; `None` when a release
    /// frees it at once.
    pub fn hold_until(&self) -> Option<Instant> {
        self.hold_until
    }

    /// Sets the mode the lease was granted in (exclusive unless set).
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode it was granted in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Attaches backend data (node path, key, lease id…).
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = data.into();
        self
    }

    /// The same lease with a new ttl and validity (what `extend` returns).
    pub fn renewed(&self, ttl: Duration, valid_until: Instant) -> Self {
        Lease {
            ttl,
            valid_until,
            ..self.clone()
        }
    }

    /// Which backend issued it (`memory`, `redis`, …).
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The lock name.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// The owner token.
    pub fn owner(&self) -> OwnerToken {
        self.owner
    }

    /// The fencing token.
    pub fn fencing_token(&self) -> FencingToken {
        self.fencing
    }

    /// The ttl it was granted (or last extended) with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Until when the lease can be trusted, on the monotonic clock.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Time left before the validity ends (zero when past).
    pub fn remaining(&self) -> Duration {
        self.valid_until.saturating_duration_since(Instant::now())
    }

    /// True once the validity has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.valid_until
    }

    /// Backend data.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// Checks that this lease came from `backend` (backends call it first
    /// thing in extend and release).
    pub fn check_backend(&self, backend: &str) -> Result<()> {
        if self.backend == backend {
            Ok(())
        } else {
            Err(LockError::InvalidLease {
                reason: format!(
                    "lease was issued by the {} backend, not {}",
                    self.backend, backend
                ),
            })
        }
    }

    /// Exports the lease to a string another process can [`import`](Lease::import).
    ///
    /// The remaining validity is written relative to now; importing it sets a
    /// validity of at most that much from the moment of import, so time spent
    /// in transit only shortens it. A lock-at-least-for minimum still to run
    /// is written the same way (`hold_ms`), and only lengthened by transit:
    /// the importer's release keeps the lock at least that long.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use distlock_core::{FencingToken, Lease, LockName, OwnerToken};
    /// let lease = Lease::new("memory", LockName::new("job/7")?, OwnerToken::random(),
    ///     FencingToken(3), Duration::from_secs(30), Instant::now() + Duration::from_secs(30));
    /// let back = Lease::import(&lease.export())?;
    /// assert_eq!(back.name(), lease.name());
    /// assert_eq!(back.fencing_token(), FencingToken(3));
    /// assert!(back.valid_until() <= lease.valid_until() + Duration::from_millis(5));
    /// # Ok::<(), distlock_core::LockError>(())
    /// ```
    pub fn export(&self) -> String {
        let hold = match self.hold_until {
            // Rounded up: the minimum may only grow in transit.
            Some(until) => format!(
                ";hold_ms={}",
                until
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000)
            ),
            None => String::new(),
        };
        format!(
            "{EXPORT_PREFIX};backend={};name={};owner={};fence={};ttl_ms={};remaining_ms={};mode={};data={}{hold}",
            crate::name::percent_encode(&self.backend),
            crate::name::percent_encode(self.name.as_str()),
            self.owner.to_hex(),
            self.fencing.0,
            self.ttl.as_millis(),
            self.remaining().as_millis(),
            self.mode.code(),
            crate::name::percent_encode(&self.data),
        )
    }

    /// Reads a lease written by [`export`](Lease::export).
    pub fn import(s: &str) -> Result<Self> {
        let bad = |reason: &str| LockError::InvalidLease {
            reason: reason.to_string(),
        };
        let mut parts = s.trim().split(';');
        if parts.next() != Some(EXPORT_PREFIX) {
            return Err(bad(
                "not a distlock lease (missing `distlock-lease-v1` prefix)",
            ));
        }
        let mut fields = std::collections::HashMap::new();
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("field without `=`"))?;
            fields.insert(k, v);
        }
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| bad(&format!("missing field `{k}`")))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse::<u64>()
                .map_err(|_| bad(&format!("field `{k}` is not a number")))
        };
        let backend =
            crate::name::percent_decode(get("backend")?).ok_or_else(|| bad("bad backend"))?;
        let name =
            crate::name::percent_decode(get("name")?).ok_or_else(|| bad("bad name encoding"))?;
        let name = LockName::new(name)?;
        let owner = OwnerToken::from_hex(get("owner")?)?;
        let fencing = FencingToken(num("fence")?);
        let ttl = Duration::from_millis(num("ttl_ms")?);
        let remaining = Duration::from_millis(num("remaining_ms")?);
        let data =
            crate::name::percent_decode(get("data")?).ok_or_else(|| bad("bad data encoding"))?;
        // Leases exported before modes existed are exclusive.
        let mode = match fields.get("mode") {
            Some(code) => Mode::from_code(code).ok_or_else(|| bad("bad mode"))?,
            None => Mode::Exclusive,
        };
        let now = Instant::now();
        let valid_until = now.checked_add(remaining).unwrap_or(now);
        let hold_until = match fields.get("hold_ms") {
            Some(_) => {
                let hold = Duration::from_millis(num("hold_ms")?);
                Some(
                    now.checked_add(hold)
                        .ok_or_else(|| bad("hold_ms too large"))?,
                )
            }
            None => None,
        };
        Ok(Lease {
            backend,
            name,
            owner,
            fencing,
            ttl,
            valid_until,
            mode,
            data,
            hold_until,
        })
    }
}

const EXPORT_PREFIX: &str = "distlock-lease-v1";

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("backend", &self.backend)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("fencing", &self.fencing.0)
            .field("ttl", &self.ttl)
            .field("remaining", &self.remaining())
            .field("mode", &self.mode)
            .field("data", &self.data)
            .field(
                "hold",
                &self
                    .hold_until
                    .map(|until| until.saturating_duration_since(Instant::now())),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease::new(
            "memory",
            LockName::new("a;b=c%d/é").unwrap(),
            OwnerToken::random(),
            FencingToken(u64::MAX),
            Duration::from_millis(1500),
            Instant::now() + Duration::from_secs(1),
        )
        .with_data("node=/x;y%")
    }

    #[test]
    fn export_import_round_trips_awkward_fields() {
        let l = lease();
        let back = Lease::import(&l.export()).unwrap();
        assert_eq!(back.name(), l.name());
        assert_eq!(back.owner(), l.owner());
        assert_eq!(back.fencing_token(), l.fencing_token());
        assert_eq!(back.ttl(), l.ttl());
        assert_eq!(back.data(), l.data());
        assert_eq!(back.backend(), "memory");
    }

    #[test]
    fn a_minimum_hold_survives_export_and_never_shrinks() {
        let plain = Lease::import(&lease().export()).unwrap();
        assert_eq!(plain.hold_until(), None);
        let until = Instant::now() + Duration::from_secs(3);
        let held = lease().with_hold_until(Some(until));
        let back = Lease::import(&held.export()).unwrap();
        let back_until = back.hold_until().unwrap();
        assert!(back_until >= until, "the minimum shrank in transit");
        assert!(back_until <= until + Duration::from_millis(50));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in [
            "",
            "distlock-lease-v1",
            "distlock-lease-v1;name=%zz",
            "distlock-lease-v1;backend=m;name=a;owner=xyz;fence=1;ttl_ms=1;remaining_ms=1;data=",
            "distlock-lease-v1;backend=m;name=;owner=00000000000000000000000000000000;fence=1;ttl_ms=1;remaining_ms=1;data=",
            "distlock-lease-v1;backend=m;name=a;owner=00000000000000000000000000000000;fence=-1;ttl_ms=1;remaining_ms=1;data=",
            "distlock-lease-v1;backend=m;name=a;owner=ééééééééééééééé0;fence=1;ttl_ms=1;remaining_ms=1;data=",
            "distlock-lease-v1;backend=m;name=a%;owner=00000000000000000000000000000000;fence=1;ttl_ms=1;remaining_ms=1;data=",
        ] {
            assert!(Lease::import(s).is_err(), "{s}");
        }
    }

    #[test]
    fn owner_tokens_are_exactly_32_hex_digits() {
        let token = OwnerToken::random();
        assert_eq!(OwnerToken::from_hex(&token.to_hex()).ok(), Some(token));
        let upper = token.to_hex().to_uppercase();
        assert_eq!(OwnerToken::from_hex(&upper).ok(), Some(token));
        for bad in [
            "+f".repeat(16),
            "0".repeat(31),
            "0".repeat(33),
            "g".repeat(32),
        ] {
            assert!(OwnerToken::from_hex(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_most_of_the_owner_token() {
        let l = lease();
        let dbg = format!("{l:?}");
        assert!(!dbg.contains(&l.owner().to_hex()));
    }
}
