//! Profiling (`Model::profile` / `ProfileGuard`): nrt-sim's documented refusal as a typed
//! error that leaves everything usable, bad paths, gating, and the guard's start/stop
//! protocol against recording stand-ins for the two C functions.

mod support;

use std::ffi::{CStr, c_char};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{Capabilities, Error, NrtStatus, Runtime};
use support::{add_model, assert_no_leaks, control, lock, runtime, sim};

#[test]
fn nrt_sim_refuses_profiling_with_a_typed_error_and_everything_stays_usable() {
    let _g = lock();
    let rt = runtime();
    assert!(rt.capabilities().contains(Capabilities::PROFILING));
    let model = rt.load_model(&add_model()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("add.ntff");

    for _ in 0..2 {
        // A failed start reserves nothing: the same path gives the same error again.
        let err = model.profile(&path).unwrap_err();
        match &err {
            Error::Nrt {
                function,
                status,
                message,
                context,
                ..
            } => {
                assert_eq!(*function, "nrt_profile_start");
                assert_eq!(*status, NrtStatus::Failure);
                assert!(message.as_deref().is_some_and(|m| !m.is_empty()), "{err}");
                let context = context.as_deref().unwrap_or_default();
                assert!(context.contains("model `add`"), "{err}");
                assert!(context.contains(&path.display().to_string()), "{err}");
            }
            other => panic!("expected Error::Nrt, got {other}"),
        }
        assert_eq!(err.status(), Some(NrtStatus::Failure));
        assert!(!err.is_fatal() && !err.is_retryable());
    }
    assert!(!path.exists());

    // The model, the runtime and new allocations work as before.
    support::assert_adds(&model);
    let other = rt.load_model(&add_model()).unwrap();
    support::assert_adds(&other);
    drop((model, other));
    drop(rt);
    assert_no_leaks();
}

#[test]
fn bad_paths_are_refused_before_libnrt_is_called() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let err = model.profile("out\0.ntff").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "path", reason } if reason.contains("NUL byte at 3")),
        "{err}"
    );
    let err = model.profile("").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "path", reason } if reason.contains("empty")),
        "{err}"
    );
    assert!(events().is_empty(), "{:?}", events());
    support::assert_adds(&model);
}

#[test]
fn a_library_without_a_profiling_function_is_unsupported() {
    let _g = lock();
    let mut fns = *sim().fns();
    fns.nrt_profile_stop = None;
    // SAFETY: the dlopen'ed simulator's own functions, one of them removed.
    let lib = unsafe { Library::in_process("sim-without-profile-stop", fns, None) };
    let rt = Runtime::builder().library(lib).build().unwrap();
    assert!(!rt.capabilities().contains(Capabilities::PROFILING));
    let model = rt.load_model(&add_model()).unwrap();
    let err = model.profile("p.ntff").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Unsupported { feature: "nrt_profile_start", needed: Some(n) }
                if n == "nrt_profile_start, nrt_profile_stop"
        ),
        "{err}"
    );
    // Gating comes first: a bad path on such a library is still `Unsupported`.
    let err = model.profile("").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    support::assert_adds(&model);
}

// ---------------------------------------------------------------------------------------
// The guard's protocol, against stand-ins that record their calls.

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Start { model: usize, path: String },
    Stop { path: String },
}

static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
/// Statuses the stand-ins return: (start, stop).
static STATUSES: Mutex<(sys::NRT_STATUS, sys::NRT_STATUS)> = Mutex::new((0, 0));

