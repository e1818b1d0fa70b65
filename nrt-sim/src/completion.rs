//! Output completion counts (`nrt_tensor_check_output_completion`,
//! `nrt_tensor_reset_output_completion`): how many executions wrote each tensor as an
//! output since its last reset, with a condition variable for waiters.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static COUNTS: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();

fn counts() -> MutexGuard<'static, Option<HashMap<u64, u64>>> {
    // Every update is one insert.
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// An execution wrote tensor `id` as an output.
pub(crate) fn completed(id: u64) {
    *counts()
        .get_or_insert_with(HashMap::new)
        .entry(id)
        .or_default() += 1;
    CHANGED.notify_all();
}

/// Sets tensor `id`'s count to 0.
pub(crate) fn reset(id: u64) {
    counts().get_or_insert_with(HashMap::new).insert(id, 0);
}

/// Waits until tensor `id` reached `expected` completions or `timeout` passed
/// (`None`: no limit); the count reached (the last one seen).
pub(crate) fn wait(id: u64, expected: u64, timeout: Option<Duration>) -> u64 {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut guard = counts();
    loop {
        let n = guard
            .as_ref()
            .and_then(|m| m.get(&id))
            .copied()
            .unwrap_or(0);
        if n >= expected {
            return n;
        }
        guard = match deadline {
            None => CHANGED.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return n;
                }
                CHANGED
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}
