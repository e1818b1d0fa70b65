//! Requests without a device tensor (a write, read or copy of host tensors only): libnrt
//! picks their queue itself (nrt-sim: TENSOR_OP queue `queue` of core 0), whatever unit
//! they were scheduled through. They must count on the queue that runs them, the one
//! whose XU id their sequence id carries: its `last_submitted`, `in_flight`,
//! `wait_for`, `wait_idle`, retries and unrecoverable flag, and not on the unit they went
//! through.
//!
//! Runs on the dlopen'ed simulator, with `nrta_get_sequence` / `nrta_is_completed`
//! wrapped to hide the completions of one queue on demand (so that "still in flight" is
//! deterministic), and `nrta_tensor_write` wrapped to report a full queue on demand.

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
    // SAFETY: the dlopen'ed simulator's functions and symbols; the three wrappers forward
    // to the simulator's own or answer as libnrt may (not completed yet, queue full).
    unsafe {
        Library::in_process(
            "nrt-sim with held completions and fake full queues",
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
fn host_tensor_requests_count_on_the_queue_that_runs_them() {
    let _g = support::lock();
    let rt = runtime();
    let (host, other) = (host_tensor(&rt, "host"), host_tensor(&rt, "other"));
    let device1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "device1")
        .unwrap();
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();

    let write = core1.write(&host, 0, vec![5u32; 4]).unwrap();
    let seq = write.seq();
    assert_eq!(
        seq.xu_id(),
        core0.xu_id(),
        "nrt-sim runs host tensors on core 0"
    );
    // Counted on the queue that runs it ...
    assert_eq!(core0.last_submitted(), seq);
    core0.wait_for(seq).unwrap();
    assert_eq!(core0.in_flight().unwrap(), 0);
    // ... not on the unit it went through, which refuses the id of another queue.
    assert_eq!(core1.last_submitted().number(), 0);
    let err = core1.wait_for(seq).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "seq", reason }
            if reason.contains("core 0") && reason.contains("not to tensor-op unit (core 1")),
        "{err}"
    );
    // The request names the unit that runs it.
    let runner = write.unit();
    assert_eq!((runner.core(), runner.xu_id()), (0, core0.xu_id()));
    assert_eq!(write.wait().unwrap(), [5; 4]);

    // Reads and copies likewise; a request with a device tensor stays on its unit.
    let read = core1.read(&host, 0, vec![0u32; 4]).unwrap();
    let copy = core1.copy(&host, 0, &other, 0, 16).unwrap();
    assert_eq!(copy.seq(), SeqId::new(core0.xu_id(), seq.number() + 2));
    let copy_seq = copy.seq();
    assert_eq!(core0.last_submitted(), copy_seq);
    assert_eq!(read.wait().unwrap(), [5; 4]);
    copy.wait().unwrap();
    let on_core1 = core1.write(&device1, 0, vec![1u8; 16]).unwrap();
    assert_eq!(on_core1.seq(), SeqId::new(core1.xu_id(), 1));
    assert_eq!(core1.last_submitted(), on_core1.seq());
    on_core1.wait().unwrap();
    assert_eq!(core0.last_submitted(), copy_seq);

    // Queue index 1 goes to queue 1 of core 0.
    let core0_q1 = rt.tensor_op_unit(0, 1).unwrap();
    let core1_q1 = rt.tensor_op_unit(1, 1).unwrap();
    let w = core1_q1.write(&other, 0, vec![2u16; 8]).unwrap();
    assert_eq!(w.seq().xu_id(), core0_q1.xu_id());
    assert_eq!(core0_q1.last_submitted(), w.seq());
    assert_eq!(core1_q1.last_submitted().number(), 0);
    core0_q1.wait_idle().unwrap();
    assert!(w.is_complete().unwrap());
    w.wait().unwrap();
}

#[test]
fn in_flight_and_wait_idle_see_host_tensor_requests_of_other_units() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    let hold = Hold::start(core0.xu_id(), core0.last_completed().unwrap().number());
    let write = core1.write(&host, 0, vec![9u32; 4]).unwrap();
    let _release = ReleaseOnPanic;
    assert_eq!(core0.in_flight().unwrap(), 1);
    assert_eq!(core1.in_flight().unwrap(), 0);
    assert!(
        !core0
            .wait_for_timeout(write.seq(), Some(Duration::from_millis(20)))
            .unwrap()
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(hold);
        });
        core0.wait_idle().unwrap();
    });
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "wait_idle returned after {:?}, before the request completed",
        started.elapsed()
    );
    assert!(write.is_complete().unwrap());
    assert_eq!(core0.in_flight().unwrap(), 0);
    assert_eq!(write.wait().unwrap(), [9; 4]);
}

