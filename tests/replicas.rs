//! Replicas: one model on several cores, jobs to the least loaded one, results in job
//! order, per-core counters, dead cores out of rotation, the synchronous path, and no
//! leaked objects.
//! In its own test binary: `NRT_SIM_VNC_COUNT` is read at the simulator's `nrt_init`.

mod support;

use std::sync::Once;
use std::time::Duration;

use neuron_rt::{Error, Replicas, Runtime, Stage};

const CORES: u32 = 4;

fn setup() -> Runtime {
    static ENV: Once = Once::new();
    // SAFETY: set before any runtime of this binary starts, under the test lock, while no
    // other thread of this binary reads the environment (every test takes the lock first).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_VNC_COUNT", CORES.to_string()) });
    support::runtime()
}

fn replicas(rt: &Runtime, device_time: Duration) -> Replicas {
    Replicas::load(rt, &support::add_model_taking(device_time)).unwrap()
}

/// `jobs` add jobs (a = job, b = 100); items in order.
fn run_adds(replicas: &mut Replicas, jobs: u64) -> Vec<neuron_rt::Result<f32>> {
    replicas
        .run(
            0..jobs,
            |job, inputs| {
                inputs.write("a", &[*job as f32; 6])?;
                inputs.write("b", &[100f32; 6])
            },
            |_, outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
        )
        .collect()
}

fn jobs_per_core(replicas: &Replicas) -> Vec<u64> {
    replicas.stats().iter().map(|s| s.jobs).collect()
}

#[test]
fn jobs_spread_over_every_core_and_come_back_in_order() {
    let _g = support::lock();
    {
        let rt = setup();
        let mut replicas = replicas(&rt, Duration::from_millis(2));
        assert_eq!(replicas.cores(), [0, 1, 2, 3]);
        let got: Vec<f32> = run_adds(&mut replicas, 100)
            .into_iter()
            .collect::<neuron_rt::Result<_>>()
            .unwrap();
        assert_eq!(got, (0..100).map(|j| j as f32 + 100.0).collect::<Vec<_>>());
        let per_core = jobs_per_core(&replicas);
        assert_eq!(per_core.iter().sum::<u64>(), 100);
        // Least loaded first: every core took a fair share.
        assert!(per_core.iter().all(|&n| n >= 10), "{per_core:?}");
        for s in replicas.stats() {
            assert!(s.busy > Duration::ZERO, "{s:?}");
            assert_eq!((s.failed_jobs, s.in_flight, s.unrecoverable), (0, 0, None));
        }
        // The simulator agrees on where the executions ran.
        let sim = support::control().counters();
        for (core, n) in per_core.iter().enumerate() {
            assert_eq!(sim.cores[core].executions, *n, "core {core}");
        }
    }
    support::assert_no_leaks();
}

#[test]
fn a_dead_core_leaves_the_rotation_and_the_others_carry_on() {
    let _g = support::lock();
    {
        let rt = setup();
        let mut replicas = replicas(&rt, Duration::from_millis(1));
        // Core 1's compute unit fails fatally on its 3rd execution.
        support::control()
            .inject_faults("xu:vnc=1:type=compute:nth=3")
            .unwrap();
        let items = run_adds(&mut replicas, 80);
        assert_eq!(items.len(), 80, "the other cores finish the run");
        let mut failed = 0;
        for (job, item) in items.iter().enumerate() {
            match item {
                Ok(v) => assert_eq!(*v, job as f32 + 100.0, "job {job}"),
                Err(e) => {
                    failed += 1;
                    assert!(
                        matches!(e, Error::Stage { core: 1, job: j, .. } if *j == job as u64),
                        "job {job}: {e}"
                    );
                    assert!(e.is_fatal(), "{e}");
                }
            }
        }
        assert!(failed >= 1);
        assert_eq!(replicas.live_cores(), [0, 2, 3]);
        let stats = replicas.stats();
        assert!(stats[1].unrecoverable.is_some(), "{stats:?}");
        assert_eq!(stats[1].failed_jobs, failed);
        assert_eq!(stats[1].in_flight, 0);
        // Later runs and synchronous jobs avoid core 1.
        let before = jobs_per_core(&replicas);
        assert!(run_adds(&mut replicas, 40).iter().all(Result::is_ok));
        for _ in 0..8 {
            let y = replicas.execute(
                |inputs| {
                    inputs.write("a", &[1f32; 6])?;
                    inputs.write("b", &[2f32; 6])
                },
                |outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
            );
            assert_eq!(y.unwrap(), 3.0);
        }
        assert_eq!(jobs_per_core(&replicas)[1], before[1]);
    }
    support::assert_no_leaks();
}

