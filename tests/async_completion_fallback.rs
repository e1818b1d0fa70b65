//! When libnrt cannot say whether a request completed (`nrta_is_completed` fails, as it
//! does for ids it does not know), waiting falls back on the last completed number of
//! the request's unit (requests of one queue complete in order).
//!
//! Own test binary: before this fallback, a failed wait leaked its request, and with it
//! the runtime, for the rest of the process.
//!
//! Runs on the dlopen'ed simulator, with `nrta_is_completed` wrapped to fail on demand.

mod support;

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Placement, Runtime, xu};

static REAL_IS_COMPLETED: OnceLock<sys::fn_types::nrta_is_completed> = OnceLock::new();
/// While set, `nrta_is_completed` fails with `NRT_INVALID` for every id.
static FAIL: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn failing_is_completed(seq: u64, done: *mut bool) -> sys::NRT_STATUS {
    if FAIL.load(Ordering::SeqCst) {
        return sys::NRT_INVALID;
    }
    match REAL_IS_COMPLETED.get() {
        // SAFETY: the simulator's own function, called with the caller's arguments.
        Some(real) => unsafe { real(seq, done) },
        None => sys::NRT_FAILURE,
    }
}

fn sim_symbol(name: &CStr) -> *mut c_void {
    support::sim().symbol(name).unwrap_or(std::ptr::null_mut())
}

/// The dlopen'ed simulator whose `nrta_is_completed` fails while [`FAIL`] is set.
fn library() -> &'static Library {
    let mut fns = *support::sim().fns();
    let real = fns.nrta_is_completed.expect("nrta_is_completed");
    REAL_IS_COMPLETED.get_or_init(|| real);
    fns.nrta_is_completed = Some(failing_is_completed);
    // SAFETY: the dlopen'ed simulator's functions and symbols; nrta_is_completed wraps
    // the simulator's own (or fails with a status code, writing nothing).
    unsafe {
        Library::in_process(
            "nrt-sim with a failing nrta_is_completed",
            fns,
            Some(sim_symbol),
        )
    }
}

/// Sets [`FAIL`] for its lifetime.
struct Failing;

impl Failing {
    fn start() -> Failing {
        FAIL.store(true, Ordering::SeqCst);
        Failing
    }
}

impl Drop for Failing {
    fn drop(&mut self) {
        FAIL.store(false, Ordering::SeqCst);
    }
}

#[test]
fn requests_are_waited_for_when_libnrt_cannot_tell_their_state() {
    let _g = support::lock();
    {
        let rt = Runtime::builder().library(library()).build().unwrap();
        let t = rt
            .allocate_tensor(Placement::Device, Some(0), 16, "t")
            .unwrap();
        let unit = rt.tensor_op_unit(0, 0).unwrap();
        let _failing = Failing::start();
        let request = unit.write(&t, 0, vec![7u32; 4]).unwrap();
        assert_eq!(request.wait().unwrap(), [7; 4]);
        let read = unit.read(&t, 0, vec![0u32; 4]).unwrap();
        assert!(read.is_complete().is_ok());
        assert_eq!(read.wait().unwrap(), [7; 4]);
        // Dropped unwaited: released after completion (the background thread's queries
        // fall back as a wait's do), not leaked.
        drop(unit.write(&t, 0, vec![1u8; 16]).unwrap());
    }
    // Nothing leaked: the runtime closes and a new one starts.
    let (rt, _) = support::runtime_after_close(std::time::Duration::from_secs(10));
    drop(rt);
    support::assert_no_leaks();
    drop(Runtime::builder().library(library()).build().unwrap());
}

#[test]
fn a_scope_waits_for_a_queued_request_when_completion_queries_fail() {
    let _g = support::lock();
    // nrt-sim's largest host tensor; the queue holds 8 requests (7 writes, then the read).
    const BIG: usize = 4 << 20;
    let rt = Runtime::builder().library(library()).build().unwrap();
    let host = rt
        .allocate_tensor(Placement::Host, None, BIG, "host")
        .unwrap();
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    // Queue (core 0, 0) completes more requests than (core 1, 0) will have issued, so a
    // fallback on the wrong queue's number would end the wait early.
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 4, "small")
        .unwrap();
    for _ in 0..20 {
        core0
            .write(&small, 0, vec![0u8; 4])
            .unwrap()
            .wait()
            .unwrap();
    }
    // Slow work queued on (core 1, 0) ahead of the scoped read.
    let queued: Vec<_> = (0..7)
        .map(|i| core1.write(&host, 0, vec![i as u8; BIG]).unwrap())
        .collect();
    let mut out = vec![0u8; BIG];
    let read_seq = {
        let _failing = Failing::start();
        xu::scope(|s| {
            let read = s.read(&core1, &host, 0, &mut out).unwrap();
            assert_eq!(Some(read.seq().xu_id()), core1.xu_id(), "the unit's queue");
            let seq = read.seq();
            // Left to the scope, which must wait for it before `out` is usable again.
            std::mem::forget(read);
            seq
        })
    };
    // The scope returned: the read it lent `out` to must be done.
    let done = core1.last_completed().unwrap();
    assert!(
        done.number() >= read_seq.number(),
        "the scope returned while request {read_seq} was still queued (last done {done})"
    );
    assert!(out.iter().all(|&b| b == 6), "the read saw the last write");
    for request in queued {
        request.wait().unwrap();
    }
}