#[test]
fn a_fatal_host_tensor_request_marks_the_queue_that_ran_it() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let device1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "device1")
        .unwrap();
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    // The first request that core 0's TENSOR_OP queue 0 runs fails and kills the queue.
    support::control()
        .inject_faults("xu:vnc=0:type=tensor_op:queue=0:nth=1")
        .unwrap();
    let err = core1
        .write(&host, 0, vec![1u8; 16])
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert_eq!(
        core0.unrecoverable(),
        Some(NrtStatus::ExecUnitUnrecoverable)
    );
    assert_eq!(core1.unrecoverable(), None, "core 1's queue did not fail");
    // Core 1's queue still works ...
    core1
        .write(&device1, 0, vec![2u8; 16])
        .unwrap()
        .wait()
        .unwrap();
    // ... and host tensor requests, which libnrt would run on the dead queue, are
    // refused by libnrt (which queue it picks is its choice, so only it can refuse them),
    // again without marking core 1's queue.
    let writes = WRITES.load(Ordering::SeqCst);
    let rejected = core1.write(&host, 0, vec![3u8; 16]).unwrap_err();
    assert_eq!(
        rejected.error().status(),
        Some(NrtStatus::ExecUnitUnrecoverable),
        "{rejected}"
    );
    assert_eq!(WRITES.load(Ordering::SeqCst), writes + 1);
    assert_eq!(core1.unrecoverable(), None);
    assert_eq!(rejected.into_inner(), [3u8; 16]);
    // Core 0's own requests fail fast.
    let device0 = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "device0")
        .unwrap();
    let rejected = core0.write(&device0, 0, vec![4u8; 16]).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::Unrecoverable { unit, .. } if unit.contains("core 0")),
        "{rejected}"
    );
    assert_eq!(
        WRITES.load(Ordering::SeqCst),
        writes + 1,
        "libnrt was called"
    );
}

#[test]
fn a_dead_queue_refusing_a_host_tensor_request_does_not_mark_the_unit_it_went_through() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let device1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "device1")
        .unwrap();
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    // One request shows which queue ran host tensors last time (a guess for the next).
    core1
        .write(&host, 0, vec![1u8; 16])
        .unwrap()
        .wait()
        .unwrap();
    // Core 0's TENSOR_OP queue 0 dies at once: libnrt refuses what would run on it.
    support::control()
        .inject_faults("xu:vnc=0:type=tensor_op:queue=0")
        .unwrap();
    let rejected = core1.write(&host, 0, vec![2u8; 16]).unwrap_err();
    assert_eq!(
        rejected.error().status(),
        Some(NrtStatus::ExecUnitUnrecoverable),
        "{rejected}"
    );
    assert_eq!(core1.unrecoverable(), None, "core 1's queue did not fail");
    // Which queue refused is libnrt's choice, so none is marked on a guess; core 0's
    // own next request finds out.
    assert_eq!(core0.unrecoverable(), None);
    core1
        .write(&device1, 0, vec![3u8; 16])
        .unwrap()
        .wait()
        .unwrap();
    let device0 = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "device0")
        .unwrap();
    let rejected = core0.write(&device0, 0, vec![4u8; 16]).unwrap_err();
    assert_eq!(
        rejected.error().status(),
        Some(NrtStatus::ExecUnitUnrecoverable)
    );
    assert_eq!(
        core0.unrecoverable(),
        Some(NrtStatus::ExecUnitUnrecoverable)
    );
}

#[test]
fn submit_with_retry_waits_for_the_queue_that_was_full() {
    let _g = support::lock();
    let rt = runtime();
    let host = host_tensor(&rt, "host");
    let core0 = rt.tensor_op_unit(0, 0).unwrap();
    let core1 = rt.tensor_op_unit(1, 0).unwrap();
    // One request shows which queue runs host tensors.
    core1
        .write(&host, 0, vec![1u8; 16])
        .unwrap()
        .wait()
        .unwrap();
    // A request in flight on core 0 (its completion hidden), and that queue "full".
    let hold = Hold::start(core0.xu_id(), core0.last_completed().unwrap().number());
    let busy = core1.write(&host, 0, vec![2u8; 16]).unwrap();
    let _release = ReleaseOnPanic;
    FULL_ONCE.store(true, Ordering::SeqCst);
    let policy = RetryPolicy {
        max_attempts: 100,
        timeout: Duration::from_secs(10),
    };
    let started = Instant::now();
    let retried = std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(hold);
        });
        core1.submit_with_retry(policy, vec![3u8; 16], |b| core1.write(&host, 0, b))
    });
    let waited = started.elapsed();
    let request = retried.unwrap();
    // It waited for core 0's completion (not for core 1, which runs nothing) and
    // retried at once.
    assert!(
        waited >= Duration::from_millis(90),
        "retried after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
    assert_eq!(request.seq().xu_id(), core0.xu_id());
    busy.wait().unwrap();
    request.wait().unwrap();
}
