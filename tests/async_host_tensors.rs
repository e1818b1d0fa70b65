//! Transfers run on the unit they are scheduled on: the unit passes its core as
//! `lnc_idx` (the DMA engine) and its queue index, also for host tensors, so every
//! request counts on that unit (`last_submitted`, `in_flight`, `wait_for`, `wait_idle`,
//! retries, unrecoverable flag). A unit learns its XU id from the ids its own schedule
//! calls return, never from `nrta_get_sequence` before anything completed (which libnrt
//! does not document: this file's wrapper reports 0 there, as a library may).
//!
//! Runs on the dlopen'ed simulator, with `nrta_get_sequence` / `nrta_is_completed`
//! wrapped to hide the completions of one queue on demand (so that "still in flight" is
//! deterministic) and to report 0 for a queue that completed nothing, and
//! `nrta_tensor_write` wrapped to report a full queue on demand. The completion-event
//! functions are left out (waits poll), since hidden completions would still be signalled.

mod support;

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Error, NrtStatus, Placement, RetryPolicy, Runtime, SeqId, Tensor};

/// The simulator's own functions, called by the wrappers.
struct Real {
    get_sequence: sys::fn_types::nrta_get_sequence,
    is_completed: sys::fn_types::nrta_is_completed,
    tensor_write: sys::fn_types::nrta_tensor_write,
}
static REAL: OnceLock<Real> = OnceLock::new();

const NO_QUEUE: u32 = u32::MAX;
/// The XU id whose completions above [`HOLD_AT`] are hidden, or [`NO_QUEUE`].
static HOLD_XU: AtomicU32 = AtomicU32::new(NO_QUEUE);
static HOLD_AT: AtomicU64 = AtomicU64::new(0);
/// While set, the next `nrta_tensor_write` reports `NRT_QUEUE_FULL` without scheduling.
static FULL_ONCE: AtomicBool = AtomicBool::new(false);
/// `nrta_tensor_write` calls, faked ones included.
static WRITES: AtomicU64 = AtomicU64::new(0);

fn held(seq: u64) -> Option<u64> {
    let id = SeqId::from_raw(seq);
    (u32::from(id.xu_id()) == HOLD_XU.load(Ordering::SeqCst))
        .then(|| HOLD_AT.load(Ordering::SeqCst))
}

unsafe extern "C" fn get_sequence(
    lnc: u32,
    xu: sys::nrta_xu_t,
    queue: i32,
    seq: *mut u64,
) -> sys::NRT_STATUS {
    let Some(real) = REAL.get() else {
        return sys::NRT_FAILURE;
    };
    // SAFETY: the simulator's own function, with the caller's arguments.
    let status = unsafe { (real.get_sequence)(lnc, xu, queue, seq) };
    if status == sys::NRT_SUCCESS
        // SAFETY: the simulator wrote a sequence id through `seq`, which is valid.
        && let Some(limit) = held(unsafe { *seq })
    {
        // SAFETY: as above.
        let last = SeqId::from_raw(unsafe { *seq });
        let shown = SeqId::new(last.xu_id(), last.number().min(limit));
        // SAFETY: as above.
        unsafe { *seq = shown.raw() };
    }
    // A queue that completed nothing: 0, not an id naming the queue.
    // SAFETY: `seq` is valid (the caller's out-pointer, written by the simulator).
    if status == sys::NRT_SUCCESS && SeqId::from_raw(unsafe { *seq }).number() == 0 {
        // SAFETY: as above.
        unsafe { *seq = 0 };
    }
    status
}

unsafe extern "C" fn is_completed(seq: u64, done: *mut bool) -> sys::NRT_STATUS {
    let Some(real) = REAL.get() else {
        return sys::NRT_FAILURE;
    };
    if !done.is_null()
        && let Some(limit) = held(seq)
        && SeqId::from_raw(seq).number() > limit
    {
        // SAFETY: non-null; the caller passes a valid out-pointer.
        unsafe { *done = false };
        return sys::NRT_SUCCESS;
    }
    // SAFETY: the simulator's own function, with the caller's arguments.
    unsafe { (real.is_completed)(seq, done) }
}

