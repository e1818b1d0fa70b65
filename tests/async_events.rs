//! Completion events (runtime >= 2.32, the simulator's default 2.34): waits block on
//! eventfds that libnrt signals instead of polling, for blocking waits and futures
//! alike; VIRTUAL placement is refused before libnrt is called; synchronous executions
//! never run on a thread with too little stack.
//!
//! Runs on the dlopen'ed simulator, with `nrta_is_completed` wrapped to count its calls
//! (a polling wait makes hundreds during a 200 ms request, an event wait a handful).

mod support;

use std::ffi::{CStr, c_void};
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Capabilities, Error, Placement, Runtime};

static REAL_IS_COMPLETED: OnceLock<sys::fn_types::nrta_is_completed> = OnceLock::new();
static CALLS: AtomicU64 = AtomicU64::new(0);
/// While set, `nrta_is_completed` reports every request as still running, although
/// the simulator completed it and signalled its events: a library that signals early.
static HIDE_COMPLETIONS: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn counting_is_completed(seq: u64, done: *mut bool) -> sys::NRT_STATUS {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if HIDE_COMPLETIONS.load(Ordering::SeqCst) && !done.is_null() {
        // SAFETY: non-null; the caller passes a valid out-pointer.
        unsafe { *done = false };
        return sys::NRT_SUCCESS;
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

/// The dlopen'ed simulator with `nrta_is_completed` counted (same simulator state).
fn counting_library() -> &'static Library {
    let mut fns = *support::sim().fns();
    REAL_IS_COMPLETED.get_or_init(|| fns.nrta_is_completed.expect("nrta_is_completed"));
    fns.nrta_is_completed = Some(counting_is_completed);
    // SAFETY: the dlopen'ed simulator's functions and symbols; nrta_is_completed wraps
    // the simulator's own (it only counts before forwarding).
    unsafe {
        Library::in_process(
            "nrt-sim with a counted nrta_is_completed",
            fns,
            Some(sim_symbol),
        )
    }
}

fn runtime() -> Runtime {
    HIDE_COMPLETIONS.store(false, Ordering::SeqCst);
    Runtime::builder()
        .library(counting_library())
        .build()
        .unwrap()
}

/// Refuses every sequence registration, as a library may (e.g. out of resources).
unsafe extern "C" fn refusing_seq_registration(_seq: u64, _fd: i32) -> sys::NRT_STATUS {
    sys::NRT_RESOURCE
}

/// [`counting_library`] whose sequence registration always fails.
fn refusing_library() -> &'static Library {
    let mut fns = *counting_library().fns();
    fns.nrta_event_register_seq_id_completion = Some(refusing_seq_registration);
    // SAFETY: the counted simulator's functions; the registration function refuses
    // without touching anything, which a libnrt call may do.
    unsafe {
        Library::in_process(
            "nrt-sim refusing event registrations",
            fns,
            Some(sim_symbol),
        )
    }
}

/// Polls `future` on this thread until it resolves, parking in between (woken by the
/// future's waker, or after 10 ms at the latest).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(CountingWaker {
        wakes: AtomicU64::new(0),
        thread: std::thread::current(),
    }));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[test]
fn refused_event_registrations_fall_back_to_polling() {
    let _g = support::lock();
    HIDE_COMPLETIONS.store(false, Ordering::SeqCst);
    let rt = Runtime::builder()
        .library(refusing_library())
        .build()
        .unwrap();
    assert!(rt.capabilities().contains(Capabilities::ASYNC_EVENTS));
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(30)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    CALLS.store(0, Ordering::SeqCst);
    let sets = unit
        .execute(&model, sets.0, sets.1)
        .unwrap()
        .wait()
        .unwrap();
    // The refused registration left the wait to backoff polling: many queries.
    assert!(CALLS.load(Ordering::SeqCst) > 6);
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    block_on(request.into_future()).unwrap();
}

