//! With the 2.31 polling fallback (no completion events): poller entries of futures
//! that were forgotten are dropped with their runtime; none is queried against a later
//! runtime of the same library (whose answer, "sequence id ... was never issued", was
//! logged for every such entry). `nrta_is_completed` is wrapped so that the test can
//! hold the poller thread and count its calls. In its own binary: forgotten futures leak.

mod support;

use std::ffi::{CStr, c_void};
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Placement, Runtime};

static REAL_IS_COMPLETED: OnceLock<sys::fn_types::nrta_is_completed> = OnceLock::new();
static GATE: Mutex<bool> = Mutex::new(false);
static GATE_OPENED: Condvar = Condvar::new();
static POLLER_AT_GATE: AtomicBool = AtomicBool::new(false);
/// Whether the poller's calls are counted, and how many there were.
static COUNTING: AtomicBool = AtomicBool::new(false);
static POLLER_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn gated_is_completed(seq: u64, done: *mut bool) -> sys::NRT_STATUS {
    if std::thread::current().name() == Some("neuron-rt-poller") {
        if COUNTING.load(Ordering::SeqCst) {
            POLLER_CALLS.fetch_add(1, Ordering::SeqCst);
        }
        let mut closed = GATE.lock().unwrap_or_else(|e| e.into_inner());
        while *closed {
            POLLER_AT_GATE.store(true, Ordering::SeqCst);
            closed = GATE_OPENED.wait(closed).unwrap_or_else(|e| e.into_inner());
        }
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

/// The dlopen'ed simulator without completion events (as a 2.31 runtime) and with
/// `nrta_is_completed` gated (same simulator state).
fn gated_library() -> &'static Library {
    let mut fns = *support::sim().fns();
    REAL_IS_COMPLETED.get_or_init(|| fns.nrta_is_completed.expect("nrta_is_completed"));
    fns.nrta_is_completed = Some(gated_is_completed);
    fns.nrta_event_register_seq_id_completion = None;
    fns.nrta_event_register_xu_completion = None;
    // SAFETY: the dlopen'ed simulator's functions and symbols; nrta_is_completed wraps
    // the simulator's own (it only waits before forwarding).
    unsafe { Library::in_process("nrt-sim, 2.31-like, gated", fns, Some(sim_symbol)) }
}

fn set_gate(closed: bool) {
    *GATE.lock().unwrap_or_else(|e| e.into_inner()) = closed;
    GATE_OPENED.notify_all();
}

#[test]
fn forgotten_futures_poller_entries_are_dropped_with_their_runtime() {
    let _g = support::lock();
    let lib = gated_library();
    {
        let rt = Runtime::builder().library(lib).build().unwrap();
        let unit = rt.tensor_op_unit(0, 0).unwrap();
        assert!(!unit.has_events());
        let size = 64 << 20;
        let tensors: Vec<_> = (0..2)
            .map(|i| {
                rt.allocate_tensor(Placement::Device, Some(0), size, &format!("t{i}"))
                    .unwrap()
            })
            .collect();
        let mut outs = vec![vec![0u8; size]; 2];
        neuron_rt::xu::scope(|s| {
            let mut cx = Context::from_waker(Waker::noop());
            for (t, out) in tensors.iter().zip(outs.iter_mut()) {
                let read = s.read(&unit, t, 0, out).unwrap();
                let mut future = Box::pin(read.into_future());
                let _ = future.as_mut().poll(&mut cx);
                std::mem::forget(future);
            }
            // The poller's next look blocks at the gate, with both entries listed.
            set_gate(true);
        });
        let start = Instant::now();
        while !POLLER_AT_GATE.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the poller never looked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // The runtime closed (nothing holds it); a new one opens on the same library.
    let again = Runtime::builder().library(lib).build().unwrap();
    COUNTING.store(true, Ordering::SeqCst);
    set_gate(false);
    std::thread::sleep(Duration::from_millis(100));
    // The look in progress when the gate opened finishes; no other entry of the closed
    // runtime is queried against the new one.
    assert_eq!(POLLER_CALLS.load(Ordering::SeqCst), 0);
    drop(again);
}