unsafe extern "C" fn tensor_write(
    tensor: *mut sys::nrt_tensor_t,
    buf: *const c_void,
    offset: u64,
    size: u64,
    lnc: i32,
    queue: i32,
    ret: *mut sys::NRT_STATUS,
    seq: *mut u64,
) -> sys::NRT_STATUS {
    WRITES.fetch_add(1, Ordering::SeqCst);
    if FULL_ONCE.swap(false, Ordering::SeqCst) {
        return sys::NRT_QUEUE_FULL;
    }
    match REAL.get() {
        // SAFETY: the simulator's own function, with the caller's arguments.
        Some(real) => unsafe {
            (real.tensor_write)(tensor, buf, offset, size, lnc, queue, ret, seq)
        },
        None => sys::NRT_FAILURE,
    }
}

fn sim_symbol(name: &CStr) -> *mut c_void {
    support::sim().symbol(name).unwrap_or(std::ptr::null_mut())
}

/// The dlopen'ed simulator with the wrappers above.
fn library() -> &'static Library {
    let mut fns = *support::sim().fns();
    REAL.get_or_init(|| Real {
        get_sequence: fns.nrta_get_sequence.expect("nrta_get_sequence"),
        is_completed: fns.nrta_is_completed.expect("nrta_is_completed"),
        tensor_write: fns.nrta_tensor_write.expect("nrta_tensor_write"),
    });
    fns.nrta_get_sequence = Some(get_sequence);
    fns.nrta_is_completed = Some(is_completed);
    fns.nrta_tensor_write = Some(tensor_write);
    fns.nrta_event_register_seq_id_completion = None;
    fns.nrta_event_register_xu_completion = None;
    // SAFETY: the dlopen'ed simulator's functions and symbols; the three wrappers forward
    // to the simulator's own or answer as libnrt may (not completed yet, queue full).
    unsafe {
        Library::in_process(
            "nrt-sim with held completions, fake full queues, no events",
            fns,
            Some(sim_symbol),
        )
    }
}

/// Hides the completions of queue `xu_id` above its current number until dropped.
struct Hold;

impl Hold {
    fn start(xu_id: u16, at: u64) -> Hold {
        HOLD_AT.store(at, Ordering::SeqCst);
        HOLD_XU.store(xu_id.into(), Ordering::SeqCst);
        Hold
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        HOLD_XU.store(NO_QUEUE, Ordering::SeqCst);
    }
}

/// Declared after the requests of a held queue: if the test fails, shows their
/// completions before the requests' drops wait for them.
struct ReleaseOnPanic;

impl Drop for ReleaseOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            HOLD_XU.store(NO_QUEUE, Ordering::SeqCst);
        }
    }
}

fn runtime() -> Runtime {
    HOLD_XU.store(NO_QUEUE, Ordering::SeqCst);
    FULL_ONCE.store(false, Ordering::SeqCst);
    Runtime::builder().library(library()).build().unwrap()
}

fn host_tensor(rt: &Runtime, name: &str) -> Tensor {
    rt.allocate_tensor(Placement::Host, None, 16, name).unwrap()
}

#[test]
fn host_tensor_requests_run_on_the_unit_they_are_scheduled_on() {
    let _g = support::lock();
    let rt = runtime();
    let (host, other) = (host_tensor(&rt, "host"), host_tensor(&rt, "other"));
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    let core1_q1 = rt.tensor_op_unit(1, 1).unwrap();
    assert_eq!(
        (core1.xu_id(), core1.last_submitted()),
        (None, SeqId::new(0, 0))
    );
    assert!(!core1.has_events(), "this wrapper has no event functions");

    let write = core1.write(&host, 0, vec![7u8; 16]).unwrap();
    let id = core1.xu_id().expect("learnt from the accepted request");
    assert_eq!(write.seq(), SeqId::new(id, 1));
    assert_eq!(core1.last_submitted(), write.seq());
    assert_eq!(write.unit().core(), 1);
    assert_eq!(write.wait().unwrap(), [7u8; 16]);
    let copy = core1_q1.copy(&host, 0, &other, 0, 16).unwrap();
    assert_eq!(Some(copy.seq().xu_id()), core1_q1.xu_id());
    assert_ne!(core1_q1.xu_id(), core1.xu_id());
    copy.wait().unwrap();
    assert_eq!(other.to_vec::<u8>().unwrap(), [7u8; 16]);
    // Nothing ran on core 0's unit.
    assert_eq!((core0.xu_id(), core0.last_submitted().number()), (None, 0));
    core0.wait_idle().unwrap();
    // A device tensor of another core is refused before libnrt is called.
    let device1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "device1")
        .unwrap();
    let writes = WRITES.load(Ordering::SeqCst);
    let rejected = core0.write(&device1, 0, vec![1u8; 16]).unwrap_err();
    assert!(
        matches!(
            rejected.error(),
            Error::WrongCore {
                tensor_core: 1,
                expected_core: 0,
                ..
            }
        ),
        "{rejected}"
    );
    assert_eq!(WRITES.load(Ordering::SeqCst), writes);
    assert_eq!(rejected.into_inner(), [1u8; 16]);
}