#[test]
fn a_library_signalling_before_it_reports_completion_is_polled_not_spun_on() {
    let _g = support::lock();
    let rt = runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(1)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let hidden = Duration::from_millis(200);
    let release = || {
        std::thread::sleep(hidden);
        HIDE_COMPLETIONS.store(false, Ordering::SeqCst);
    };
    // Blocking wait.
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    HIDE_COMPLETIONS.store(true, Ordering::SeqCst);
    CALLS.store(0, Ordering::SeqCst);
    let sets = std::thread::scope(|s| {
        s.spawn(release);
        request.wait().unwrap()
    });
    let calls = CALLS.load(Ordering::SeqCst);
    // A spin on the always-ready event would make millions of queries in 200 ms;
    // giving up on events after a few dozen early signals leaves backoff polling.
    assert!(
        calls < 5_000,
        "{calls} nrta_is_completed calls in {hidden:?}"
    );
    // Awaited.
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    std::thread::sleep(Duration::from_millis(10)); // completed (and signalled) by now
    HIDE_COMPLETIONS.store(true, Ordering::SeqCst);
    CALLS.store(0, Ordering::SeqCst);
    std::thread::scope(|s| {
        s.spawn(release);
        block_on(request.into_future()).unwrap()
    });
    let calls = CALLS.load(Ordering::SeqCst);
    assert!(
        calls < 5_000,
        "{calls} nrta_is_completed calls in {hidden:?}"
    );
}

const LONG: Duration = Duration::from_millis(200);

#[test]
fn a_blocking_wait_sleeps_on_the_event_instead_of_polling() {
    let _g = support::lock();
    let rt = runtime();
    assert!(rt.capabilities().contains(Capabilities::ASYNC_EVENTS));
    let model = rt.load_model_on(&support::identity_model(LONG), 0).unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(unit.has_events());
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    CALLS.store(0, Ordering::SeqCst);
    request.wait().unwrap();
    let calls = CALLS.load(Ordering::SeqCst);
    // One look before blocking and one after the signal (a stale signal may add a
    // round); backoff polling would make hundreds over 200 ms.
    assert!(
        calls <= 6,
        "{calls} nrta_is_completed calls during one wait"
    );
    // wait_for and wait_timeout block the same way.
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    CALLS.store(0, Ordering::SeqCst);
    assert!(!request.wait_timeout(Duration::from_millis(20)).unwrap());
    unit.wait_for(request.seq()).unwrap();
    assert!(CALLS.load(Ordering::SeqCst) <= 8);
    request.wait().unwrap();
}

/// Counts the wake-ups of the task it belongs to and unparks its thread.
struct CountingWaker {
    wakes: AtomicU64,
    thread: std::thread::Thread,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[test]
fn a_future_is_woken_once_by_the_event_thread() {
    let _g = support::lock();
    let rt = runtime();
    let model = rt.load_model_on(&support::identity_model(LONG), 1).unwrap();
    let unit = rt.compute_unit(1).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    inputs
        .get("x")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, 4.0])
        .unwrap();
    let request = unit
        .execute(&model, inputs, model.allocate_outputs().unwrap())
        .unwrap();
    let waker_state = Arc::new(CountingWaker {
        wakes: AtomicU64::new(0),
        thread: std::thread::current(),
    });
    let waker = Waker::from(Arc::clone(&waker_state));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(request.into_future());
    CALLS.store(0, Ordering::SeqCst);
    let mut polls = 0;
    let (_, outputs) = loop {
        polls += 1;
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => break result.unwrap(),
            Poll::Pending => std::thread::park_timeout(Duration::from_secs(10)),
        }
        assert!(polls < 100, "the future never resolved");
    };
    assert_eq!(
        outputs.get("y").unwrap().to_vec::<f32>().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
    let wakes = waker_state.wakes.load(Ordering::SeqCst);
    assert_eq!(wakes, 1, "woken once, on completion");
    assert!(polls <= 3, "{polls} polls");
    let calls = CALLS.load(Ordering::SeqCst);
    assert!(calls <= 6, "{calls} nrta_is_completed calls while awaiting");
}

#[test]
fn futures_dropped_before_completion_leave_no_waker_behind() {
    let _g = support::lock();
    let rt = runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(30)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let waker_state = Arc::new(CountingWaker {
        wakes: AtomicU64::new(0),
        thread: std::thread::current(),
    });
    let waker = Waker::from(Arc::clone(&waker_state));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..3 {
        let sets = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        let request = unit.execute(&model, sets.0, sets.1).unwrap();
        let mut future = Box::pin(request.into_future());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future); // deregisters first; the request is released after completion
    }
    unit.wait_idle().unwrap();
    // Give the event thread time to process the last signals: nobody is left to wake.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(waker_state.wakes.load(Ordering::SeqCst), 0);
    // Only this test's clone and `waker` itself hold the state: no entry kept one.
    assert_eq!(Arc::strong_count(&waker_state), 2);
}