#[test]
fn execute_picks_a_free_core_and_skips_dead_ones() {
    let _g = support::lock();
    {
        let rt = setup();
        let replicas = replicas(&rt, Duration::from_millis(1));
        let add = |a: f32| {
            replicas.execute(
                |inputs| {
                    inputs.write("a", &[a; 6])?;
                    inputs.write("b", &[100f32; 6])
                },
                |outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
            )
        };
        // One after the other: every core is free each time, and each takes its turn.
        for i in 0..8 {
            assert_eq!(add(i as f32).unwrap(), i as f32 + 100.0);
        }
        assert_eq!(jobs_per_core(&replicas), [2, 2, 2, 2]);
        // From several threads at once.
        std::thread::scope(|s| {
            for t in 0..4 {
                let add = &add;
                s.spawn(move || {
                    for i in 0..5 {
                        let x = (t * 10 + i) as f32;
                        assert_eq!(add(x).unwrap(), x + 100.0);
                    }
                });
            }
        });
        assert_eq!(jobs_per_core(&replicas).iter().sum::<u64>(), 28);
        // Core 2's compute unit dies: the job that lands there fails, naming the core,
        // and the core leaves the rotation.
        support::control()
            .inject_faults("xu:vnc=2:type=compute")
            .unwrap();
        let mut errors = Vec::new();
        for i in 0..8 {
            if let Err(e) = add(i as f32) {
                errors.push((i, e));
            }
        }
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (i, error) = errors.remove(0);
        // 28 synchronous jobs ran before this loop: the failed one is number 28 + i.
        assert!(
            matches!(
                &error,
                Error::Stage {
                    stage: Stage::Execute,
                    core: 2,
                    job,
                    ..
                } if *job == 28 + i
            ),
            "call {i}: {error}"
        );
        assert!(error.is_fatal());
        assert_eq!(replicas.live_cores(), [0, 1, 3]);
        let before = jobs_per_core(&replicas);
        for i in 0..6 {
            assert_eq!(add(i as f32).unwrap(), i as f32 + 100.0);
        }
        assert_eq!(jobs_per_core(&replicas)[2], before[2]);
    }
    support::assert_no_leaks();
}

#[test]
fn when_every_core_is_dead_runs_end_and_execute_says_why() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = support::add_model();
        let mut replicas = Replicas::load_on(&rt, &model, &[0, 3]).unwrap();
        assert_eq!(replicas.cores(), [0, 3]);
        support::control()
            .inject_faults("xu:vnc=0:type=compute; xu:vnc=3:type=compute")
            .unwrap();
        let items = run_adds(&mut replicas, 100);
        assert!(items.len() < 100 && items.iter().all(Result::is_err));
        assert!(replicas.live_cores().is_empty());
        let e = replicas.execute(|_| Ok(()), |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::Unrecoverable { .. }), "{e}");
        assert!(e.to_string().contains("[0, 3]"), "{e}");
    }
    support::assert_no_leaks();
}

#[test]
fn bad_core_lists_are_refused_with_their_values() {
    let _g = support::lock();
    {
        let rt = setup();
        let model = support::add_model();
        let e = Replicas::load_on(&rt, &model, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    argument: "cores",
                    ..
                }
            ),
            "{e}"
        );
        let e = Replicas::load_on(&rt, &model, &[1, 2, 1]).unwrap_err();
        assert!(e.to_string().contains("core 1 is named twice"), "{e}");
        assert!(Replicas::load_on(&rt, &model, &[0, 99]).is_err());
    }
    // A failed load leaves nothing loaded.
    support::assert_no_leaks();
}

#[test]
fn the_async_stream_spreads_jobs_too_and_stats_are_readable_during_a_run() {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let _g = support::lock();
    {
        let rt = setup();
        let mut replicas = replicas(&rt, Duration::from_millis(2));
        let mut stream = replicas.run_async(
            0..40u64,
            |job, inputs| {
                inputs.write("a", &[*job as f32; 6])?;
                inputs.write("b", &[100f32; 6])
            },
            |_, outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
        );
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        let mut busy_cores_seen = 0;
        loop {
            let polled = std::pin::pin!(stream.next()).as_mut().poll(&mut cx);
            match polled {
                Poll::Ready(Some(item)) => got.push(item.unwrap()),
                Poll::Ready(None) => break,
                Poll::Pending => std::thread::park_timeout(Duration::from_secs(1)),
            }
            let in_flight = stream.stats().iter().filter(|s| s.in_flight > 0).count();
            busy_cores_seen = busy_cores_seen.max(in_flight);
        }
        assert_eq!(got, (0..40).map(|j| j as f32 + 100.0).collect::<Vec<_>>());
        // The cores worked at the same time.
        assert_eq!(busy_cores_seen, CORES as usize);
        drop(stream);
        assert_eq!(jobs_per_core(&replicas).iter().sum::<u64>(), 40);
    }
    support::assert_no_leaks();
}
