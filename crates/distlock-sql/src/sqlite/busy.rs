//! SQLite's busy handler on distlock's connections: a statement that
//! finds the file's write lock taken looks again every millisecond until
//! the operation timeout, where SQLite's own handler (the busy timeout)
//! sleeps longer and longer between looks, up to 100 ms. Under contention
//! between processes (or backends) on one file, a statement that waited
//! there a few times slept through dozens of grants to others; looking
//! every millisecond keeps the wait for the write lock about as long as
//! the others' statements, so the queue of waiters (which takes its place
//! with a statement) is not overtaken while its place is on its way.
//!
//! This is the crate's only foreign call: SQLite's C interface, through
//! the `libsqlite3-sys` that sqlx itself links.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnection;

/// How long a statement waits between looks at the write lock.
const LOOK_EVERY: Duration = Duration::from_millis(1);

thread_local! {
    /// When the current wait for the write lock began, on the thread that
    /// runs the statement (a statement's busy handler runs on its thread,
    /// one wait at a time).
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Installs the handler on `conn`, giving up after `timeout` (which the
/// handler replaces as SQLite's busy timeout).
pub(crate) async fn install(conn: &mut SqliteConnection, timeout: Duration) -> sqlx::Result<()> {
    let mut handle = conn.lock_handle().await?;
    let millis = usize::try_from(timeout.as_millis()).unwrap_or(usize::MAX);
    // The timeout travels as the handler's argument (an integer, never
    // dereferenced), so nothing is allocated for it or outlives it.
    let arg = std::ptr::without_provenance_mut::<c_void>(millis);
    // SAFETY: the handle is locked (sqlx's worker makes no call on it
    // meanwhile) and open; `look_again` is a plain function that never
    // unwinds and never dereferences its argument.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_busy_handler(handle.as_raw_handle().as_ptr(), Some(look_again), arg)
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "SQLite refused the busy handler (code {rc})"
        )))
    }
}

/// SQLite's busy handler: `tries` earlier calls in this wait; non-zero to
/// look again (after sleeping [`LOOK_EVERY`]), zero to give up
/// (`SQLITE_BUSY`) once the timeout in `arg` has passed.
extern "C" fn look_again(arg: *mut c_void, tries: c_int) -> c_int {
    let timeout = Duration::from_millis(u64::try_from(arg.addr()).unwrap_or(u64::MAX));
    let now = Instant::now();
    let since = SINCE
        .try_with(|since| {
            if tries == 0 {
                since.set(Some(now));
            }
            since.get().unwrap_or(now)
        })
        .unwrap_or(now);
    if now.saturating_duration_since(since) >= timeout {
        return 0;
    }
    std::thread::sleep(LOOK_EVERY);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(millis: usize) -> *mut c_void {
        std::ptr::without_provenance_mut(millis)
    }

    #[test]
    fn looks_again_within_the_timeout_and_gives_up_after_it() {
        assert_eq!(look_again(arg(50), 0), 1);
        assert_eq!(look_again(arg(50), 1), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(look_again(arg(50), 2), 0);
        // A new wait starts its own clock.
        assert_eq!(look_again(arg(50), 0), 1);
    }

    #[test]
    fn a_zero_timeout_gives_up_at_once() {
        assert_eq!(look_again(arg(0), 0), 0);
    }
}
