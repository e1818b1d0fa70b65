//! With `NRT_SIM_VERSION=2.30.0` the simulator reports a pre-v3 runtime: the async
//! capability must be absent (its functions have other signatures there), and asking
//! for it must give `Error::Unsupported` naming the version needed.
//! In its own test binary: the variable is set before the simulator's first `nrt_init`.

mod support;

use neuron_rt::Capabilities;

#[test]
fn a_2_30_runtime_has_no_async_v3() {
    let _g = support::lock();
    // SAFETY: set while no other thread of this test binary touches the environment
    // (this binary has this one test).
    unsafe { std::env::set_var("NRT_SIM_VERSION", "2.30.0") };
    let rt = support::runtime();
    let v = rt.version().unwrap();
    assert_eq!((v.major, v.minor, v.patch), (2, 30, 0));
    let caps = rt.capabilities();
    assert!(!caps.contains(Capabilities::ASYNC_V3), "{caps:?}");
    assert!(caps.contains(Capabilities::ASYNC_V2), "{caps:?}");
    assert!(caps.contains(Capabilities::SYNC_CORE), "{caps:?}");
    // The sync API works as usual.
    let model = rt.load_model(&support::add_model()).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    inputs.get("a").unwrap().write(&[1.0f32; 6]).unwrap();
    inputs.get("b").unwrap().write(&[4.0f32; 6]).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(support::f32s(&outputs, "out"), [5.0; 6]);
    // What an async entry point reports (via the same requirement text).
    let needed = Capabilities::ASYNC_V3.requirement();
    assert!(needed.starts_with("runtime >= 2.31"), "{needed}");
}
