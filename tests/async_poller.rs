//! The poller thread behind `RequestFuture` must never be what keeps a unit (and so the
//! runtime) alive once the futures are gone: otherwise a new runtime started right after
//! the user dropped everything fails with `AlreadyInitialized`, and `nrt_close` runs on
//! the poller thread at some later moment.
//!
//! Runs on the dlopen'ed simulator without its completion-event functions (as a 2.31
//! runtime: the polling thread wakes futures), with `nrta_is_completed` wrapped so that
//! the test can hold the poller thread inside that call.

mod support;

use std::ffi::{CStr, c_void};
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Error, Runtime};

static REAL_IS_COMPLETED: OnceLock<sys::fn_types::nrta_is_completed> = OnceLock::new();
/// Whether the gate is closed; the poller thread blocks in `nrta_is_completed` while it is.
static GATE: Mutex<bool> = Mutex::new(false);
static GATE_OPENED: Condvar = Condvar::new();
/// Set by the poller thread once it is blocked at the gate.
static POLLER_AT_GATE: AtomicBool = AtomicBool::new(false);

/// The simulator's `nrta_is_completed`, except that the poller thread waits at the gate.
unsafe extern "C" fn gated_is_completed(seq: u64, done: *mut bool) -> sys::NRT_STATUS {
    if std::thread::current().name() == Some("neuron-rt-poller") {
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

/// The dlopen'ed simulator with `nrta_is_completed` gated (same simulator state).
fn gated_library() -> &'static Library {
    let mut fns = *support::sim().fns();
    let real = fns
        .nrta_is_completed
        .expect("the simulator has nrta_is_completed");
    REAL_IS_COMPLETED.get_or_init(|| real);
    fns.nrta_is_completed = Some(gated_is_completed);
    // Without completion events, futures are woken by the polling thread under test.
    fns.nrta_event_register_seq_id_completion = None;
    fns.nrta_event_register_xu_completion = None;
    // SAFETY: the dlopen'ed simulator's functions and symbols; nrta_is_completed wraps
    // the simulator's own (it only waits before forwarding).
    unsafe {
        Library::in_process(
            "nrt-sim with a gated nrta_is_completed",
            fns,
            Some(sim_symbol),
        )
    }
}

fn set_gate(closed: bool) {
    *GATE.lock().unwrap() = closed;
    GATE_OPENED.notify_all();
}

/// How the test lets go of its future.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Dropped while pending (the request is waited for by the drop).
    Dropped,
    /// Polled to completion by the executor before the poller noticed.
    Resolved,
}

#[test]
fn a_runtime_starts_again_while_the_poller_still_looks_at_a_finished_future() {
    let _g = support::lock();
    let lib = gated_library();
    for ending in [Ending::Dropped, Ending::Resolved] {
        let opener;
        {
            let rt = Runtime::builder().library(lib).build().unwrap();
            let model = rt
                .load_model_on(&support::identity_model(Duration::from_millis(20)), 0)
                .unwrap();
            let unit = rt.compute_unit(0).unwrap();
            let inputs = model.allocate_inputs().unwrap();
            let outputs = model.allocate_outputs().unwrap();
            let request = unit.execute(&model, inputs, outputs).unwrap();
            let mut future = pin!(request.into_future());
            // Pending: registered with the poller thread, which will poll it.
            POLLER_AT_GATE.store(false, Ordering::SeqCst);
            set_gate(true);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            let start = Instant::now();
            while !POLLER_AT_GATE.load(Ordering::SeqCst) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the poller never polled"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            // The poller now sits in nrta_is_completed for this request, holding the
            // unit. Let it go later.
            opener = std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(500));
                set_gate(false);
            });
            if let Ending::Resolved = ending {
                unit.wait_idle().unwrap();
                let ready = future.as_mut().poll(&mut cx);
                assert!(matches!(ready, std::task::Poll::Ready(Ok(_))), "{ending:?}");
            }
            // Everything the test holds goes at the end of this block (a pending
            // future waits for its request).
        }
        let again = Runtime::builder().library(lib).build();
        assert!(
            again.is_ok(),
            "{ending:?}: a new runtime right after dropping everything: {:?}",
            again.as_ref().err()
        );
        assert!(!matches!(again, Err(Error::AlreadyInitialized)));
        drop(again);
        opener.join().unwrap();
        support::assert_no_leaks();
    }
}

