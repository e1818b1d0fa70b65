//! The simulator's reason for a failure reaches the caller's error: a failed call's
//! `Error` shows `nrt-sim's reason: ...` (its [`Error::cause`]) for executions, async
//! requests (their own reason, read back by sequence id, never the calling thread's last
//! error) and tensor operations; a library that is not nrt-sim (the same functions,
//! without nrt-sim's control functions) adds nothing.

mod support;

use neuron_rt::nrt_sys::Library;
use neuron_rt::{Error, NrtStatus, Placement, Runtime};
use support::{add_model, control, lock, runtime, sim};

/// A sync execution of the add model on core 0, failed by an injected fault.
fn failed_execution(rt: &Runtime) -> Error {
    let model = rt.load_model_on(&add_model(), 0).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    control()
        .inject_faults("exec:vnc=0:nth=1:status=1003")
        .unwrap();
    model.execute(&inputs, &mut outputs).unwrap_err()
}

#[test]
fn a_failed_execution_shows_the_simulators_reason() {
    let _g = lock();
    let rt = runtime();
    let err = failed_execution(&rt);
    assert_eq!(err.status(), Some(NrtStatus::ExecCompletedWithNumErr));
    let cause = err.cause().unwrap_or_else(|| panic!("no cause in {err}"));
    assert!(
        cause.starts_with("nrt-sim's reason: nrt_execute: "),
        "{cause}"
    );
    let text = err.to_string();
    assert!(text.contains(cause), "{text}");
    // Then the library's words for the status, as before.
    assert!(text.contains("(status 1003)"), "{text}");
}

#[test]
fn a_failed_async_request_shows_its_own_reason_not_the_threads_last_error() {
    let _g = lock();
    let rt = runtime();
    // This thread's last error is now the sync execution's.
    let sync = failed_execution(&rt);
    assert!(sync.cause().is_some(), "{sync}");
    let model = rt.load_model_on(&add_model(), 0).unwrap();
    let unit = rt.compute_unit(0).unwrap();
    control()
        .inject_faults("exec:vnc=0:nth=1:status=1003")
        .unwrap();
    let request = unit
        .execute(
            &model,
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        )
        .unwrap();
    let seq = request.seq();
    let err = request.wait().unwrap_err();
    assert_eq!(
        err.status(),
        Some(NrtStatus::ExecCompletedWithNumErr),
        "{err}"
    );
    let cause = err.cause().unwrap_or_else(|| panic!("no cause in {err}"));
    let own = format!(
        "nrt-sim's reason: nrta_execute_schedule: request {} on core 0 COMPUTE queue 0: ",
        seq.number()
    );
    assert!(cause.starts_with(&own), "{cause}");
    assert!(err.to_string().contains(cause), "{err}");
}

#[test]
fn a_failed_async_tensor_write_shows_its_reason() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "t")
        .unwrap();
    let unit = rt.tensor_op_unit(1, 1).unwrap();
    control()
        .inject_faults("xu:vnc=1:type=tensor_op:queue=1:nth=1")
        .unwrap();
    let err = unit
        .write(&t, 0, vec![1u8; 16])
        .unwrap()
        .wait()
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(NrtStatus::ExecUnitUnrecoverable),
        "{err}"
    );
    let cause = err.cause().unwrap_or_else(|| panic!("no cause in {err}"));
    assert!(
        cause.starts_with(
            "nrt-sim's reason: nrta_tensor_write: request 1 on core 1 TENSOR_OP queue 1: injected"
        ),
        "{cause}"
    );
    assert!(err.to_string().contains(cause), "{err}");
}

#[test]
fn a_library_that_is_not_nrt_sim_adds_no_reason() {
    let _g = lock();
    // The simulator's libnrt functions without its nrt_sim_* control functions: what a
    // real libnrt looks like to the crate.
    // SAFETY: the dlopen'ed simulator's own functions.
    let lib: &'static Library =
        unsafe { Library::in_process("nrt-sim as a plain libnrt", *sim().fns(), None) };
    let rt = Runtime::builder().library(lib).build().unwrap();
    let err = failed_execution(&rt);
    assert_eq!(err.status(), Some(NrtStatus::ExecCompletedWithNumErr));
    assert_eq!(err.cause(), None, "{err}");
    assert!(!err.to_string().contains("nrt-sim"), "{err}");
}
