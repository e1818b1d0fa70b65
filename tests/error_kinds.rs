//! `Error::kind()` of real errors from real calls on the simulator: a caller's bad input,
//! a missing file, a full queue and full device memory, a device fault injected through
//! `SimControl`, a pool that shut down. In its own test binary: `NRT_SIM_QUEUE_DEPTH` is
//! read at the simulator's `nrt_init`.

mod support;

use std::sync::Once;
use std::time::Duration;

use neuron_rt::{Error, ErrorKind, ModelPool, Placement, Runtime, inputs};

fn setup() -> Runtime {
    static ENV: Once = Once::new();
    // SAFETY: set before any runtime of this binary starts, while no other thread of this
    // binary reads the environment (every test takes the lock first, then comes here).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_QUEUE_DEPTH", "1") });
    support::runtime_after_close(Duration::from_secs(10)).0
}

#[test]
fn a_callers_bad_input_is_invalid_input() {
    let _g = support::lock();
    let rt = setup();
    let model = rt.load_model(&support::add_model()).unwrap();
    let short = model
        .run(&inputs!["a" => &[1.0f32; 5], "b" => &[2.0f32; 6]])
        .unwrap_err();
    assert_eq!(short.kind(), ErrorKind::InvalidInput, "{short}");
    let wrong_type = model
        .run(&inputs!["a" => &[1i32; 6], "b" => &[2.0f32; 6]])
        .unwrap_err();
    assert_eq!(wrong_type.kind(), ErrorKind::InvalidInput, "{wrong_type}");
    let unknown = model
        .run(&inputs!["a" => &[1.0f32; 6], "c" => &[2.0f32; 6]])
        .unwrap_err();
    assert!(matches!(unknown, Error::UnknownTensor { .. }), "{unknown}");
    assert_eq!(unknown.kind(), ErrorKind::InvalidInput);
    let not_a_neff = rt.load_model(b"not a NEFF at all").unwrap_err();
    assert_eq!(not_a_neff.kind(), ErrorKind::InvalidData, "{not_a_neff}");
}

#[test]
fn a_missing_file_or_library_is_not_found() {
    let _g = support::lock();
    let rt = setup();
    let missing = rt
        .load_model_file("/nonexistent/model-of-error-kinds.neff")
        .unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    drop(rt);
    let no_lib = Runtime::builder()
        .library_path("/nonexistent/libnrt.so.1")
        .build()
        .unwrap_err();
    assert!(matches!(no_lib, Error::LibraryNotFound(_)), "{no_lib}");
    assert_eq!(no_lib.kind(), ErrorKind::NotFound);
}

#[test]
fn a_full_queue_is_busy_and_full_memory_is_exhausted() {
    let _g = support::lock();
    let rt = setup();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(50)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let sets = || {
        let inputs = model.allocate_inputs().unwrap();
        inputs.get("x").unwrap().write(&[1.0f32; 4]).unwrap();
        (inputs, model.allocate_outputs().unwrap())
    };
    let (i, o) = sets();
    let first = unit.execute(&model, i, o).unwrap();
    let (i, o) = sets();
    let refused = unit.execute(&model, i, o).unwrap_err();
    assert_eq!(
        refused.error().kind(),
        ErrorKind::Busy,
        "{}",
        refused.error()
    );
    first.wait().unwrap();

    // 2 GiB on a core of 1 GiB (the simulator's default device memory).
    let too_big = rt
        .allocate_tensor(Placement::Device, Some(0), 2 << 30, "too_big")
        .unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::ResourceExhausted, "{too_big}");
}

#[test]
fn an_injected_device_fault_is_a_device_failure() {
    let g = support::lock();
    let rt = setup();
    let model = rt.load_model(&support::add_model()).unwrap();
    let run = || model.run(&inputs!["a" => &[1.0f32; 6], "b" => &[2.0f32; 6]]);
    support::control()
        .inject_faults("exec:nth=1:status=NRT_HW_ERROR")
        .unwrap();
    let hw = run().unwrap_err();
    assert_eq!(hw.kind(), ErrorKind::DeviceFailure, "{hw}");
    assert!(hw.is_fatal());
    support::control()
        .inject_faults("exec:nth=1:status=NRT_EXEC_COMPLETED_WITH_ERR")
        .unwrap();
    let completed_with_err = run().unwrap_err();
    assert_eq!(
        completed_with_err.kind(),
        ErrorKind::DeviceFailure,
        "{completed_with_err}"
    );
    // After the faults, the same call works: the kinds came from the faults.
    run().unwrap();
    // The simulator logged both faults, into the lock's capture rather than stderr.
    let log = g.take_log();
    let faults = [
        "fault 6 (NRT_HW_ERROR)",
        "fault 1004 (NRT_EXEC_COMPLETED_WITH_ERR)",
    ];
    for fault in faults {
        let logged = log.iter().any(|l| {
            l.starts_with("nrt-sim: ERROR nrt_execute: injected execution") && l.contains(fault)
        });
        assert!(logged, "{fault} not in {log:?}");
    }
}

#[test]
fn a_pool_that_shut_down_is_unavailable() {
    let _g = support::lock();
    let rt = setup();
    let pool = ModelPool::builder(&rt, support::add_model())
        .build()
        .unwrap();
    pool.shutdown_blocking();
    let err = pool
        .infer_blocking(&inputs!["a" => &[1.0f32; 6], "b" => &[2.0f32; 6]])
        .unwrap_err();
    assert!(matches!(err, Error::PoolUnavailable { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}
