//! What the benchmark runs and what it runs it against: the workloads, their
//! settings, and [`Contender`], the one interface distlock and the raw floors
//! both offer (so [`crate::bench`] and [`crate::floor`] share it without
//! depending on each other).

use std::time::Duration;

use distlock::LockName;

/// One benchmark run's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long each workload runs.
    pub duration: Duration,
    /// Clients in the contended and many-names workloads.
    pub clients: usize,
    /// How long each holder keeps the lock.
    pub hold: Duration,
    /// Names in the many-names workload.
    pub names: usize,
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
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 3] = [
        Workload::Uncontended,
        Workload::Contended,
        Workload::ManyNames,
    ];

    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Uncontended => "uncontended",
            Workload::Contended => "contended",
            Workload::ManyNames => "many-names",
        }
    }

    /// How many clients run it.
    pub fn clients(self, settings: Settings) -> usize {
        match self {
            Workload::Uncontended => 1,
            Workload::Contended | Workload::ManyNames => settings.clients.max(1),
        }
    }
}

/// Something that can take and give back a named lock: distlock or a floor.
#[distlock::async_trait]
pub trait Contender: Send + Sync {
    /// Takes `name`, waiting; returns when held.
    async fn take(&self, name: &LockName) -> Result<(), String>;
    /// Gives `name` back.
    async fn give_back(&self, name: &LockName) -> Result<(), String>;
}
