//! The async API on nrt-sim (dlopen'ed): dropping and awaiting requests without busy
//! polling, pipelines, and units and futures that never keep the runtime open.

mod support;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use neuron_rt::{Error, ExecSets, NrtStatus, Pipeline, Request};
use support::add_jobs::{exec, fill, loaded, out, sets};

#[test]
fn dropping_a_request_returns_at_once_and_releases_it_after_completion() {
    let _g = support::lock();
    {
        let rt = support::runtime();
        let model = loaded(&rt, Duration::from_millis(300), 0);
        let unit = rt.compute_unit(0).unwrap();
        let started = Instant::now();
        let r = exec(&unit, &model, sets(&model, 1.0)).unwrap();
        let seq = r.seq();
        drop(r);
        // Far below the 300 ms the device takes: the drop did not wait for it.
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert!(unit.last_completed().unwrap().number() < seq.number());
    }
    // Every handle is gone, but the dropped request still runs: the runtime stays open
    // (its sets, model and slot alive) until it completed, then closes.
    let (_rt, was_open) = support::runtime_after_close(Duration::from_secs(10));
    assert!(
        was_open,
        "nrt_close ran before the dropped request completed"
    );
}

#[test]
fn long_waits_sleep_instead_of_spinning() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(300), 0);
    let unit = rt.compute_unit(0).unwrap();
    let r = exec(&unit, &model, sets(&model, 1.0)).unwrap();
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    r.wait().unwrap();
    let wall = started.elapsed();
    let cpu = thread_cpu_time() - cpu_before;
    assert!(wall >= Duration::from_millis(250), "{wall:?}");
    // A spinning wait would use ~100% of the wall time.
    assert!(cpu < wall / 5, "waiting used {cpu:?} of CPU in {wall:?}");
}

/// CPU time of the calling thread (Linux: /proc/thread-self/stat, utime + stime).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel reports clock ticks of USER_HZ = 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}

/// A minimal executor: polls on the calling thread, parks between wakes, counts polls.
fn block_on<F: Future>(future: F) -> (F::Output, u32) {
    struct Unparker(std::thread::Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        std::thread::park();
    }
}

#[test]
fn requests_can_be_awaited_without_busy_polling() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(50), 0);
    let unit = rt.compute_unit(0).unwrap();
    let tensor_op = rt.tensor_op_unit(0, 0).unwrap();

    let r = exec(&unit, &model, sets(&model, 4.0)).unwrap();
    let ((_, outputs), polls) = {
        let (result, polls) = block_on(r.into_future());
        (result.unwrap(), polls)
    };
    assert_eq!(out(&outputs), [104.0; 6]);
    // Polled once, woken once by the poller when done (spurious unparks aside).
    assert!(polls <= 4, "{polls} polls");

    // An async fn chaining a read after the execution, with its error path.
    let out_tensor = outputs.get("out").unwrap().clone();
    let (read, _) = block_on(async {
        let buffer = tensor_op.read(&out_tensor, 0, vec![0.0f32; 6])?.await?;
        Ok::<_, Error>(buffer)
    });
    assert_eq!(read.unwrap(), [104.0; 6]);
    support::control()
        .inject_faults("exec:vnc=0:nth=1:status=1004")
        .unwrap();
    let (result, _) = block_on(
        exec(&unit, &model, sets(&model, 0.0))
            .unwrap()
            .into_future(),
    );
    assert_eq!(
        result.unwrap_err().status(),
        Some(NrtStatus::ExecCompletedWithErr)
    );
}

