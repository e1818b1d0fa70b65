//! The stack the real `nrt_execute` uses on its caller's thread.
//!
//! libnrt's synchronous execution has been seen to keep a 4 MiB buffer on the calling
//! thread's stack: a Rust program crashed inside `nrt_execute` on a thread with Rust's
//! default 2 MiB stack, and a larger stack fixed it. The simulator's `nrt_execute` and
//! `nrt_execute_repeat` use (and touch, page by page) as much stack before they run, so a
//! thread too small for the real runtime crashes here too, in development, instead of on
//! the first Neuron instance. `NRT_SIM_EXEC_STACK` (read at `nrt_init`) sets the size;
//! `0` turns the probe off.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What the real runtime was seen to need: 4 MiB.
pub(crate) const DEFAULT_EXEC_STACK: usize = 4 << 20;

/// Largest accepted `NRT_SIM_EXEC_STACK` (1 GiB; more is surely a typo).
pub(crate) const MAX_EXEC_STACK: usize = 1 << 30;

/// Stack of the simulator's own worker threads, which run async executions: what a
/// caller of `nrt_execute` needs, and more (8 MiB, the usual main-thread size).
pub(crate) const WORKER_STACK: usize = DEFAULT_EXEC_STACK + (4 << 20);

/// Probe size of the session (set by `nrt_init`; the default before the first one).
static EXEC_STACK: AtomicUsize = AtomicUsize::new(DEFAULT_EXEC_STACK);

pub(crate) fn set_exec_stack(bytes: usize) {
    EXEC_STACK.store(bytes, Ordering::Relaxed);
}

/// Size of one probe frame. Rust probes frames larger than a page page by page from the
/// top (`probestack`), so the guard page under a too-small stack is always hit, and a
/// frame far below 2 MiB keeps valgrind from taking it for a stack switch.
const CHUNK: usize = 64 << 10;
const PAGE: usize = 4096;

/// Uses and touches `NRT_SIM_EXEC_STACK` bytes of the calling thread's stack (a stack
/// overflow there kills the process, as in the real runtime), then returns.
pub(crate) fn use_exec_stack() {
    let bytes = EXEC_STACK.load(Ordering::Relaxed);
    if bytes > 0 {
        probe(bytes.div_ceil(CHUNK));
    }
}

/// One `CHUNK` of stack per level, written at every page so the kernel really maps it.
/// Not zeroed first: one byte per page is enough to fault a missing page, and a 4 MiB
/// memset per execution would add a simulator cost of ~100 us to every synchronous call.
#[inline(never)]
fn probe(chunks: usize) {
    let mut frame = std::mem::MaybeUninit::<[u8; CHUNK]>::uninit();
    let base = frame.as_mut_ptr().cast::<u8>();
    for i in (0..CHUNK).step_by(PAGE).rev() {
        // SAFETY: `i < CHUNK`: an in-bounds write into a local array (writing makes the
        // byte initialised; nothing reads the others).
        unsafe { std::ptr::write_volatile(base.add(i), 1) };
    }
    std::hint::black_box(&mut frame);
    if chunks > 1 {
        probe(chunks - 1);
    }
    // Keeps the frame alive across the call (no tail call that would reuse it).
    std::hint::black_box(&frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_fits_a_big_enough_thread() {
        std::thread::Builder::new()
            .stack_size(DEFAULT_EXEC_STACK + (2 << 20))
            .spawn(|| probe(DEFAULT_EXEC_STACK / CHUNK))
            .unwrap()
            .join()
            .unwrap();
    }
}
