//! Staged pipelines (write -> execute -> read on the three units of a core): job order,
//! the three units busy at once, failures of one stage, unrecoverable units, runs
//! dropped midway, the async stream, and no leaked objects.
//! In its own test binary: `NRT_SIM_DMA_GBPS` is read at the simulator's `nrt_init`.

mod support;

use std::sync::Once;
use std::time::{Duration, Instant};

use neuron_rt::{Error, Model, NrtStatus, Runtime, Stage, StagedPipeline};
use nrt_sim::{DType, ModelBuilder, Op};

/// 1 MB/s: an identity model of `FLOATS` f32 moves 20 kB each way, 20 ms per transfer;
/// the add model's 24-byte tensors take 24 us.
const DMA_GBPS: &str = "0.001";
const FLOATS: u32 = 5000;
const STAGE_TIME: Duration = Duration::from_millis(20);

fn setup() -> Runtime {
    static ENV: Once = Once::new();
    // SAFETY: set before any runtime of this binary starts, under the test lock, while no
    // other thread of this binary reads the environment (every test takes the lock first).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_DMA_GBPS", DMA_GBPS) });
    support::runtime()
}

fn add(rt: &Runtime) -> Model {
    rt.load_model_on(&support::add_model(), 0).unwrap()
}

/// `y = x` on f32 [FLOATS], taking STAGE_TIME per execution (and per transfer).
fn big_identity(rt: &Runtime) -> Model {
    let neff = ModelBuilder::new("big-identity")
        .input("x", DType::F32, &[FLOATS])
        .output("y", DType::F32, &[FLOATS])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .device_time(STAGE_TIME)
        .build()
        .unwrap();
    rt.load_model_on(&neff, 0).unwrap()
}

/// Runs `jobs` add jobs (a = job, b = 100) and returns the items.
fn run_adds(pipeline: &mut StagedPipeline, jobs: u64) -> Vec<neuron_rt::Result<f32>> {
    pipeline
        .run(
            0..jobs,
            |job, inputs| {
                inputs.write("a", &[*job as f32; 6])?;
                inputs.write("b", &[100f32; 6])
            },
            |_, outputs| Ok(outputs.to_vec::<f32>("out")?[5]),
        )
        .collect()
}

fn stage_of(error: &Error) -> (Stage, u64, u32) {
    match error {
        Error::Stage {
            stage, job, core, ..
        } => (*stage, *job, *core),
        other => panic!("expected a stage error, got {other:?}"),
    }
}

#[test]
fn results_come_back_in_job_order_and_slots_are_reused() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        let mut pipeline = StagedPipeline::with_depth(&model, 3).unwrap();
        for _ in 0..2 {
            let got: Vec<f32> = run_adds(&mut pipeline, 40)
                .into_iter()
                .collect::<neuron_rt::Result<_>>()
                .unwrap();
            let want: Vec<f32> = (0..40).map(|j| j as f32 + 100.0).collect();
            assert_eq!(got, want);
            // Two sets per slot, allocated once and reused by every job of both runs.
            assert_eq!(support::control().counters().tensor_sets, 6);
        }
        let stats = pipeline.stats();
        assert_eq!((stats.core, stats.jobs, stats.failed_jobs), (0, 80, 0));
        assert_eq!(stats.in_flight, 0);
        assert_eq!(stats.unrecoverable, None);
    }
    support::assert_no_leaks();
}

#[test]
fn the_three_units_are_busy_at_once() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = big_identity(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let before = support::control().counters().cores[0].clone();
        let started = Instant::now();
        let jobs = 12u32;
        let got: Vec<f32> = pipeline
            .run(
                0..jobs,
                |job, inputs| inputs.write("x", &vec![*job as f32; FLOATS as usize]),
                |job, outputs| {
                    let y = outputs.to_vec::<f32>("y")?;
                    assert!(y.iter().all(|&v| v == job as f32), "job {job}");
                    Ok(y[0])
                },
            )
            .collect::<neuron_rt::Result<_>>()
            .unwrap();
        let wall = started.elapsed();
        assert_eq!(got, (0..jobs).map(|j| j as f32).collect::<Vec<_>>());
        let after = support::control().counters().cores[0].clone();
        let write = after.tensor_op_busy[0] - before.tensor_op_busy[0];
        let execute = after.compute_queue_busy - before.compute_queue_busy;
        let read = after.tensor_op_busy[1] - before.tensor_op_busy[1];
        // Each unit did its share of the work...
        for (name, busy) in [("write", write), ("execute", execute), ("read", read)] {
            assert!(busy >= STAGE_TIME * jobs / 2, "{name} queue busy {busy:?}");
        }
        // ... and together they were busy for much longer than the run took: the units
        // worked at the same time (one after the other, the sum would equal the wall
        // time; all three at once, it approaches three times the wall time).
        let total = write + execute + read;
        assert!(
            total.as_secs_f64() > 1.5 * wall.as_secs_f64(),
            "busy {write:?} + {execute:?} + {read:?} = {total:?} in {wall:?}: no overlap"
        );
    }
    support::assert_no_leaks();
}

