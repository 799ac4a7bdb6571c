//! What the benchmark runs and what it runs it against: the workloads, their
//! settings, and [`Contender`], the one interface distlock and the raw floors
//! both offer (so [`crate::bench`] and [`crate::floor`] share it without
//! depending on each other).

use std::time::Duration;

use distlock::{LockName, Mode};

/// One benchmark run's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long each workload runs.
    pub duration: Duration,
    /// Clients in the contended, many-names, semaphore and rw workloads.
    pub clients: usize,
    /// How long each holder keeps the lock.
    pub hold: Duration,
    /// Names in the many-names workload.
    pub names: usize,
    /// Permits of the semaphore workload's name.
    pub permits: u32,
    /// The share of the rw workload's cycles that read (0.0–1.0).
    pub read_share: f64,
}

/// Which primitive a workload exercises; a backend or a floor serves each
/// one or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// Exclusive holds only.
    Mutex,
    /// [`Mode::Permit`] holds.
    Semaphore,
    /// [`Mode::Shared`] and [`Mode::Exclusive`] holds of one name.
    ReadWrite,
}

impl Primitive {
    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Mutex => "mutex",
            Primitive::Semaphore => "semaphore",
            Primitive::ReadWrite => "reader-writer",
        }
    }
}

/// The workloads, each a loop of take + give-back cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One client takes and gives back one name.
    Uncontended,
    /// Every client competes for one name.
    Contended,
    /// Every client takes random names out of `Settings::names`.
    ManyNames,
    /// Every client takes one of `Settings::permits` permits of one name.
    Semaphore,
    /// Every client reads or writes one name, `Settings::read_share` of its
    /// cycles reading.
    ReadWrite,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 5] = [
        Workload::Uncontended,
        Workload::Contended,
        Workload::ManyNames,
        Workload::Semaphore,
        Workload::ReadWrite,
    ];

    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Uncontended => "uncontended",
            Workload::Contended => "contended",
            Workload::ManyNames => "many-names",
            Workload::Semaphore => "semaphore",
            Workload::ReadWrite => "rw",
        }
    }

    /// The primitive it exercises.
    pub fn primitive(self) -> Primitive {
        match self {
            Workload::Uncontended | Workload::Contended | Workload::ManyNames => Primitive::Mutex,
            Workload::Semaphore => Primitive::Semaphore,
            Workload::ReadWrite => Primitive::ReadWrite,
        }
    }

    /// How many clients run it.
    pub fn clients(self, settings: Settings) -> usize {
        match self {
            Workload::Uncontended => 1,
            Workload::Contended
            | Workload::ManyNames
            | Workload::Semaphore
            | Workload::ReadWrite => settings.clients.max(1),
        }
    }

    /// The mode client number `client` asks for in its cycle number
    /// `cycle` (both counted from 0).
    ///
    /// The rw workload is deterministic: cycle `k` (shifted by the client's
    /// number, so that clients write at different times) reads when
    /// `⌊(k+1)·s⌋ > ⌊k·s⌋` for the read share `s` in thousandths — with
    /// `s = 0.9`, exactly one cycle in ten writes.
    pub fn mode(self, settings: Settings, client: usize, cycle: u64) -> Mode {
        match self {
            Workload::Uncontended | Workload::Contended | Workload::ManyNames => Mode::Exclusive,
            Workload::Semaphore => Mode::Permit {
                limit: settings.permits.max(1),
            },
            Workload::ReadWrite => {
                let share = (settings.read_share.clamp(0.0, 1.0) * 1000.0).round() as u64;
                let k = cycle.wrapping_add(client as u64);
                let reads = |k: u64| k.saturating_mul(share) / 1000;
                if reads(k + 1) > reads(k) {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                }
            }
        }
    }
}

/// Something that can take and give back a named lock in a [`Mode`]:
/// distlock or a floor.
#[distlock::async_trait]
pub trait Contender: Send + Sync {
    /// Takes `name` in `mode`, waiting; returns when held.
    async fn take(&self, name: &LockName, mode: Mode) -> Result<(), String>;
    /// Gives back the hold on `name` taken in `mode`.
    async fn give_back(&self, name: &LockName, mode: Mode) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(read_share: f64) -> Settings {
        Settings {
            duration: Duration::from_secs(1),
            clients: 8,
            hold: Duration::ZERO,
            names: 4,
            permits: 3,
            read_share,
        }
    }

    fn writes(read_share: f64, client: usize, cycles: u64) -> usize {
        (0..cycles)
            .filter(|&k| {
                Workload::ReadWrite.mode(settings(read_share), client, k) == Mode::Exclusive
            })
            .count()
    }

    #[test]
    fn nine_in_ten_cycles_read_and_clients_write_at_different_times() {
        for client in 0..8 {
            assert_eq!(writes(0.9, client, 100), 10);
        }
        let first_write = |client| {
            (0..10).find(|&k| Workload::ReadWrite.mode(settings(0.9), client, k) == Mode::Exclusive)
        };
        assert_ne!(first_write(0), first_write(1));
    }

    #[test]
    fn read_shares_of_zero_and_one_are_all_writes_and_all_reads() {
        assert_eq!(writes(0.0, 3, 50), 50);
        assert_eq!(writes(1.0, 3, 50), 0);
        assert_eq!(writes(0.5, 0, 50), 25);
    }

    #[test]
    fn the_semaphore_asks_for_the_configured_permits_and_mutexes_are_exclusive() {
        assert_eq!(
            Workload::Semaphore.mode(settings(0.9), 2, 7),
            Mode::Permit { limit: 3 }
        );
        assert_eq!(
            Workload::Contended.mode(settings(0.9), 2, 7),
            Mode::Exclusive
        );
        assert_eq!(Workload::ReadWrite.primitive(), Primitive::ReadWrite);
    }
}
