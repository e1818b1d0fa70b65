//! Stack room for `nrt_execute`.
//!
//! libnrt's `nrt_execute` has been seen to keep a 4 MiB buffer on the calling thread's
//! stack: a Rust program crashed inside it on a thread with Rust's default 2 MiB stack
//! (shared/nrt-abi.md section 4). So the synchronous execution calls run only where at
//! least [`EXEC_STACK_NEEDED`] of stack is left; elsewhere they run on a helper thread
//! with a [`HELPER_STACK`] stack (kept and reused) while the caller blocks until it
//! returns. That costs two thread wake-ups per call (tens of microseconds); programs
//! that execute often avoid it by executing on threads with larger stacks (for example
//! `std::thread::Builder::stack_size(16 << 20)`, or tokio's `thread_stack_size`). A
//! process's main thread usually has 8 MiB in all (`ulimit -s`), which leaves more than
//! [`EXEC_STACK_NEEDED`]: `main` calls `nrt_execute` directly (shared/DESIGN.md).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Stack that must be left for a call to `nrt_execute`: the 4 MiB libnrt was seen to
/// use plus 2 MiB for its other frames. A main thread's 8 MiB qualifies.
pub const EXEC_STACK_NEEDED: usize = 6 << 20;

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
/// thread with a [`HELPER_STACK`] stack (when the room here is short or unknown), while
/// this thread waits. A panic in `f` is resumed in the caller.
///
/// Helper threads are reused: a new thread's stack pages are fresh, and libnrt touching
/// megabytes of them made every call pay the kernel for zeroed pages (milliseconds). Up
/// to [`IDLE_HELPERS`] idle helpers are kept; more concurrent callers start more, which
/// exit after their call.
///
/// # Errors
///
/// `Err` with the system's error if no helper is idle and a new one cannot be started
/// (`f` did not run).
pub(crate) fn with_exec_stack<R: Send>(f: impl FnOnce() -> R + Send) -> std::io::Result<R> {
    if remaining().is_some_and(|r| r >= EXEC_STACK_NEEDED) {
        return Ok(f());
    }
    let helper = Helper::take()?;
    let mut f = Some(f);
    let mut out = None;
    let mut task = || {
        if let Some(f) = f.take() {
            out = Some(catch_unwind(AssertUnwindSafe(f)));
        }
    };
    helper.run(&mut task);
    helper.give_back();
    match out {
        Some(Ok(r)) => Ok(r),
        Some(Err(panic)) => resume_unwind(panic),
        // `run` returns only after the task ran, and the task always sets `out`.
        None => Err(std::io::Error::other(
            "the exec-stack helper did not run the call",
        )),
    }
}

/// Idle helper threads kept for reuse (each keeps the stack pages libnrt touched).
pub(crate) const IDLE_HELPERS: usize = 4;

/// The task a helper runs: a pointer to a closure on the waiting caller's stack.
struct Task(*mut (dyn FnMut() + Send));

// SAFETY: the closure is `Send`; the pointer is only dereferenced by the helper while
// the caller that owns the closure waits for it (see `Helper::run`).
unsafe impl Send for Task {}

enum Slot {
    Idle,
    Run(Task),
    Done,
    /// Not needed any more: the thread exits.
    Exit,
}

/// One helper thread and the slot through which it gets its task.
struct Helper {
    slot: Mutex<Slot>,
    changed: Condvar,
}