#[test]
fn a_failed_stage_fails_only_its_job() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        // The 3rd execution (job 2) fails on the device, without being fatal.
        support::control()
            .inject_faults("exec:vnc=0:nth=3:status=NRT_EXEC_BAD_INPUT")
            .unwrap();
        let items: Vec<_> = pipeline
            .run(
                0..12u64,
                |job, inputs| {
                    if *job == 5 {
                        return Err(Error::InvalidArgument {
                            argument: "job",
                            reason: "no data for job 5".into(),
                        });
                    }
                    inputs.write("a", &[*job as f32; 6])?;
                    inputs.write("b", &[1f32; 6])
                },
                |job, outputs| {
                    if job == 7 {
                        // The output buffer is smaller than the output: SizeMismatch.
                        let mut short = [0f32; 2];
                        outputs.read("out", &mut short)?;
                    }
                    Ok(outputs.to_vec::<f32>("out")?[0])
                },
            )
            .collect();
        assert_eq!(items.len(), 12);
        for (job, item) in items.iter().enumerate() {
            match job {
                2 => {
                    let e = item.as_ref().unwrap_err();
                    assert_eq!(stage_of(e), (Stage::Execute, 2, 0));
                    assert_eq!(e.status(), Some(NrtStatus::ExecBadInput), "{e}");
                    assert!(e.to_string().contains("execute stage on core 0"), "{e}");
                }
                5 => {
                    let e = item.as_ref().unwrap_err();
                    assert_eq!(stage_of(e), (Stage::Write, 5, 0));
                    assert!(e.to_string().contains("no data for job 5"), "{e}");
                }
                7 => {
                    let e = item.as_ref().unwrap_err();
                    assert_eq!(stage_of(e), (Stage::Read, 7, 0));
                    assert!(matches!(e, Error::Stage { error: source, .. }
                        if matches!(**source, Error::SizeMismatch { .. })));
                }
                _ => assert_eq!(item.as_ref().unwrap(), &(job as f32 + 1.0), "job {job}"),
            }
        }
        let stats = pipeline.stats();
        assert_eq!((stats.jobs, stats.failed_jobs), (12, 3));
        assert_eq!(stats.unrecoverable, None);
        // The slots of failed jobs are fine for later jobs.
        assert!(run_adds(&mut pipeline, 8).iter().all(Result::is_ok));
    }
    support::assert_no_leaks();
}

#[test]
fn an_unrecoverable_unit_ends_the_run_with_errors_for_its_jobs() {
    for (spec, stage) in [
        ("xu:vnc=0:type=compute:nth=4", Stage::Execute),
        ("xu:vnc=0:type=tensor_op:queue=1:nth=3", Stage::Read),
        ("xu:vnc=0:type=tensor_op:queue=0:nth=5", Stage::Write),
    ] {
        let _g = support::lock();
        {
            let rt = setup();
            let model = add(&rt);
            let mut pipeline = StagedPipeline::new(&model).unwrap();
            support::control().inject_faults(spec).unwrap();
            let items = run_adds(&mut pipeline, 1000);
            assert!(items.len() < 1000, "{spec}: the run went on");
            let first_err = items.iter().position(Result::is_err).expect("a failure");
            assert!(first_err >= 2, "{spec}: {items:?}");
            let e = items[first_err].as_ref().unwrap_err();
            assert_eq!(stage_of(e).0, stage, "{spec}: {e}");
            assert!(e.is_fatal(), "{spec}: {e}");
            // After the first fatal error, every job in flight fails too; no job
            // succeeds on the dead unit's stage.
            assert!(items[first_err..].iter().all(Result::is_err), "{spec}");
            let stats = pipeline.stats();
            assert!(stats.unrecoverable.is_some(), "{spec}: {stats:?}");
            assert_eq!(stats.in_flight, 0);
            // A new run on the dead core ends at once.
            assert_eq!(run_adds(&mut pipeline, 10).len(), 0, "{spec}");
        }
        support::assert_no_leaks();
    }
}

#[test]
fn a_run_dropped_or_leaked_midway_leaves_the_pipeline_usable() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = big_identity(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let jobs = 0..100u32;
        let write = |job: &u32, inputs: &mut neuron_rt::HostInputs<'_>| {
            inputs.write("x", &vec![*job as f32; FLOATS as usize])
        };
        let read = |_: u32, outputs: &neuron_rt::HostOutputs<'_>| -> neuron_rt::Result<f32> {
            Ok(outputs.to_vec::<f32>("y")?[0])
        };
        let mut run = pipeline.run(jobs.clone(), write, read);
        assert_eq!(run.next().unwrap().unwrap(), 0.0);
        assert!(run.pending() > 0);
        drop(run); // never blocks: the jobs in flight complete in the background
        let mut run = pipeline.run(jobs.clone(), write, read);
        assert_eq!(run.next().unwrap().unwrap(), 0.0);
        std::mem::forget(run); // the slots keep what the device uses
        let got: Vec<f32> = pipeline
            .run(0..5u32, write, read)
            .collect::<neuron_rt::Result<_>>()
            .unwrap();
        assert_eq!(got, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(pipeline.stats().in_flight, 0);
    }
    // Dropped requests keep the runtime open until they completed.
    drop(support::runtime_after_close(Duration::from_secs(30)));
    support::assert_no_leaks();
}

