//! The conformance cases: plain async functions over a [`Harness`](crate::Harness).
//!
//! Each case panics with a message that starts with the case's name in
//! brackets and says which promise was broken — and, where a claimed
//! capability did not hold, which claim:
//! `[waiters_are_served_in_arrival_order] backend claims `fifo` but granted
//! waiter 3 before waiter 2`. [`suite!`](crate::suite) turns every case
//! into a named `#[tokio::test]`; they can also be called directly.
//!
//! Cases that depend on a capability check it first and return early with a
//! printed note when the backend does not claim it; a backend that claims a
//! capability gets the case, so a false claim fails. Every field of
//! [`Capabilities`](distlock_core::Capabilities) is read by some case:
//!
//! | claim | checked by |
//! |---|---|
//! | `fencing` | [`fencing_tokens_increase`], and every case that sees successive holders |
//! | `fifo` | [`waiters_are_served_in_arrival_order`] |
//! | `wait_notification` | [`wake_up_follows_release_promptly`] |
//! | `session_liveness` | [`session_suspends_then_recovers_or_is_lost`] |
//! | `ttl_expiry` | [`abandoned_lock_expires_after_ttl`], [`extend_and_release_after_expiry_fail`], [`extend_and_release_of_an_expired_lease_are_not_held`] |
//! | `lease_handoff` | [`lease_handoff_between_clients`] |
//! | `cross_process` | [`lease_expires_when_holder_is_killed`], [`partitioned_holder_reports_lost_before_another_acquires`] |
//! | `batch_extend` | [`extend_many_answers_in_order`] |
//! | `shared` | [`modes_are_served_as_claimed`], [`readers_share_and_writers_exclude`], [`readers_and_writers_under_contention`], [`waiting_writer_is_not_starved`] (with `fifo`), [`cancelled_rw_acquires_leave_nothing_held`] |
//! | `semaphore` | [`modes_are_served_as_claimed`], [`permits_are_never_exceeded`], [`permit_counts_must_agree`], [`abandoned_permit_returns_after_ttl`], [`cancelled_permit_acquires_leave_nothing_held`], [`permit_returns_when_holder_is_killed`] |
//! | `upgrade` | [`upgrade_is_atomic_or_refused`] |
//! | `labels` | [`one_leader_at_a_time_under_contention`] (the status names the leader and its term), [`observers_see_every_leader_in_order`], [`leader_is_replaced_when_killed`] |
//! | `watch` | [`observers_see_every_leader_in_order`] (its observer reads only on change notices) |
//! | `at_least` | [`released_lock_is_held_at_least_for_its_minimum`], [`lock_is_held_at_least_after_its_holder_exits`] |
//! | `min_ttl`, `max_ttl` | [`bad_options_are_rejected`] (and every case picks its ttls within them) |
//!
//! Multi-name locks need no capability: every backend runs
//! [`multi_locks_in_opposite_orders_do_not_deadlock`],
//! [`multi_lock_is_all_or_nothing`] and
//! [`cancelled_multi_locks_leave_nothing_held`].

mod at_least;
mod basic;
mod cancel;
mod expiry;
mod extend;
mod faults;
mod leader;
mod modes;
mod multi;
mod process;
mod rw;
mod semaphore;
pub(crate) mod support;
mod waiting;

pub use at_least::{
    lock_is_held_at_least_after_its_holder_exits, released_lock_is_held_at_least_for_its_minimum,
};
pub use basic::{
    awkward_names_are_distinct_locks, bad_options_are_rejected, basic_acquire_release,
    fencing_tokens_increase, independent_names, lease_handoff_between_clients,
    modes_are_served_as_claimed, non_owner_cannot_release_or_extend, status_reports_the_holder,
    try_acquire_fails_while_held,
};
pub use cancel::{
    cancelled_acquire_leaves_nothing_held, cancelled_acquires_at_random_points_leave_nothing_held,
};
pub use expiry::{
    abandoned_lock_expires_after_ttl, extend_and_release_after_expiry_fail,
    extend_and_release_of_an_expired_lease_are_not_held, lost_fires_when_lease_is_taken_away,
};
pub use extend::{
    extend_and_release_after_release_fail, extend_keeps_the_lock, extend_many_answers_in_order,
};
pub use faults::{
    partitioned_holder_reports_lost_before_another_acquires,
    session_suspends_then_recovers_or_is_lost,
};
pub use leader::{
    leader_is_replaced_when_killed, observers_see_every_leader_in_order,
    one_leader_at_a_time_under_contention,
};
pub use multi::{
    cancelled_multi_locks_leave_nothing_held, multi_lock_is_all_or_nothing,
    multi_locks_in_opposite_orders_do_not_deadlock,
};
pub use process::{
    lease_expires_when_holder_is_killed, permit_returns_when_holder_is_killed, CHILD_ENV,
};
pub use rw::{
    cancelled_rw_acquires_leave_nothing_held, readers_and_writers_under_contention,
    readers_share_and_writers_exclude, upgrade_is_atomic_or_refused, waiting_writer_is_not_starved,
};
pub use semaphore::{
    abandoned_permit_returns_after_ttl, cancelled_permit_acquires_leave_nothing_held,
    permit_counts_must_agree, permits_are_never_exceeded,
};
pub use support::unique_name;
pub use waiting::{
    lease_granted_after_a_long_wait_is_live, mutual_exclusion_under_contention,
    wait_timeout_is_honoured, waiter_acquires_after_release, waiters_are_served_in_arrival_order,
    wake_up_follows_release_promptly,
};
