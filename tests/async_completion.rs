//! `Request::completion`: the async `wait_with_payload`. A request that completed with an
//! error status resolves to a `Failed` holding the error and the sets (libnrt still wrote
//! the outputs for 1003); a successful one to the sets.

mod support;

use std::time::Duration;

use neuron_rt::NrtStatus;
use support::{control, f32s, identity_model, lock, runtime};

#[test]
fn a_failed_execution_hands_its_sets_back_when_awaited() {
    let _g = lock();
    let rt = runtime();
    let model = rt
        .load_model_on(&identity_model(Duration::ZERO), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (inputs, outputs) = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    inputs
        .get("x")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, 4.0])
        .unwrap();

    control()
        .inject_faults("exec:vnc=0:nth=1:status=1003")
        .unwrap();
    let request = unit.execute(&model, inputs, outputs).unwrap();
    let failed = tokio.block_on(request.completion()).unwrap_err();
    assert_eq!(
        failed.error().status(),
        Some(NrtStatus::ExecCompletedWithNumErr)
    );
    let (error, sets) = failed.into_parts();
    let (inputs, outputs) = sets.unwrap_or_else(|| panic!("no sets back with {error}"));
    // The same sets: the input as written, the outputs written too (1003 writes them).
    assert_eq!(f32s(&inputs, "x"), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(f32s(&outputs, "y"), [1.0, 2.0, 3.0, 4.0]);

    // The fault is used up: the same sets again, successfully.
    let request = unit.execute(&model, inputs, outputs).unwrap();
    let (_inputs, outputs) = tokio.block_on(request.completion()).unwrap();
    assert_eq!(f32s(&outputs, "y"), [1.0, 2.0, 3.0, 4.0]);
}