/// Wakes by sending on a channel.
struct ChannelWake(Mutex<std::sync::mpsc::Sender<()>>);

impl std::task::Wake for ChannelWake {
    fn wake(self: std::sync::Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

/// A waker whose `wake` panics (an executor bug), after saying so.
struct PanickingWake(AtomicBool);

impl std::task::Wake for PanickingWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        panic!("this waker panics (on purpose, in a test)");
    }
}

#[test]
fn a_waker_that_panics_does_not_stop_the_poller() {
    use std::sync::Arc;
    use std::task::Poll;

    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(20)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let execute = || {
        let (inputs, outputs) = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        unit.execute(&model, inputs, outputs).unwrap().into_future()
    };

    let panicking = Arc::new(PanickingWake(AtomicBool::new(false)));
    let bad_waker = Waker::from(Arc::clone(&panicking));
    let mut bad = pin!(execute());
    assert!(
        bad.as_mut()
            .poll(&mut Context::from_waker(&bad_waker))
            .is_pending()
    );
    let start = Instant::now();
    while !panicking.0.load(Ordering::SeqCst) {
        assert!(start.elapsed() < Duration::from_secs(10), "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }

    // The poller still serves other futures.
    let (tx, rx) = std::sync::mpsc::channel();
    let good_waker = Waker::from(Arc::new(ChannelWake(Mutex::new(tx))));
    let mut cx = Context::from_waker(&good_waker);
    let mut good = pin!(execute());
    assert!(good.as_mut().poll(&mut cx).is_pending());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the poller woke the second future");
    assert!(matches!(good.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    assert!(matches!(
        bad.as_mut().poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Ok(_))
    ));
}

/// Issue 11 item 2: a scoped request's future polled once (so registered with the
/// poller, or with the unit's completion events) and then forgotten must not keep the
/// runtime: after the scope and every handle are gone, a new runtime always starts, on
/// this thread, at once. The poller is held inside `nrta_is_completed` (the gate) while
/// everything is dropped, the moment it used to upgrade its reference to the unit.
#[test]
fn a_forgotten_scoped_future_never_keeps_the_runtime() {
    let _g = support::lock();
    for (lib, gated) in [(gated_library(), true), (support::sim(), false)] {
        for round in 0..20 {
            {
                let rt = Runtime::builder().library(lib).build().unwrap();
                let unit = rt.tensor_op_unit(0, 0).unwrap();
                let tensor = rt
                    .allocate_tensor(neuron_rt::Placement::Device, Some(0), 4 << 20, "t")
                    .unwrap();
                let mut out = vec![0u8; 4 << 20];
                neuron_rt::xu::scope(|s| {
                    let read = s.read(&unit, &tensor, 0, &mut out).unwrap();
                    let mut future = Box::pin(read.into_future());
                    let mut cx = Context::from_waker(Waker::noop());
                    let _ = future.as_mut().poll(&mut cx);
                    // From now on the poller blocks in its next look at the entry.
                    set_gate(gated);
                    std::mem::forget(future);
                });
                // The scope waited for the read; the poller may still look at it.
            }
            let again = Runtime::builder().library(lib).build();
            assert!(
                again.is_ok(),
                "round {round} (gated {gated}): {:?}",
                again.as_ref().err()
            );
            drop(again);
            set_gate(false);
            // Let the poller drop the stale entry before the gate closes again (it holds
            // its list's lock while it looks, so a closed gate would block registration).
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    support::assert_no_leaks();
}