#[test]
fn a_library_reporting_zero_before_any_completion_still_counts_and_waits() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let unit = rt.tensor_op_unit(1, 0).unwrap();
    assert_eq!(unit.last_completed().unwrap().raw(), 0, "the wrapper's 0");
    // The first request's completion hidden: in flight until released. The XU id is
    // nrt-sim's for (core 1, TENSOR_OP, queue 0): type | queue << 4 | core << 8.
    let hold = Hold::start(0x100, 0);
    let write = unit.write(&host, 0, vec![9u8; 16]).unwrap();
    let _release = ReleaseOnPanic;
    assert_eq!(write.seq().xu_id(), 0x100);
    assert_eq!(unit.in_flight().unwrap(), 1);
    assert!(
        !unit
            .wait_for_timeout(write.seq(), Some(Duration::from_millis(20)))
            .unwrap()
    );
    assert!(!write.is_complete().unwrap());
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(hold);
        });
        unit.wait_idle().unwrap();
    });
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "wait_idle returned after {:?}, before the request completed",
        started.elapsed()
    );
    assert_eq!(unit.in_flight().unwrap(), 0);
    unit.wait_for(write.seq()).unwrap();
    assert_eq!(write.wait().unwrap(), [9u8; 16]);
}

#[test]
fn a_fatal_host_tensor_request_marks_its_own_unit() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    support::control()
        .inject_faults("xu:vnc=1:type=tensor_op:queue=0:nth=1")
        .unwrap();
    let err = core1
        .write(&host, 0, vec![1u8; 16])
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert_eq!(
        core1.unrecoverable(),
        Some(NrtStatus::ExecUnitUnrecoverable)
    );
    assert_eq!(core0.unrecoverable(), None, "core 0's queue did not fail");
    // Core 1's unit now fails fast, without calling libnrt; core 0's still works.
    let writes = WRITES.load(Ordering::SeqCst);
    let rejected = core1.write(&host, 0, vec![2u8; 16]).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::Unrecoverable { unit, .. } if unit.contains("core 1")),
        "{rejected}"
    );
    assert_eq!(WRITES.load(Ordering::SeqCst), writes, "libnrt was called");
    core0
        .write(&host, 0, vec![3u8; 16])
        .unwrap()
        .wait()
        .unwrap();
    support::control().clear_faults();
}

#[test]
fn submit_with_retry_waits_for_a_completion_on_its_unit() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let unit = rt.tensor_op_unit(1, 0).unwrap();
    unit.write(&host, 0, vec![1u8; 16]).unwrap().wait().unwrap();
    let id = unit.xu_id().unwrap();
    // A request in flight (its completion hidden), and the queue "full".
    let hold = Hold::start(id, unit.last_completed().unwrap().number());
    let busy = unit.write(&host, 0, vec![2u8; 16]).unwrap();
    let _release = ReleaseOnPanic;
    FULL_ONCE.store(true, Ordering::SeqCst);
    let policy = RetryPolicy {
        max_attempts: 100,
        timeout: Duration::from_secs(10),
    };
    let writes = WRITES.load(Ordering::SeqCst);
    let started = Instant::now();
    let retried = std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(hold);
        });
        unit.submit_with_retry(policy, vec![3u8; 16], |b| unit.write(&host, 0, b))
    });
    let waited = started.elapsed();
    let request = retried.unwrap();
    // One rejection, then a wait for the held completion, then one accepted attempt.
    assert_eq!(WRITES.load(Ordering::SeqCst), writes + 2);
    assert!(
        waited >= Duration::from_millis(90),
        "retried after {waited:?}, before a completion"
    );
    assert_eq!(request.seq(), SeqId::new(id, busy.seq().number() + 1));
    assert_eq!(busy.wait().unwrap(), [2u8; 16]);
    assert_eq!(request.wait().unwrap(), [3u8; 16]);
}