fn events() -> MutexGuard<'static, Vec<Event>> {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn statuses() -> MutexGuard<'static, (sys::NRT_STATUS, sys::NRT_STATUS)> {
    STATUSES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text of a C string argument, or `None` for NULL.
///
/// # Safety
///
/// A non-null `p` must point to a NUL-terminated string.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: non-null pointers are NUL-terminated strings (caller).
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn recording_start(
    model: *mut sys::nrt_model_t,
    filename: *const c_char,
) -> sys::NRT_STATUS {
    // SAFETY: the caller passes a NUL-terminated filename (or NULL).
    let Some(path) = (unsafe { text(filename) }) else {
        return sys::NRT_INVALID;
    };
    events().push(Event::Start {
        model: model as usize,
        path,
    });
    statuses().0
}

unsafe extern "C" fn recording_stop(filename: *const c_char) -> sys::NRT_STATUS {
    // SAFETY: as above.
    let Some(path) = (unsafe { text(filename) }) else {
        return sys::NRT_INVALID;
    };
    events().push(Event::Stop { path });
    statuses().1
}

/// A runtime on the dlopen'ed simulator with the profiling functions replaced by the
/// recorders, the record cleared and both returning success.
fn recording_runtime() -> Runtime {
    static LIB: OnceLock<&'static Library> = OnceLock::new();
    let lib = *LIB.get_or_init(|| {
        let mut fns = *sim().fns();
        fns.nrt_profile_start = Some(recording_start);
        fns.nrt_profile_stop = Some(recording_stop);
        // SAFETY: the dlopen'ed simulator's functions; the two profiling calls are
        // recorders that read their C-string arguments and return a status code.
        unsafe { Library::in_process("sim-recording-profiler", fns, None) }
    });
    events().clear();
    *statuses() = (sys::NRT_SUCCESS, sys::NRT_SUCCESS);
    Runtime::builder().library(lib).build().unwrap()
}

fn start_path(event: &Event) -> (&str, usize) {
    match event {
        Event::Start { model, path } => (path, *model),
        other => panic!("expected a start, got {other:?}"),
    }
}

#[test]
fn dropping_the_guard_stops_the_profile_it_started_once() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let guard = model.profile("run/add.ntff").unwrap();
    assert_eq!(guard.path(), Path::new("run/add.ntff"));
    assert_eq!(guard.model().label(), "add");
    support::assert_adds(&model);
    {
        let events = events();
        assert_eq!(events.len(), 1, "{events:?}");
        let (path, handle) = start_path(&events[0]);
        assert_eq!(path, "run/add.ntff");
        assert_ne!(handle, 0);
    }
    drop(guard);
    assert_eq!(
        events()[1..],
        [Event::Stop {
            path: "run/add.ntff".into()
        }]
    );
    drop(model);
    drop(rt);
    assert_eq!(events().len(), 2, "no further stop: {:?}", events());
}

#[test]
fn an_explicit_stop_is_the_only_stop_and_reports_failure() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();

    model.profile("ok.ntff").unwrap().stop().unwrap();
    assert_eq!(
        events()[1..],
        [Event::Stop {
            path: "ok.ntff".into()
        }]
    );

    statuses().1 = sys::NRT_FAILURE;
    let guard = model.profile("bad.ntff").unwrap();
    let err = guard.stop().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Nrt { function: "nrt_profile_stop", status: NrtStatus::Failure, context: Some(c), .. }
                if c.contains("model `add`") && c.contains("bad.ntff")
        ),
        "{err}"
    );
    assert_eq!(events().len(), 4, "one stop per guard: {:?}", events());
    // The failed profile's path is free again.
    statuses().1 = sys::NRT_SUCCESS;
    model.profile("bad.ntff").unwrap().stop().unwrap();
    assert_eq!(events().len(), 6);
}

#[test]
fn a_failed_start_gives_no_guard_and_no_stop() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    statuses().0 = sys::NRT_INVALID_HANDLE;
    let err = model.profile("x.ntff").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_profile_start",
                status: NrtStatus::InvalidHandle,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(events().len(), 1, "{:?}", events());
    assert!(matches!(events()[0], Event::Start { .. }));
}

#[test]
fn one_path_is_written_by_one_profile_at_a_time() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let second = rt.load_model(&add_model()).unwrap();
    let first_guard = model.profile("same.ntff").unwrap();
    let err = second.profile("same.ntff").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "path", reason } if reason.contains("already being written to same.ntff")),
        "{err}"
    );
    assert_eq!(events().len(), 1, "the refused start must not reach libnrt");
    // Another path is fine, and so is the same one once the first profile stopped.
    let other_guard = second.profile("other.ntff").unwrap();
    drop(first_guard);
    let again = second.profile("same.ntff").unwrap();
    drop((other_guard, again));
    let evs = events().clone();
    assert_eq!(evs.len(), 6, "{evs:?}");
    let (_, m1) = start_path(&evs[0]);
    let (_, m2) = start_path(&evs[1]);
    assert_ne!(m1, m2, "each model's own handle is passed");
}

#[test]
fn the_guard_keeps_the_model_loaded_and_the_runtime_open_until_it_stops() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let core = model.core().unwrap() as usize;
    let guard = model.profile("kept.ntff").unwrap();
    drop(model);
    drop(rt);
    assert_eq!(control().counters().cores[core].models, 1);
    support::assert_adds(guard.model());
    guard.stop().unwrap();
    assert_eq!(events().len(), 2);
    assert_no_leaks();
}

#[test]
fn the_guard_can_stop_on_another_thread() {
    let _g = lock();
    let rt = recording_runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let guard = model.profile("thread.ntff").unwrap();
    std::thread::spawn(move || guard.stop())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(
        events()[1..],
        [Event::Stop {
            path: "thread.ntff".into()
        }]
    );
}
