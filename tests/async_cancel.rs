//! Cancellation under a real executor: dropping a request future (a timeout, an aborted
//! task) returns at once, never blocks the executor thread, and the request's payload
//! is released in the background after the device completed it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::Runtime;
use support::{identity_model, lock, runtime};

const DEVICE_TIME: Duration = Duration::from_millis(500);

/// Runs `f` on a one-thread tokio runtime next to a ticker task that records the
/// largest gap between its 1 ms ticks: a blocked executor thread shows as a large gap.
fn with_ticker<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let largest_gap = Arc::new(AtomicU64::new(0));
    tokio.block_on(async {
        let gap = Arc::clone(&largest_gap);
        let ticker = tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = Instant::now();
                gap.fetch_max((now - last).as_micros() as u64, Ordering::Relaxed);
                last = now;
            }
        });
        tokio::task::yield_now().await;
        f.await;
        // Let the ticker run once more, so that a stall just before is measured too.
        tokio::time::sleep(Duration::from_millis(5)).await;
        ticker.abort();
    });
    Duration::from_micros(largest_gap.load(Ordering::Relaxed))
}

fn close_and_check(rt: Runtime) {
    drop(rt);
    // The cancelled request keeps the runtime open until it completed, then everything
    // it held is released: nothing left in the simulator.
    let (rt, _) = support::runtime_after_close(Duration::from_secs(10));
    drop(rt);
    support::assert_no_leaks();
}

#[test]
fn a_timed_out_request_future_returns_without_waiting_for_the_device() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model_on(&identity_model(DEVICE_TIME), 0).unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let mut took = Duration::ZERO;
    let gap = with_ticker(async {
        let sets = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        let request = unit.execute(&model, sets.0, sets.1).unwrap();
        let started = Instant::now();
        let timed_out = tokio::time::timeout(Duration::from_millis(10), request.into_future())
            .await
            .is_err();
        took = started.elapsed();
        assert!(timed_out);
    });
    // Both far below the device time (with the old blocking drop: about 490 ms each).
    assert!(took < DEVICE_TIME / 4, "the timeout took {took:?}");
    assert!(
        gap < DEVICE_TIME / 4,
        "the executor thread stalled for {gap:?}"
    );
    drop((model, unit));
    close_and_check(rt);
}

#[test]
fn an_aborted_task_does_not_stall_the_executor() {
    let _g = lock();
    let rt = runtime();
    let model = Arc::new(rt.load_model_on(&identity_model(DEVICE_TIME), 0).unwrap());
    let unit = rt.compute_unit(0).unwrap();
    let gap = with_ticker(async {
        let (task_model, task_unit) = (Arc::clone(&model), unit.clone());
        let task = tokio::spawn(async move {
            let sets = (
                task_model.allocate_inputs()?,
                task_model.allocate_outputs()?,
            );
            task_unit.execute(&task_model, sets.0, sets.1)?.await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // A select! against a sleep behaves the same.
        let sets = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        let request = unit.execute(&model, sets.0, sets.1).unwrap().into_future();
        tokio::select! {
            _ = request => panic!("the request cannot finish before the sleep"),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    });
    assert!(
        gap < DEVICE_TIME / 4,
        "the executor thread stalled for {gap:?}"
    );
    drop((model, unit));
    close_and_check(rt);
}
