//! The suite must fail backends that break the contract on purpose: each
//! case below runs against an unbroken control (which must pass) and a
//! backend broken in one way (which must fail, saying which case and which
//! claim). The broken backends are in `broken/`.

mod broken;

use std::sync::Arc;

use broken::caller_order::CallerOrderHarness;
use broken::{assert_caught, assert_failed_saying, failure, failure_of, Breakage, BrokenHarness};
use distlock_conformance::cases;
use distlock_memory::MemoryBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_two_holders_at_once() {
    let run =
        |h: Arc<BrokenHarness>| async move { cases::mutual_exclusion_under_contention(&*h).await };
    let expected = ["[mutual_exclusion_under_contention]", "overlap"];
    assert_caught(Breakage::LetsTwoHoldersIn, run, &expected).await;
    let run = |h: Arc<BrokenHarness>| async move { cases::try_acquire_fails_while_held(&*h).await };
    let expected = ["[try_acquire_fails_while_held]", "acquired again"];
    assert_caught(Breakage::LetsTwoHoldersIn, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_fencing_going_backwards() {
    let run = |h: Arc<BrokenHarness>| async move { cases::fencing_tokens_increase(&*h).await };
    let expected = ["[fencing_tokens_increase]", "backend claims `fencing`"];
    assert_caught(Breakage::FencingGoesBackwards, run, &expected).await;
    let run =
        |h: Arc<BrokenHarness>| async move { cases::mutual_exclusion_under_contention(&*h).await };
    let expected = [
        "[mutual_exclusion_under_contention]",
        "backend claims `fencing`",
    ];
    assert_caught(Breakage::FencingGoesBackwards, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_ignored_cancellation() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::cancelled_acquire_leaves_nothing_held(&*h).await
    };
    let expected = ["[cancelled_acquire_leaves_nothing_held]"];
    assert_caught(Breakage::IgnoresCancellation, run, &expected).await;
    let run = |h: Arc<BrokenHarness>| async move {
        cases::cancelled_acquires_at_random_points_leave_nothing_held(&*h).await
    };
    // Its zombies take the lock later, or stay queued until they do.
    let expected = [
        "[cancelled_acquires_at_random_points_leave_nothing_held]",
        "cancelled acquire",
    ];
    assert_caught(Breakage::IgnoresCancellation, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_waiters_served_out_of_order() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::waiters_are_served_in_arrival_order(&*h).await
    };
    let expected = [
        "[waiters_are_served_in_arrival_order] backend claims `fifo` but granted waiter 4 before waiter 1",
    ];
    assert_caught(Breakage::ServesNewestWaiterFirst, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_a_hold_leaked_by_a_cancelled_attempt() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::cancelled_acquires_at_random_points_leave_nothing_held(&*h).await
    };
    let expected = [
        "[cancelled_acquires_at_random_points_leave_nothing_held]",
        "on a free lock was cancelled",
        "leaked a hold",
    ];
    assert_caught(Breakage::LeaksCancelledAttempts, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_an_expired_lease_brought_back_to_life() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::extend_and_release_of_an_expired_lease_are_not_held(&*h).await
    };
    let expected = [
        "[extend_and_release_of_an_expired_lease_are_not_held]",
        "backend claims `ttl_expiry` but extended a lease",
    ];
    assert_caught(Breakage::RevivesExpiredLeases, run, &expected).await;
    // Only expiry is broken: a released lease stays released.
    let run = |h: Arc<BrokenHarness>| async move {
        cases::extend_and_release_after_release_fail(&*h).await
    };
    let passed = failure(Breakage::RevivesExpiredLeases, run).await;
    assert_eq!(
        passed, None,
        "the breakage should touch expired leases only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_says_a_backend_ignores_wait_rather_than_that_a_client_starved() {
    let run =
        |h: Arc<BrokenHarness>| async move { cases::mutual_exclusion_under_contention(&*h).await };
    let Some(message) = failure(Breakage::IgnoresWait, run).await else {
        panic!("the suite let a backend that ignores the wait pass");
    };
    assert!(
        message.contains("[mutual_exclusion_under_contention]")
            && message.contains("does not honour `Wait`")
            && !message.contains("starved"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_a_semaphore_that_admits_one_more() {
    let run = |h: Arc<BrokenHarness>| async move { cases::permits_are_never_exceeded(&*h).await };
    let expected = ["[permits_are_never_exceeded]", "held", "with 3 permits"];
    assert_caught(Breakage::AdmitsOneMorePermit, run, &expected).await;
    let run = |h: Arc<BrokenHarness>| async move { cases::modes_are_served_as_claimed(&*h).await };
    let expected = ["[modes_are_served_as_claimed]", "granted beside two"];
    assert_caught(Breakage::AdmitsOneMorePermit, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_a_reader_beside_a_writer() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::readers_and_writers_under_contention(&*h).await
    };
    let expected = [
        "[readers_and_writers_under_contention]",
        "a writer",
        "beside",
    ];
    assert_caught(Breakage::LetsReaderBesideWriter, run, &expected).await;
    let run =
        |h: Arc<BrokenHarness>| async move { cases::readers_share_and_writers_exclude(&*h).await };
    let expected = ["[readers_share_and_writers_exclude]", "two readers hold it"];
    assert_caught(Breakage::LetsReaderBesideWriter, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_two_leaders_at_once() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::one_leader_at_a_time_under_contention(&*h).await
    };
    let expected = ["[one_leader_at_a_time_under_contention]", "overlap"];
    assert_caught(Breakage::LetsTwoHoldersIn, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_change_notices_that_never_come() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::observers_see_every_leader_in_order(&*h).await
    };
    let expected = [
        "[observers_see_every_leader_in_order]",
        "backend claims `watch`",
    ];
    assert_caught(Breakage::SilentWatch, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_a_multi_lock_taken_in_the_callers_order() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::multi_locks_in_opposite_orders_do_not_deadlock(&*h).await
    };
    if let Some(message) = failure(Breakage::Nothing, run).await {
        panic!("the control must pass, but: {message}");
    }
    let run = |h: Arc<CallerOrderHarness>| async move {
        cases::multi_locks_in_opposite_orders_do_not_deadlock(&*h).await
    };
    let message = failure_of(CallerOrderHarness(MemoryBackend::new()), run).await;
    let expected = [
        "[multi_locks_in_opposite_orders_do_not_deadlock]",
        "not taken in one global order",
    ];
    assert_failed_saying(
        "takes multi-name locks in the caller's order",
        message,
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_a_minimum_ignored_on_release() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::released_lock_is_held_at_least_for_its_minimum(&*h).await
    };
    let expected = [
        "[released_lock_is_held_at_least_for_its_minimum]",
        "backend claims `at_least`",
        "free at once",
    ];
    assert_caught(Breakage::IgnoresAtLeast, run, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_catches_leases_born_expired_after_a_long_wait() {
    let run = |h: Arc<BrokenHarness>| async move {
        cases::lease_granted_after_a_long_wait_is_live(&*h).await
    };
    let expected = [
        "[lease_granted_after_a_long_wait_is_live]",
        "already expired",
    ];
    assert_caught(Breakage::DatesGrantsFromTheWait, run, &expected).await;
}