/// Polls `future` to completion on this thread, parking between polls.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

#[test]
fn the_async_stream_yields_the_same_results() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let mut stream = pipeline.run_async(
            0..30u64,
            |job, inputs| {
                inputs.write("a", &[*job as f32; 6])?;
                inputs.write("b", &[100f32; 6])
            },
            |_, outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
        );
        let got = block_on(async {
            let mut got = Vec::new();
            while let Some(item) = stream.next().await {
                got.push(item.unwrap());
            }
            got
        });
        assert_eq!(got, (0..30).map(|j| j as f32 + 100.0).collect::<Vec<_>>());
        drop(stream);
        assert_eq!(pipeline.stats().jobs, 30);
    }
    support::assert_no_leaks();
}

#[test]
fn bad_depths_and_names_are_refused_with_their_values() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        for depth in [0, 257] {
            let e = StagedPipeline::with_depth(&model, depth).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument { argument: "depth", reason }
                    if reason.contains(&depth.to_string())),
                "{e}"
            );
        }
        let mut pipeline = StagedPipeline::with_depth(&model, 1).unwrap();
        let items: Vec<_> = pipeline
            .run(
                0..2,
                |_, inputs| inputs.write("nope", &[0f32; 6]),
                |_, _| Ok(()),
            )
            .collect();
        for item in &items {
            let e = item.as_ref().unwrap_err();
            assert!(e.to_string().contains("no input `nope`"), "{e}");
        }
        // Typed: `a` holds f32, not u32 (the raw bytes are `bytes_mut`).
        let items: Vec<_> = pipeline
            .run(
                0..1,
                |_, inputs| inputs.write("a", &[0u32; 6]),
                |_, _| Ok(()),
            )
            .collect();
        let e = items[0].as_ref().unwrap_err();
        assert!(
            matches!(e, Error::Stage { error: source, .. } if matches!(**source,
                Error::WrongElementType { expected: neuron_rt::DType::F32, given: "u32", .. })),
            "{e}"
        );
    }
    support::assert_no_leaks();
}

#[test]
fn a_panicking_closure_fails_its_job_and_the_run_goes_on() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let mut run = pipeline.run(
            0..8u64,
            |job, inputs| {
                assert!(*job != 2, "write panics on job 2");
                inputs.write("a", &[*job as f32; 6])?;
                inputs.write("b", &[0f32; 6])
            },
            |job, outputs| {
                assert!(job != 4, "read panics on job 4");
                Ok(outputs.to_vec::<f32>("out")?[0])
            },
        );
        let (mut items, mut panics) = (Vec::new(), 0);
        loop {
            match catch_unwind(AssertUnwindSafe(|| run.next())) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        drop(run);
        assert_eq!(panics, 2);
        assert_eq!(items.len(), 8, "{items:?}");
        for (job, item) in items.iter().enumerate() {
            match job {
                2 | 4 => {
                    let e = item.as_ref().unwrap_err();
                    let stage = if job == 2 { Stage::Write } else { Stage::Read };
                    assert_eq!(stage_of(e), (stage, job as u64, 0));
                    assert!(e.to_string().contains("closure panicked"), "{e}");
                }
                _ => assert_eq!(*item.as_ref().unwrap(), job as f32, "job {job}"),
            }
        }
        let stats = pipeline.stats();
        assert_eq!((stats.jobs, stats.failed_jobs, stats.in_flight), (8, 2, 0));
        // Every slot is still there for the next run.
        assert!(run_adds(&mut pipeline, 20).iter().all(Result::is_ok));
    }
    support::assert_no_leaks();
}

#[test]
fn pipelines_replicas_and_runs_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<StagedPipeline>();
    send_sync::<neuron_rt::Replicas>();
    send_sync::<neuron_rt::CoreStats>();
    let _g = support::lock();
    {
        let rt = setup();
        let model = add(&rt);
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let mut run = pipeline.run(0..6u64, |_, _| Ok(()), |job, _| Ok(job));
        send(&run);
        assert_eq!(run.next().unwrap().unwrap(), 0);
        // The run carries on from another thread (its waker follows the thread).
        let rest: Vec<u64> = std::thread::scope(|s| {
            s.spawn(move || run.map(Result::unwrap).collect())
                .join()
                .unwrap()
        });
        assert_eq!(rest, [1, 2, 3, 4, 5]);
    }
    support::assert_no_leaks();
}
