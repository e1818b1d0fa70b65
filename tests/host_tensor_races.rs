//! Concurrent synchronous operations on one block of host memory are serialised (issue
//! 11, item 6): libnrt copies into and out of host tensors with `memcpy` on the calling
//! thread, so two at once on the same bytes would be a data race.
//!
//! Deterministic detection: the library is the dlopen'ed simulator with its data-moving
//! functions wrapped. The first call after `arm` stays inside the wrapper until a second
//! call enters (an overlap, recorded) or a bound passes; without a lock the second
//! thread enters at once, with the lock it cannot enter before the first call returns.
//! The bound only ends the wait: no assertion depends on how long anything took.

mod support;

use std::ffi::c_void;
use std::sync::{Barrier, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::{self as sys, Library, NrtFns};
use neuron_rt::{Model, Placement, Runtime, Tensor};
use support::{add_model, assert_no_leaks, lock, sim};

/// How long an armed call waits for a second one to enter.
const HOLD: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Overlaps {
    /// Calls inside a wrapped function now.
    inside: usize,
    /// Whether two calls were ever inside at once since `arm`.
    overlapped: bool,
    /// Whether the next call waits for another to enter.
    hold_next: bool,
}

static STATE: Mutex<Overlaps> = Mutex::new(Overlaps {
    inside: 0,
    overlapped: false,
    hold_next: false,
});
static ENTERED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, Overlaps> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resets the record and makes the next wrapped call wait for a second one.
fn arm() {
    let mut s = state();
    s.overlapped = false;
    s.hold_next = true;
}

fn overlapped() -> bool {
    state().overlapped
}

/// Marks a call inside; the armed call waits here for another.
fn enter() {
    let mut s = state();
    s.inside += 1;
    if s.inside > 1 {
        s.overlapped = true;
        ENTERED.notify_all();
    }
    if std::mem::take(&mut s.hold_next) {
        let deadline = Instant::now() + HOLD;
        while s.inside < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = ENTERED
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn exit() {
    state().inside -= 1;
}

/// The simulator's own functions, called by the wrappers.
fn real() -> &'static NrtFns {
    static REAL: OnceLock<NrtFns> = OnceLock::new();
    REAL.get_or_init(|| *sim().fns())
}

/// Runs `call` between `enter` and `exit`.
fn recorded<R>(call: impl FnOnce() -> R) -> R {
    enter();
    let r = call();
    exit();
    r
}

unsafe extern "C" fn write(
    t: *mut sys::nrt_tensor_t,
    buf: *const c_void,
    offset: usize,
    size: usize,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_write.unwrap()(t, buf, offset, size) })
}

unsafe extern "C" fn read(
    t: *const sys::nrt_tensor_t,
    buf: *mut c_void,
    offset: usize,
    size: usize,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_read.unwrap()(t, buf, offset, size) })
}

unsafe extern "C" fn copy(
    src: *const sys::nrt_tensor_t,
    src_offset: usize,
    dst: *mut sys::nrt_tensor_t,
    dst_offset: usize,
    size: usize,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_copy.unwrap()(src, src_offset, dst, dst_offset, size) })
}

unsafe extern "C" fn memset(
    t: *mut sys::nrt_tensor_t,
    offset: u64,
    value: i32,
    size: usize,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_memset.unwrap()(t, offset, value, size) })
}

unsafe extern "C" fn read_batch(
    b: *const sys::nrt_tensor_batch_t,
    n: u64,
    flag: bool,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_read_batch.unwrap()(b, n, flag) })
}

unsafe extern "C" fn write_batch(
    b: *const sys::nrt_tensor_batch_t,
    n: u64,
    flag: bool,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_tensor_write_batch.unwrap()(b, n, flag) })
}

unsafe extern "C" fn execute(
    m: *mut sys::nrt_model_t,
    inputs: *const sys::nrt_tensor_set_t,
    outputs: *mut sys::nrt_tensor_set_t,
) -> sys::NRT_STATUS {
    // SAFETY: forwarded unchanged to the simulator's function, with the caller's contract.
    recorded(|| unsafe { real().nrt_execute.unwrap()(m, inputs, outputs) })
}

/// The dlopen'ed simulator with its data-moving functions recorded.
fn recording_library() -> &'static Library {
    let mut fns = *real();
    fns.nrt_tensor_write = Some(write);
    fns.nrt_tensor_read = Some(read);
    fns.nrt_tensor_copy = Some(copy);
    fns.nrt_tensor_memset = Some(memset);
    fns.nrt_tensor_read_batch = Some(read_batch);
    fns.nrt_tensor_write_batch = Some(write_batch);
    fns.nrt_execute = Some(execute);
    // SAFETY: every entry is the simulator's function of that name or a wrapper that
    // forwards to it unchanged.
    unsafe { Library::in_process("sim-recording-overlaps", fns, None) }
}

/// Runs `a` and `b` on two threads started together, after `arm`; whether they
/// overlapped inside libnrt.
fn race(a: impl FnOnce() + Send, b: impl FnOnce() + Send) -> bool {
    arm();
    let start = Barrier::new(2);
    thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            a();
        });
        s.spawn(|| {
            start.wait();
            b();
        });
    });
    overlapped()
}

/// A runtime on [`recording_library`].
fn recording_runtime() -> Runtime {
    Runtime::builder()
        .library(recording_library())
        .build()
        .unwrap()
}

