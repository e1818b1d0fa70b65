//! `Pipeline::into_stream`: the pipeline as an asynchronous stream under a real executor:
//! results in job order, failed jobs with their payload, and an executor thread that
//! never blocks while the oldest job runs.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::{ExecSets, NrtStatus, Pipeline};
use support::add_jobs::{exec, loaded, out, sets};

#[test]
fn a_stream_yields_results_in_job_order_with_failed_payloads() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(2), 0);
    let unit = rt.compute_unit(0).unwrap();
    // The 4th execution completes with status 1003 (outputs written, job failed).
    support::control()
        .inject_faults("exec:vnc=0:nth=4:status=1003")
        .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<Result<f32, (NrtStatus, bool)>> = tokio.block_on(async {
        let mut stream = Pipeline::with_depth(3, 0..10, |job| {
            Ok(exec(&unit, &model, sets(&model, job as f32))?)
        })
        .unwrap()
        .into_stream();
        let mut results = Vec::new();
        while let Some(item) = stream.next().await {
            results.push(match item {
                Ok((_inputs, outputs)) => Ok(out(&outputs)[0]),
                Err(failed) => Err((failed.error().status().unwrap(), failed.payload().is_some())),
            });
        }
        assert_eq!(stream.pending(), 0);
        results
    });
    let expected: Vec<Result<f32, (NrtStatus, bool)>> = (0..10)
        .map(|job| {
            if job == 3 {
                Err((NrtStatus::ExecCompletedWithNumErr, true))
            } else {
                Ok(100.0 + job as f32)
            }
        })
        .collect();
    assert_eq!(results, expected);
    drop((unit, model, rt));
    support::assert_no_leaks();
}

#[test]
fn streaming_long_jobs_never_blocks_the_executor_thread() {
    let _g = support::lock();
    let rt = support::runtime();
    let device_time = Duration::from_millis(150);
    let model = loaded(&rt, device_time, 0);
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let largest_gap = Arc::new(AtomicU64::new(0));
    let done = tokio.block_on(async {
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
        let mut stream = Pipeline::new(0..3, |job| {
            Ok(exec(&unit, &model, sets(&model, job as f32))?)
        })
        .into_stream();
        let mut done = Vec::<ExecSets>::new();
        while let Some(item) = stream.next().await {
            done.push(item.unwrap());
        }
        // Let the ticker run once more, so that a stall just before is measured too.
        tokio::time::sleep(Duration::from_millis(5)).await;
        ticker.abort();
        done.len()
    });
    assert_eq!(done, 3);
    let gap = Duration::from_micros(largest_gap.load(Ordering::Relaxed));
    // A blocking wait would stall the only executor thread for each 150 ms job.
    assert!(
        gap < device_time / 2,
        "the executor thread stalled for {gap:?}"
    );
    drop((unit, model, rt));
    support::assert_no_leaks();
}