#[test]
fn a_pipeline_keeps_requests_queued_and_yields_results_in_order() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(3), 0);
    let unit = rt.compute_unit(0).unwrap();

    assert!(matches!(
        Pipeline::with_depth(0, Vec::<ExecSets>::new(), |(i, o)| Ok(
            unit.execute(&model, i, o)?
        )),
        Err(Error::InvalidArgument {
            argument: "depth",
            ..
        })
    ));

    // Sets recycled through a pool: 4 pairs for depth 3.
    let pool = std::cell::RefCell::new((0..4).map(|_| sets(&model, 0.0)).collect::<Vec<_>>());
    let max_in_flight = std::cell::Cell::new(0);
    let jobs = 0..12u32;
    let pipeline = Pipeline::new(jobs, |job| {
        let (inputs, outputs) = pool.borrow_mut().pop().expect("a free pair");
        fill(&inputs, job as f32);
        let request = unit.execute(&model, inputs, outputs)?;
        max_in_flight.set(max_in_flight.get().max(unit.in_flight()?));
        Ok(request)
    });
    assert_eq!(pipeline.depth(), 3);
    let mut seen = Vec::new();
    for result in pipeline {
        let (inputs, outputs) = result.unwrap();
        seen.push(out(&outputs)[0] - 100.0);
        pool.borrow_mut().push((inputs, outputs));
    }
    assert_eq!(seen, (0..12).map(|j| j as f32).collect::<Vec<_>>());
    assert!(
        (2..=3).contains(&max_in_flight.get()),
        "max in flight {}",
        max_in_flight.get()
    );

    // A job that fails to submit yields its error and its sets in its place; the rest
    // carry on.
    let results: Vec<_> = Pipeline::new(0..4u32, |job| {
        let (i, o) = sets(&model, job as f32);
        if job == 2 {
            let (i2, o2) = (rt.tensor_set()?, o);
            drop(i);
            return Ok(unit.execute(&model, i2, o2)?);
        }
        Ok(unit.execute(&model, i, o)?)
    })
    .collect();
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    match &results[2] {
        Err(failed) => {
            assert!(
                matches!(failed.error(), Error::MissingTensor { .. }),
                "{failed:?}"
            );
            assert!(
                failed.payload().is_some(),
                "the refused sets are handed back"
            );
        }
        Ok(_) => panic!("job 2 ran without its input `a`"),
    }
}

#[test]
fn double_buffering_overlaps_transfers_with_compute() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(2), 0);
    let compute = rt.compute_unit(0).unwrap();
    let copy_in = rt.tensor_op_unit(0, 0).unwrap();
    let copy_out = rt.tensor_op_unit(0, 1).unwrap();

    let mut free: Vec<ExecSets> = (0..2).map(|_| sets(&model, 0.0)).collect();
    let mut running: Option<Request<ExecSets>> = None;
    let mut results = Vec::new();
    let mut collect = |request: Request<ExecSets>, free: &mut Vec<ExecSets>| {
        let (inputs, outputs) = request.wait().unwrap();
        let out_tensor = outputs.get("out").unwrap().clone();
        let host = copy_out
            .read(&out_tensor, 0, vec![0.0f32; 6])
            .unwrap()
            .wait()
            .unwrap();
        results.push(host[0]);
        free.push((inputs, outputs));
    };
    for batch in 0..8 {
        let (inputs, outputs) = free.pop().unwrap();
        let a = inputs.get("a").unwrap().clone();
        // Producer on TENSOR_OP, while the previous execution may still run.
        let write = copy_in.write(&a, 0, vec![batch as f32; 6]).unwrap();
        write.wait().unwrap(); // consumer only after its producer completed
        let next = compute.execute(&model, inputs, outputs).unwrap();
        if let Some(previous) = running.replace(next) {
            collect(previous, &mut free);
        }
    }
    collect(running.take().unwrap(), &mut free);
    assert_eq!(
        results,
        (0..8).map(|b| 100.0 + b as f32).collect::<Vec<_>>()
    );
}

#[test]
fn units_do_not_keep_the_runtime_open_after_they_are_dropped() {
    let _g = support::lock();
    {
        let rt = support::runtime();
        let model = loaded(&rt, Duration::ZERO, 0);
        let unit = rt.compute_unit(0).unwrap();
        exec(&unit, &model, sets(&model, 1.0))
            .unwrap()
            .wait()
            .unwrap();
        let r = exec(&unit, &model, sets(&model, 1.0)).unwrap();
        drop((rt, model, unit));
        // The request alone keeps everything alive until it is done.
        r.wait().unwrap();
    }
    support::assert_no_leaks();
    // A new runtime starts, with fresh units (sequence numbers start again).
    let rt = support::runtime();
    let unit = rt.compute_unit(0).unwrap();
    assert_eq!(unit.last_submitted().number(), 0);
}

