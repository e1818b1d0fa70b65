//! With `NRT_SIM_VERSION=2.31.24` (async v3 without completion events, VIRTUAL placement
//! still there) waits poll with backoff and still work, blocking and awaited, and VIRTUAL
//! tensors reach libnrt. In its own test binary: the variable is set before the
//! simulator's first `nrt_init`.

mod support;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use neuron_rt::{Capabilities, Placement};

#[test]
fn a_2_31_runtime_polls_and_keeps_virtual_tensors() {
    let _g = support::lock();
    // SAFETY: set while no other thread of this test binary touches the environment
    // (this binary has this one test).
    unsafe { std::env::set_var("NRT_SIM_VERSION", "2.31.24") };
    let rt = support::runtime();
    let caps = rt.capabilities();
    assert!(caps.contains(Capabilities::ASYNC_V3), "{caps:?}");
    assert!(!caps.contains(Capabilities::ASYNC_EVENTS), "{caps:?}");
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(20)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(!unit.has_events());
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let sets = unit
        .execute(&model, sets.0, sets.1)
        .unwrap()
        .wait()
        .unwrap();
    // Awaited: woken by the polling thread.
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    let mut future = pin!(request.into_future());
    let mut cx = Context::from_waker(Waker::noop());
    let resolved = loop {
        if let Poll::Ready(r) = future.as_mut().poll(&mut cx) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    resolved.unwrap();
    let virt = rt
        .allocate_tensor(Placement::Virtual, Some(0), 16, "pageable")
        .unwrap();
    virt.write(&[1u32, 2, 3, 4]).unwrap();
    assert_eq!(virt.to_vec::<u32>().unwrap(), [1, 2, 3, 4]);
}
