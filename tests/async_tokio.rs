//! The tokio-native completion path (feature `tokio`): futures awaited on a tokio
//! runtime are woken by that runtime's reactor, never by the crate's event thread.
//! Mirrors the generic tests (async_events, async_cancel, async_forget (in
//! async_tokio_forget.rs: a forgotten request keeps the runtime open),
//! async_allocations, async_idle) on this path, plus what is special to it: a future
//! moved out of a runtime, a runtime shut down under a pending future, a runtime
//! without IO, and a multi-thread runtime.
#![cfg(feature = "tokio")]

mod support;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::future::{Future, IntoFuture, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use support::wakeups::{event_thread_switches, settled_event_thread_switches};

fn tokio_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Counts wake-ups, then passes them on to the task's own waker.
struct Counting {
    wakes: Arc<AtomicU64>,
    inner: Waker,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

/// Wakes the parked test thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A one-future executor outside any tokio runtime (the generic path).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

#[test]
fn a_future_on_tokio_is_woken_once_by_the_reactor_not_the_event_thread() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(300)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(unit.has_events());
    let tokio = tokio_current();
    let inputs = model.allocate_inputs().unwrap();
    inputs
        .get("x")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, 4.0])
        .unwrap();
    // The event thread exists once a unit has events; once it has settled, it must
    // not wake from here on.
    let outputs = model.allocate_outputs().unwrap();
    let before = settled_event_thread_switches();
    let request = unit.execute(&model, inputs, outputs).unwrap();
    let wakes = Arc::new(AtomicU64::new(0));
    let mut polls = 0;
    let (_, outputs) = tokio.block_on(async {
        let mut future = request.into_future();
        poll_fn(|cx| {
            polls += 1;
            let waker = Waker::from(Arc::new(Counting {
                wakes: Arc::clone(&wakes),
                inner: cx.waker().clone(),
            }));
            Pin::new(&mut future).poll(&mut Context::from_waker(&waker))
        })
        .await
        .unwrap()
    });
    let switches = event_thread_switches() - before;
    assert_eq!(
        outputs.get("y").unwrap().to_vec::<f32>().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(wakes.load(Ordering::SeqCst), 1, "woken once, on completion");
    assert!(polls <= 3, "{polls} polls");
    assert_eq!(switches, 0, "the event thread woke {switches} times");
}

#[test]
fn many_awaits_on_tokio_wake_no_crate_thread_and_allocate_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model_on(&support::add_model(), 0).unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let copier = rt.tensor_op_unit(0, 0).unwrap();
    let t = rt
        .allocate_tensor(neuron_rt::Placement::Device, Some(0), 4096, "t")
        .unwrap();
    let tokio = tokio_current();
    let mut sets = Some((
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    ));
    let mut buffer = Some(vec![0u8; 4096]);
    let round = |sets: &mut Option<_>, buffer: &mut Option<Vec<u8>>| {
        tokio.block_on(async {
            let (i, o) = sets.take().unwrap();
            *sets = Some(unit.execute(&model, i, o).unwrap().await.unwrap());
            let b = buffer.take().unwrap();
            let b = copier.write(&t, 0, b).unwrap().await.unwrap();
            *buffer = Some(copier.read(&t, 0, b).unwrap().await.unwrap());
        })
    };
    for _ in 0..20 {
        round(&mut sets, &mut buffer); // warm-up: buffers grow once
    }
    let before = event_thread_switches();
    let allocs = counting_alloc::allocations();
    for _ in 0..50 {
        round(&mut sets, &mut buffer);
    }
    let allocs = counting_alloc::allocations() - allocs;
    let switches = event_thread_switches() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in 150 awaited requests");
    assert_eq!(switches, 0, "the event thread woke {switches} times");
}

#[test]
fn a_long_await_on_tokio_causes_no_periodic_wakeups() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(1500)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio_current();
    let request = unit
        .execute(
            &model,
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        )
        .unwrap();
    let polls = AtomicU64::new(0);
    let before = event_thread_switches();
    tokio
        .block_on(async {
            let mut future = request.into_future();
            poll_fn(|cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                Pin::new(&mut future).poll(cx)
            })
            .await
        })
        .unwrap();
    // A timer or polling thread would poll or switch hundreds of times in 1.5 s.
    assert!(polls.load(Ordering::SeqCst) <= 3);
    assert_eq!(event_thread_switches() - before, 0);
}

