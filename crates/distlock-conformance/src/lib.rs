//! # distlock-conformance
//!
//! The suite every distlock backend must pass, written once.
//!
//! - [`cases`]: plain async functions, one per promise of the contract.
//! - [`suite!`]: expands to one `#[tokio::test]` per case for a backend, so
//!   `cargo test` names each case per backend.
//! - [`History`]: the checker for overlapping holds and fencing tokens that
//!   fail to increase.
//! - [`FaultProxy`]: a loopback TCP proxy that passes, blackholes or resets
//!   traffic on command, for partition tests.
//! - [`services`]: stop and start the shared test servers' nodes (restarted
//!   on drop), for fault tests.
//! - [`child`]: child processes for the cases that kill a client;
//!   [`dying_waiter`]: the waiter-liveness scenario of backends with a line
//!   of their own.
//! - [`workload`]: the contention workload — many clients taking turns on
//!   one lock, every hold recorded in a [`History`].
//!
//! A backend crate (inside this workspace or not) adds this crate as a
//! dev-dependency, implements [`Harness`], and calls the macro once:
//!
//! ```no_run
//! use std::sync::Arc;
//! use distlock_core::DistributedLock;
//! use distlock_memory::MemoryBackend;
//!
//! // A harness hands out new clients of one service.
//! struct MyHarness(MemoryBackend);
//!
//! #[distlock_core::async_trait]
//! impl distlock_conformance::Harness for MyHarness {
//!     async fn client(&self) -> Arc<dyn DistributedLock> {
//!         Arc::new(self.0.clone())
//!     }
//! }
//!
//! distlock_conformance::suite!(my_backend, async { MyHarness(MemoryBackend::new()) });
//! # fn main() {}
//! ```

#![warn(missing_docs)]

pub mod cases;
pub mod child;
pub mod dying_waiter;
mod harness;
mod history;
mod proxy;
pub mod services;
pub mod tls;
pub mod workload;

pub use harness::{Harness, ProxiedClient};
pub use history::{History, Hold, Violation};
pub use proxy::{FaultProxy, ProxyMode};

/// How long one case may run before it fails as hung.
pub const CASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);

/// Runs one case under [`CASE_TIMEOUT`]; used by [`suite!`].
#[doc(hidden)]
pub async fn run_case<H, F>(harness: H, case: impl FnOnce(std::sync::Arc<H>) -> F)
where
    H: Harness,
    F: std::future::Future<Output = ()>,
{
    let harness = std::sync::Arc::new(harness);
    if tokio::time::timeout(CASE_TIMEOUT, case(harness))
        .await
        .is_err()
    {
        panic!("case did not finish within {CASE_TIMEOUT:?}: a hang");
    }
}

/// Instantiates the whole suite for one backend.
///
/// `suite!(name, make_harness)` expands to `mod name { … }` with one
/// `#[tokio::test]` per case; `make_harness` is an expression evaluating to a
/// future of a [`Harness`] (usually an `async { … }` block), evaluated afresh
/// in each test. The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! suite {
    ($backend:ident, $make:expr) => {
        #[allow(clippy::redundant_async_block)]
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            $crate::suite!(@cases $make;
                basic_acquire_release,
                try_acquire_fails_while_held,
                independent_names,
                wait_timeout_is_honoured,
                waiter_acquires_after_release,
                lease_granted_after_a_long_wait_is_live,
                wake_up_follows_release_promptly,
                waiters_are_served_in_arrival_order,
                non_owner_cannot_release_or_extend,
                lease_handoff_between_clients,
                abandoned_lock_expires_after_ttl,
                extend_keeps_the_lock,
                extend_many_answers_in_order,
                extend_and_release_after_release_fail,
                extend_and_release_after_expiry_fail,
                extend_and_release_of_an_expired_lease_are_not_held,
                lost_fires_when_lease_is_taken_away,
                session_suspends_then_recovers_or_is_lost,
                partitioned_holder_reports_lost_before_another_acquires,
                fencing_tokens_increase,
                mutual_exclusion_under_contention,
                cancelled_acquire_leaves_nothing_held,
                cancelled_acquires_at_random_points_leave_nothing_held,
                awkward_names_are_distinct_locks,
                bad_options_are_rejected,
                modes_are_served_as_claimed,
                status_reports_the_holder,
                permits_are_never_exceeded,
                permit_counts_must_agree,
                abandoned_permit_returns_after_ttl,
                cancelled_permit_acquires_leave_nothing_held,
                readers_share_and_writers_exclude,
                readers_and_writers_under_contention,
                waiting_writer_is_not_starved,
                cancelled_rw_acquires_leave_nothing_held,
                upgrade_is_atomic_or_refused,
                one_leader_at_a_time_under_contention,
                observers_see_every_leader_in_order,
                multi_locks_in_opposite_orders_do_not_deadlock,
                multi_lock_is_all_or_nothing,
                cancelled_multi_locks_leave_nothing_held,
                released_lock_is_held_at_least_for_its_minimum,
            );

            $crate::suite!(@processes $make;
                lease_expires_when_holder_is_killed,
                permit_returns_when_holder_is_killed,
                leader_is_replaced_when_killed,
                lock_is_held_at_least_after_its_holder_exits,
            );
        }
    };
    (@processes $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let path = concat!(module_path!(), "::", stringify!($case));
                // libtest names tests without the crate's own name.
                let path = path.split_once("::").map(|(_, p)| p).unwrap_or(path);
                $crate::run_case($make.await, |h| async move {
                    $crate::cases::$case(&*h, path).await
                })
                .await;
            }
        )*
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::run_case($make.await, |h| async move {
                    $crate::cases::$case(&*h).await
                })
                .await;
            }
        )*
    };
}
