//! Idle cost: while a long request is awaited (or waited for), this crate's threads do
//! not wake periodically. With completion events (runtime >= 2.32) they wake only on
//! completion; the 2.31 polling fallback is in `async_idle_2_31.rs`.

mod support;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use support::wakeups::crate_thread_switches;

/// Wakes by unparking the thread that polls.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A one-future executor that sleeps (parks) until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

#[test]
fn awaiting_and_waiting_on_a_long_request_cause_no_periodic_wakeups() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_secs(2)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(unit.has_events());
    let sets = (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    );

    // Awaited: the future registers with the unit's events once, then nothing runs
    // until the completion signal.
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    let mut future = pin!(request.into_future());
    assert!(
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    std::thread::sleep(Duration::from_millis(200));
    let before = crate_thread_switches();
    std::thread::sleep(Duration::from_secs(1)); // the request is still running
    let during = crate_thread_switches() - before;
    // A polling thread at 1 ms would switch about 1000 times in that second.
    assert!(
        during <= 10,
        "{during} context switches in 1 s while awaiting"
    );
    let sets = block_on(future).unwrap();

    // Waited for: the thread blocks on its eventfd (after at most 50 us of watching).
    let request = unit.execute(&model, sets.0, sets.1).unwrap();
    let before = crate_thread_switches();
    request.wait().unwrap();
    let during = crate_thread_switches() - before;
    assert!(during <= 10, "{during} context switches during a 2 s wait");
}
