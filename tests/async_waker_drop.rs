//! The poller thread behind `RequestFuture` keeps each pending future's waker. When a
//! future is polled again with another waker, the old one is replaced, and dropping it
//! runs the executor's code: it may free a task that holds another registered request
//! future, whose drop deregisters from the poller. That must not happen while the
//! poller's lock is held (it deadlocked the thread, and with it every future of the
//! process).
//!
//! Own test binary: if the deadlock comes back, the stuck thread holds the poller's lock
//! for good, which would hang any other future test in the same process.

mod support;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use neuron_rt::{ExecSets, RequestFuture};

/// A waker that owns a request future: dropping its last handle drops the future.
struct Owning {
    _future: Mutex<RequestFuture<ExecSets>>,
}

impl Wake for Owning {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn replacing_a_waker_that_owns_another_future_does_not_deadlock() {
    let _g = support::lock();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = support::runtime();
        let neff = support::identity_model(Duration::from_millis(200));
        let model = rt.load_model_on(&neff, 0).unwrap();
        let unit = rt.compute_unit(0).unwrap();
        let execute = || {
            let (inputs, outputs) = (
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            );
            unit.execute(&model, inputs, outputs).unwrap().into_future()
        };
        let mut noop = Context::from_waker(Waker::noop());
        // B: registered with the poller, then owned by a waker.
        let mut b = execute();
        assert!(Pin::new(&mut b).poll(&mut noop).is_pending());
        let owner = Waker::from(Arc::new(Owning {
            _future: Mutex::new(b),
        }));
        // A (queued behind B, so pending for 400 ms): registered with that waker, whose
        // only other handle then goes, so that the poller holds the last one.
        let mut a = execute();
        assert!(
            Pin::new(&mut a)
                .poll(&mut Context::from_waker(&owner))
                .is_pending()
        );
        drop(owner);
        // Polled with another waker: the poller's old one is replaced and dropped,
        // which drops B, which deregisters from the poller.
        assert!(Pin::new(&mut a).poll(&mut noop).is_pending());
        // The poller still serves futures afterwards.
        let resolved = loop {
            match Pin::new(&mut a).poll(&mut noop) {
                Poll::Ready(result) => break result,
                Poll::Pending => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        resolved.unwrap();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the thread deadlocked (or panicked) replacing a waker");
}