static IDLE: Mutex<Vec<Arc<Helper>>> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Vec<Arc<Helper>>> {
    // Entries are pushed and popped whole, so a poisoned list is still consistent.
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Helper {
    /// An idle helper, or a new one.
    fn take() -> std::io::Result<Arc<Helper>> {
        if let Some(helper) = idle().pop() {
            return Ok(helper);
        }
        let helper = Arc::new(Helper {
            slot: Mutex::new(Slot::Idle),
            changed: Condvar::new(),
        });
        let theirs = Arc::clone(&helper);
        std::thread::Builder::new()
            .name("neuron-rt-exec".into())
            .stack_size(HELPER_STACK)
            .spawn(move || theirs.serve())?;
        Ok(helper)
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // The slot is replaced whole under the lock; nothing panics while holding it.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `task` on this helper and returns once it has run.
    fn run(&self, task: &mut (dyn FnMut() + Send)) {
        let task: *mut (dyn FnMut() + Send + '_) = task;
        // SAFETY: only the lifetime bound is erased. The helper calls the closure before
        // it sets `Done`, and this function does not return (nor unwind: nothing below
        // panics) until it has seen `Done`, so the closure outlives every use.
        let task = Task(unsafe {
            std::mem::transmute::<*mut (dyn FnMut() + Send + '_), *mut (dyn FnMut() + Send)>(task)
        });
        let mut slot = self.lock();
        *slot = Slot::Run(task);
        self.changed.notify_all();
        while !matches!(*slot, Slot::Done) {
            slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
        *slot = Slot::Idle;
    }

    /// Back to the idle list, or told to exit when the list is full.
    fn give_back(self: Arc<Helper>) {
        let mut idle = idle();
        if idle.len() < IDLE_HELPERS {
            idle.push(self);
            return;
        }
        drop(idle);
        *self.lock() = Slot::Exit;
        self.changed.notify_all();
    }

    /// The helper thread: runs tasks until told to exit. Blocks without a timeout in
    /// between (no periodic wake-ups).
    fn serve(self: Arc<Helper>) {
        let mut slot = self.lock();
        loop {
            match std::mem::replace(&mut *slot, Slot::Idle) {
                Slot::Exit => return,
                Slot::Run(task) => {
                    drop(slot);
                    // SAFETY: the caller waits in `run` until `Done` (set below), so the
                    // closure behind the pointer is alive and used by this thread only.
                    // It catches panics itself (`with_exec_stack`), so this returns.
                    unsafe { (*task.0)() };
                    slot = self.lock();
                    *slot = Slot::Done;
                    self.changed.notify_all();
                }
                other => {
                    *slot = other;
                    slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_stack_runs_here_and_a_small_one_moves() {
        let _serial = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
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
    fn a_thread_with_a_main_threads_8_mib_runs_here() {
        let _serial = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let like_main = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(|| {
                let me = std::thread::current().id();
                (with_exec_stack(|| std::thread::current().id()).unwrap(), me)
            })
            .unwrap();
        let (ran_on, me) = like_main.join().unwrap();
        assert_eq!(
            ran_on, me,
            "an 8 MiB thread (a main thread's size) needs no helper"
        );
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        let _serial = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let small = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| with_exec_stack(|| -> () { panic!("inside") }))
            .unwrap();
        assert!(small.join().is_err());
    }

    /// The pool tests look at the idle list, so they do not run at the same time.
    static POOL_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn helpers_are_reused_and_survive_a_panic() {
        let _serial = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let small = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let me = std::thread::current().id();
                let first = with_exec_stack(|| std::thread::current().id()).unwrap();
                let panicked = catch_unwind(|| with_exec_stack(|| -> () { panic!("inside") }));
                let again = with_exec_stack(|| std::thread::current().id()).unwrap();
                (me, first, panicked.is_err(), again)
            })
            .unwrap();
        let (me, first, panicked, again) = small.join().unwrap();
        assert_ne!(first, me);
        assert!(panicked, "the helper's panic reaches the caller");
        // One caller at a time (other callers in this binary are serialised by
        // POOL_TESTS or have big stacks): the idle helper is taken again.
        assert_eq!(again, first, "the helper thread is reused");
    }

    #[test]
    fn concurrent_short_stack_callers_each_get_a_helper() {
        let _serial = POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let callers: Vec<_> = (0..IDLE_HELPERS * 2)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(move || {
                        with_exec_stack(|| {
                            assert!(remaining().unwrap() >= EXEC_STACK_NEEDED);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            i * 2
                        })
                        .unwrap()
                    })
                    .unwrap()
            })
            .collect();
        let results: Vec<usize> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(
            results,
            (0..IDLE_HELPERS * 2).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(idle().len() <= IDLE_HELPERS);
    }
}
