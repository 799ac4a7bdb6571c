//! Small synchronisation helpers shared by the core and the backends.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data if a panic poisoned it.
///
/// Use it for short critical sections that never leave their data
/// half-written (every one in distlock): a poisoned mutex then still holds
/// consistent data, and refusing it would turn one panic into many.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