#[test]
fn virtual_placement_is_refused_on_runtimes_from_2_32() {
    let _g = support::lock();
    let rt = runtime();
    let err = rt
        .allocate_tensor(Placement::Virtual, Some(0), 64, "pageable")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Unsupported { .. })
            && text.contains("2.32")
            && text.contains("2.34.10"),
        "{text}"
    );
    support::assert_no_leaks();
}

#[test]
fn synchronous_executions_survive_small_thread_stacks() {
    let _g = support::lock();
    let rt = runtime();
    let model = rt.load_model(&support::add_model()).unwrap();
    // Rust's default spawned-thread stack (and tokio's worker default), and smaller.
    for stack in [2 << 20, 512 << 10] {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(stack)
                .spawn_scoped(s, || support::assert_adds(&model))
                .unwrap()
                .join()
                .unwrap();
        });
    }
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || model.execute_repeat(&inputs, &mut outputs, 3))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
    });
}

static REAL_REGISTER: OnceLock<sys::fn_types::nrta_event_register_seq_id_completion> =
    OnceLock::new();
/// While set, sequence registrations are accepted but never signalled: only the event
/// thread's own watch near a predicted end can wake a future then.
static SWALLOW_SIGNALS: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn maybe_swallowed_registration(seq: u64, fd: i32) -> sys::NRT_STATUS {
    if SWALLOW_SIGNALS.load(Ordering::SeqCst) {
        return sys::NRT_SUCCESS;
    }
    match REAL_REGISTER.get() {
        // SAFETY: the simulator's own function, called with the caller's arguments.
        Some(real) => unsafe { real(seq, fd) },
        None => sys::NRT_FAILURE,
    }
}

/// Awaits one request on a task whose waker counts; returns whether its waker woke it
/// (rather than the fallback re-poll after a second without a wake-up).
fn awaited_and_woken(unit: &neuron_rt::ExecUnit, model: &neuron_rt::Model) -> bool {
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let request = unit.execute(model, sets.0, sets.1).unwrap();
    let state = Arc::new(CountingWaker {
        wakes: AtomicU64::new(0),
        thread: std::thread::current(),
    });
    let waker = Waker::from(Arc::clone(&state));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(request.into_future());
    let mut woken = false;
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => {
                result.unwrap();
                return woken;
            }
            Poll::Pending => {
                let before = state.wakes.load(Ordering::SeqCst);
                std::thread::park_timeout(Duration::from_secs(1));
                woken = state.wakes.load(Ordering::SeqCst) > before;
            }
        }
    }
}

#[test]
fn futures_awaited_one_at_a_time_are_woken_by_the_event_thread_watching_the_predicted_end() {
    let _g = support::lock();
    let mut fns = *counting_library().fns();
    REAL_REGISTER.get_or_init(|| {
        fns.nrta_event_register_seq_id_completion
            .expect("nrta_event_register_seq_id_completion")
    });
    fns.nrta_event_register_seq_id_completion = Some(maybe_swallowed_registration);
    // SAFETY: the counted simulator's functions; the registration wrapper forwards to
    // the simulator's own, or accepts without registering (the fd is then never
    // signalled, which only delays whoever blocks on it).
    let lib: &'static Library = Box::leak(Box::new(unsafe {
        Library::in_process(
            "nrt-sim whose completion signals can be swallowed",
            fns,
            Some(sim_symbol),
        )
    }));
    SWALLOW_SIGNALS.store(false, Ordering::SeqCst);
    let rt = Runtime::builder().library(lib).build().unwrap();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(5)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    // With signals: every future is woken (the queue learns how long requests take).
    for _ in 0..4 {
        assert!(awaited_and_woken(&unit, &model));
    }
    // Without: a future is woken only if the event thread watched its predicted end.
    SWALLOW_SIGNALS.store(true, Ordering::SeqCst);
    let woken = (0..5).filter(|_| awaited_and_woken(&unit, &model)).count();
    SWALLOW_SIGNALS.store(false, Ordering::SeqCst);
    // A loaded machine may make a prediction miss its window now and then.
    assert!(woken >= 3, "{woken} of 5 futures woken by the watch");
}
