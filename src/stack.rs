//! Stack room for `nrt_execute`.
//!
//! libnrt's `nrt_execute` has been seen to keep a 4 MiB buffer on the calling thread's
//! stack: a Rust program crashed inside it on a thread with Rust's default 2 MiB stack
//! (shared/nrt-abi.md section 4). So the synchronous execution calls run only where at
//! least [`EXEC_STACK_NEEDED`] of stack is left; elsewhere they run on a helper thread
//! with a [`HELPER_STACK`] stack, started for the call, and the caller blocks until it
//! returns. That costs one thread start per call (tens of microseconds); programs that
//! execute often avoid it by executing on threads with larger stacks (for example
//! `std::thread::Builder::stack_size(16 << 20)`, or tokio's `thread_stack_size`). The
//! main thread usually has 8 MiB in all (`ulimit -s`), so less than that left.

use std::cell::Cell;

/// Stack that must be left for a call to `nrt_execute` (twice what libnrt was seen to
/// use, for its other frames).
pub const EXEC_STACK_NEEDED: usize = 8 << 20;

/// Stack size of the helper threads that run executions for short-stack callers.
pub const HELPER_STACK: usize = 16 << 20;

thread_local! {
    /// The lowest address of this thread's stack; 0 before it was asked, 1 if it
    /// cannot be known.
    static STACK_LOW: Cell<usize> = const { Cell::new(0) };
}

/// The lowest address of the calling thread's stack, if the system tells.
fn stack_low() -> Option<usize> {
    let cached = STACK_LOW.try_with(Cell::get).unwrap_or(1);
    if cached > 1 {
        return Some(cached);
    }
    if cached == 1 {
        return None;
    }
    let low = query_stack_low();
    let _ = STACK_LOW.try_with(|c| c.set(low.unwrap_or(1)));
    low
}

#[cfg(target_os = "linux")]
fn query_stack_low() -> Option<usize> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is written by pthread_getattr_np before it is read, and destroyed
    // once after a successful init; the out-pointers are valid locals.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr = std::ptr::null_mut();
        let mut size = 0usize;
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (got == 0 && !addr.is_null()).then_some(addr as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn query_stack_low() -> Option<usize> {
    None
}

/// The stack pointer. Read from the register where possible: the address of a local is
/// not on the thread's stack under AddressSanitizer (which moves locals to a fake stack).
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies the stack pointer register into a general register; no memory access.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        sp = std::ptr::addr_of!(here) as usize;
    }
    sp
}

/// Stack left below the caller's frame, if known.
pub(crate) fn remaining() -> Option<usize> {
    let sp = stack_pointer();
    stack_low().map(|low| sp.saturating_sub(low))
}

/// Runs `f` where at least [`EXEC_STACK_NEEDED`] of stack is left: here, or on a helper
/// thread with a [`HELPER_STACK`] stack (when the room here is short or unknown).
/// A panic in `f` is resumed in the caller.
///
/// # Errors
///
/// `Err` with the system's error if the helper thread cannot be started (`f` did not run).
pub(crate) fn with_exec_stack<R: Send>(f: impl FnOnce() -> R + Send) -> std::io::Result<R> {
    if remaining().is_some_and(|r| r >= EXEC_STACK_NEEDED) {
        return Ok(f());
    }
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .name("neuron-rt-exec".into())
            .stack_size(HELPER_STACK)
            .spawn_scoped(s, f)?;
        match helper.join() {
            Ok(r) => Ok(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_stack_runs_here_and_a_small_one_moves() {
        let here = |_: ()| std::thread::current().id();
        let big = std::thread::Builder::new()
            .stack_size(32 << 20)
            .spawn(move || {
                let me = std::thread::current().id();
                assert!(remaining().unwrap() >= EXEC_STACK_NEEDED);
                assert_eq!(with_exec_stack(|| here(())).unwrap(), me);
            })
            .unwrap();
        big.join().unwrap();
        let small = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let me = std::thread::current().id();
                assert!(remaining().unwrap() < 2 << 20);
                let ran_on = with_exec_stack(|| {
                    assert!(remaining().unwrap() >= EXEC_STACK_NEEDED);
                    here(())
                })
                .unwrap();
                assert_ne!(ran_on, me);
            })
            .unwrap();
        small.join().unwrap();
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        let small = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| with_exec_stack(|| -> () { panic!("inside") }))
            .unwrap();
        assert!(small.join().is_err());
    }
}