#[test]
fn futures_cancelled_on_tokio_leave_no_waker_behind() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(100)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio_current();
    let wakes = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(Counting {
        wakes: Arc::clone(&wakes),
        inner: Waker::noop().clone(),
    });
    let waker = Waker::from(Arc::clone(&counting));
    tokio.block_on(async {
        for _ in 0..3 {
            let request = unit
                .execute(
                    &model,
                    model.allocate_inputs().unwrap(),
                    model.allocate_outputs().unwrap(),
                )
                .unwrap();
            let mut future = request.into_future();
            assert!(
                Pin::new(&mut future)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            drop(future); // cancelled: never blocks
        }
        // A select!-style timeout cancels an awaited request too.
        let request = unit
            .execute(
                &model,
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            )
            .unwrap();
        let timed_out = tokio::time::timeout(Duration::from_millis(5), request.into_future());
        assert!(timed_out.await.is_err());
        // The reactor keeps running while the dropped requests complete.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    unit.wait_idle().unwrap();
    assert_eq!(wakes.load(Ordering::SeqCst), 0);
    // Only `counting` and `waker` hold it: no entry kept a clone.
    assert_eq!(Arc::strong_count(&counting), 2);
    // The unit still works on the same path.
    let sets = tokio
        .block_on(
            unit.execute(
                &model,
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            )
            .unwrap()
            .into_future(),
        )
        .unwrap();
    drop(sets);
}

#[test]
fn a_future_moved_out_of_tokio_or_outliving_its_runtime_still_resolves() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(200)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let sets = || {
        (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        )
    };
    // Polled inside a runtime that then shuts down: the future is woken (the watch
    // died), then finishes outside tokio on the event thread.
    let (i, o) = sets();
    let mut future = unit.execute(&model, i, o).unwrap().into_future();
    let tokio = tokio_current();
    let woken = Arc::new(AtomicU64::new(0));
    let waker = Waker::from(Arc::new(Counting {
        wakes: Arc::clone(&woken),
        inner: Waker::noop().clone(),
    }));
    tokio.block_on(async {
        assert!(
            Pin::new(&mut future)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    });
    drop(tokio);
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "woken when its runtime shut down"
    );
    block_on(future).unwrap();

    // Polled in one runtime, finished in another.
    let (i, o) = sets();
    let mut future = unit.execute(&model, i, o).unwrap().into_future();
    let first = tokio_current();
    first.block_on(async {
        assert!(
            poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx)))
                .await
                .is_pending()
        );
    });
    let second = tokio_current();
    second.block_on(future).unwrap();

    // A runtime without the IO driver: its futures use the event thread.
    let no_io = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (i, o) = sets();
    no_io
        .block_on(unit.execute(&model, i, o).unwrap().into_future())
        .unwrap();
    drop(first);
}

#[test]
fn many_futures_on_a_multi_thread_runtime_all_resolve() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = Arc::new(
        rt.load_model_on(&support::identity_model(Duration::from_millis(2)), 0)
            .unwrap(),
    );
    let units = [rt.compute_unit(0).unwrap(), rt.compute_unit(1).unwrap()];
    let models = [
        Arc::clone(&model),
        Arc::new(
            rt.load_model_on(&support::identity_model(Duration::from_millis(2)), 1)
                .unwrap(),
        ),
    ];
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = event_thread_switches();
    let done = tokio.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..16 {
            let unit = units[task % 2].clone();
            let model = Arc::clone(&models[task % 2]);
            tasks.push(tokio::spawn(async move {
                let mut sets = (
                    model.allocate_inputs().unwrap(),
                    model.allocate_outputs().unwrap(),
                );
                for _ in 0..10 {
                    let request = unit
                        .submit(sets, |(i, o)| unit.execute(&model, i, o))
                        .await
                        .unwrap();
                    sets = request.await.unwrap();
                }
                10
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a task hung")
                .unwrap();
        }
        done
    });
    assert_eq!(done, 160);
    assert_eq!(event_thread_switches() - before, 0);
}
