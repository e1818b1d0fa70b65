//! Idle cost with the 2.31 polling fallback (no completion events): the polling thread
//! wakes at most 200 times per second for a long request (sleeps of up to 5 ms). In its
//! own binary: `NRT_SIM_VERSION` is set before the simulator's first `nrt_init`.

mod support;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::wakeups::crate_thread_switches;

#[test]
fn the_polling_fallback_wakes_at_most_200_times_a_second() {
    let _g = support::lock();
    // SAFETY: set while no other thread of this test binary touches the environment
    // (this binary has this one test).
    unsafe { std::env::set_var("NRT_SIM_VERSION", "2.31.24") };
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_secs(3)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(!unit.has_events());
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    let mut future = pin!(request.into_future());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    // Past the backoff's ramp (sleeps reach 5 ms after 40 ms of waiting).
    std::thread::sleep(Duration::from_millis(500));
    let before = crate_thread_switches();
    std::thread::sleep(Duration::from_secs(2));
    let during = crate_thread_switches() - before;
    // 200 per second for 2 s, plus this thread's sleep and some slack for the kernel.
    assert!(during <= 440, "{during} context switches in 2 s");
    // At 1 ms sleeps it would be about 2000.
    let resolved = loop {
        if let Poll::Ready(r) = future.as_mut().poll(&mut cx) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    resolved.unwrap();
}
