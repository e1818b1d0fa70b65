//! With `NRT_SIM_VERSION=2.30.0` the simulator is an async-v2 runtime: its `nrta_*`
//! functions have other signatures, so no execution unit may be created (and nothing
//! may be called through the v3 table). In its own test binary: the variable is read at
//! the simulator's `nrt_init`.

mod support;

use neuron_rt::{Capabilities, Error, XuKind};

#[test]
fn async_units_need_runtime_2_31() {
    let _g = support::lock();
    // SAFETY: set while no other thread of this test binary touches the environment
    // (this binary has this one test, which holds the lock).
    unsafe { std::env::set_var("NRT_SIM_VERSION", "2.30.0") };
    let rt = support::runtime();
    assert!(!rt.capabilities().contains(Capabilities::ASYNC_V3));
    let attempts = [
        rt.compute_unit(0),
        rt.tensor_op_unit(0, 0),
        rt.collectives_unit(0, 0),
        rt.exec_unit(1, XuKind::TensorOp, 1),
        // Even invalid arguments report the version first: nothing is looked at.
        rt.exec_unit(99, XuKind::Compute, 7),
    ];
    for result in attempts {
        let err = result.unwrap_err();
        match &err {
            Error::Unsupported { needed, .. } => {
                let needed = needed.as_deref().unwrap_or_default();
                assert!(needed.starts_with("runtime >= 2.31"), "{err}");
            }
            other => panic!("expected Unsupported, got {other}"),
        }
        assert!(err.to_string().contains("runtime >= 2.31"), "{err}");
    }
    // Nothing reached the simulator's v3 entry points: they record an error line for
    // the calling thread when called in 2.30 mode, as the direct call below shows.
    let control = support::control();
    let seen = control.last_error().unwrap_or_default();
    assert!(
        !seen.contains("async v3"),
        "a v3 function was called: {seen}"
    );
    let get_sequence = support::sim().fns().nrta_get_sequence.unwrap();
    let mut seq = 0u64;
    // SAFETY: the simulator exports the v3 signature in every mode (it only refuses the
    // call in 2.30 mode); `seq` is a valid out-pointer.
    let status = unsafe { get_sequence(0, neuron_rt::nrt_sys::NRTA_XU_COMPUTE, 0, &mut seq) };
    assert_ne!(status, neuron_rt::nrt_sys::NRT_SUCCESS);
    let seen = control.last_error().unwrap_or_default();
    assert!(seen.contains("async v3"), "{seen}");

    // The sync API is unaffected.
    let model = rt.load_model(&support::add_model()).unwrap();
    support::assert_adds(&model);
}