fn host(rt: &Runtime, size: usize, name: &str) -> Tensor {
    rt.allocate_tensor(Placement::Host, None, size, name)
        .unwrap()
}

#[test]
fn writes_to_one_host_tensor_do_not_overlap() {
    let _g = lock();
    let rt = recording_runtime();
    let t = host(&rt, 64, "t");
    let overlap = race(
        || t.write(&[1u8; 64]).unwrap(),
        || t.write(&[2u8; 64]).unwrap(),
    );
    assert!(!overlap, "two writes of host tensor `t` ran at once");
    let bytes: Vec<u8> = t.to_vec().unwrap();
    assert!(
        bytes == [1; 64] || bytes == [2; 64],
        "mixed bytes: {bytes:?}"
    );
    drop((t, rt));
    assert_no_leaks();
}

#[test]
fn a_read_of_a_slice_does_not_overlap_a_write_of_its_parent() {
    let _g = lock();
    let rt = recording_runtime();
    let parent = rt
        .allocate_tensor(Placement::Host, None, 64, "parent")
        .unwrap();
    let part = parent.slice(16, 16, "part").unwrap();
    let overlap = race(
        || parent.write(&[7u8; 64]).unwrap(),
        || {
            let mut out = [0u8; 16];
            part.read(&mut out).unwrap();
        },
    );
    assert!(
        !overlap,
        "a read of slice `part` ran during a write of `parent`"
    );
    drop((part, parent, rt));
    assert_no_leaks();
}

#[test]
fn fill_copy_and_batches_into_an_attached_buffer_do_not_overlap_reads() {
    let _g = lock();
    let rt = recording_runtime();
    let t = rt.tensor_from_buffer(vec![0u8; 32], "buffer").unwrap();
    let d = rt
        .allocate_tensor(Placement::Device, Some(0), 32, "d")
        .unwrap();
    let read_all = || drop(t.to_vec::<u8>().unwrap());

    assert!(!race(|| t.fill(3).unwrap(), read_all), "fill during a read");
    assert!(
        !race(|| t.copy_from(&d).unwrap(), read_all),
        "copy into `buffer` during a read"
    );
    let write_batch = || {
        let mut batch = rt.write_batch();
        batch.write(&t, 0, &[9u8; 8]).unwrap();
        batch.write(&d, 0, &[9u8; 8]).unwrap();
        batch.run().unwrap();
    };
    let read_batch = || {
        let mut out = [0u8; 8];
        let mut batch = rt.read_batch();
        batch.read(&t, 8, &mut out).unwrap();
        batch.run().unwrap();
    };
    assert!(
        !race(write_batch, read_batch),
        "a write batch during a read batch"
    );
    drop((t, d, rt));
    assert_no_leaks();
}

/// The add model with every tensor in host memory.
fn host_sets(model: &Model) -> (neuron_rt::TensorSet, neuron_rt::TensorSet) {
    let rt = model.runtime();
    let (mut inputs, mut outputs) = (rt.tensor_set().unwrap(), rt.tensor_set().unwrap());
    for (set, infos) in [
        (&mut inputs, model.inputs()),
        (&mut outputs, model.outputs()),
    ] {
        for info in infos {
            set.insert(&info.name, &host(rt, info.size, &info.name))
                .unwrap();
        }
    }
    (inputs, outputs)
}

#[test]
fn an_execution_writing_a_host_output_does_not_overlap_a_read_of_it() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model_on(&add_model(), 0).unwrap();
    let (inputs, mut outputs) = host_sets(&model);
    let out = outputs.get("out").unwrap().clone();
    let overlap = race(
        || model.execute(&inputs, &mut outputs).unwrap(),
        || drop(out.to_vec::<f32>().unwrap()),
    );
    assert!(!overlap, "a read of output `out` ran during the execution");
    drop((out, inputs, outputs, model, rt));
    assert_no_leaks();
}

#[test]
fn reads_of_host_tensors_and_device_writes_still_run_together() {
    let _g = lock();
    let rt = recording_runtime();
    // Readers share the lock: two reads of one host tensor may overlap.
    let t = host(&rt, 64, "t");
    let read_all = || drop(t.to_vec::<u8>().unwrap());
    assert!(race(read_all, read_all), "two reads of `t` were serialised");
    // Device tensors take no lock at all.
    let d = rt
        .allocate_tensor(Placement::Device, Some(0), 64, "d")
        .unwrap();
    assert!(
        race(
            || d.write(&[1u8; 64]).unwrap(),
            || d.write(&[2u8; 64]).unwrap()
        ),
        "two writes of device tensor `d` were serialised"
    );
    drop((t, d, rt));
    assert_no_leaks();
}

#[test]
fn copies_within_one_host_storage_lock_it_once() {
    let _g = lock();
    let rt = recording_runtime();
    let t = host(&rt, 16, "t");
    t.write(&[1u8, 2, 3, 4]).unwrap();
    let tail = t.slice(8, 8, "tail").unwrap();
    // Source and destination share one lock: taken once, exclusively (taking it twice
    // would deadlock here).
    t.copy_range_from(&t, 0, 4, 4).unwrap();
    tail.copy_range_from(&t, 0, 4, 4).unwrap();
    assert_eq!(
        t.to_vec::<u8>().unwrap(),
        [1, 2, 3, 4, 1, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 4]
    );
    drop((tail, t, rt));
    assert_no_leaks();
}