#[test]
fn a_dropped_future_keeps_the_runtime_open_only_until_its_request_completed() {
    let _g = support::lock();
    {
        let rt = support::runtime();
        let model = loaded(&rt, Duration::from_millis(300), 0);
        let unit = rt.compute_unit(0).unwrap();
        let mut future = pin!(
            exec(&unit, &model, sets(&model, 1.0))
                .unwrap()
                .into_future()
        );
        let mut cx = Context::from_waker(Waker::noop());
        // Pending: registered with the unit's events.
        assert!(future.as_mut().poll(&mut cx).is_pending());
        // Dropping the future drops the request, which is released after completion.
    }
    // The request keeps the runtime until it completed; then it closes (no waker, event
    // entry or background thread keeps it) and a new one starts with fresh units.
    let (rt, was_open) = support::runtime_after_close(Duration::from_secs(10));
    assert!(
        was_open,
        "nrt_close ran before the dropped request completed"
    );
    assert_eq!(rt.compute_unit(0).unwrap().last_submitted().number(), 0);
}

#[test]
fn a_request_that_times_out_makes_its_unit_unrecoverable() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(1), 1);
    let unit = rt.compute_unit(1).unwrap();
    support::control()
        .inject_faults("exec:vnc=1:nth=1:status=NRT_TIMEOUT")
        .unwrap();
    let err = exec(&unit, &model, sets(&model, 1.0))
        .unwrap()
        .wait()
        .unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Timeout), "{err}");
    assert!(err.is_fatal());
    // The unit remembers the timeout: the next request is refused without a call.
    assert_eq!(unit.unrecoverable(), Some(NrtStatus::Timeout));
    let submitted = unit.last_submitted();
    let rejected = exec(&unit, &model, sets(&model, 2.0)).unwrap_err();
    assert!(
        matches!(
            rejected.error(),
            Error::Unrecoverable {
                status: NrtStatus::Timeout,
                ..
            }
        ),
        "{rejected}"
    );
    assert_eq!(unit.last_submitted(), submitted);
}

#[test]
fn a_pipeline_of_unbounded_depth_runs_instead_of_panicking() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::ZERO, 0);
    let unit = rt.compute_unit(0).unwrap();
    // "As deep as there are jobs": the depth is a bound, not an amount to preallocate.
    for depth in [usize::MAX, 1 << 40] {
        let pipeline = Pipeline::with_depth(depth, 0..4u32, |job| {
            Ok(unit.execute(
                &model,
                sets(&model, job as f32).0,
                model.allocate_outputs()?,
            )?)
        })
        .unwrap();
        assert_eq!(pipeline.depth(), depth);
        let seen: Vec<f32> = pipeline.map(|r| out(&r.unwrap().1)[0]).collect();
        assert_eq!(seen, [100.0, 101.0, 102.0, 103.0], "depth {depth}");
    }
}

#[test]
fn a_duration_max_timeout_means_no_deadline_instead_of_panicking() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(20), 0);
    let unit = rt.compute_unit(0).unwrap();
    let r = exec(&unit, &model, sets(&model, 1.0)).unwrap();
    // Instant::now() + Duration::MAX overflows: the wait must treat it as "no deadline".
    assert!(r.wait_timeout(Duration::MAX).unwrap());
    let r = exec(&unit, &model, sets(&model, 2.0)).unwrap();
    assert!(unit.wait_for_timeout(r.seq(), Some(Duration::MAX)).unwrap());
    // Large but representable ones too.
    let r = exec(&unit, &model, sets(&model, 3.0)).unwrap();
    let huge = Duration::from_secs(u64::MAX / 4);
    assert!(r.wait_timeout(huge).unwrap());
}
