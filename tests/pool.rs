//! `ModelPool`: results, dispatch balance, admission within a unit's capacity, set bounds,
//! many tasks on a multi-thread runtime plus sync callers at once, the lease API, bad
//! inputs, large tensors on TENSOR_OP units, shutdown.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use neuron_rt::{Error, GivenInput, Input, ModelPool, Runtime, inputs};
use nrt_sim::{DType, ModelBuilder, Op};
use support::{control, lock, runtime};

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// `y = 2x + 1` on f32 [n], taking `device_time`.
fn scale_model(n: u32, device_time: Duration) -> Vec<u8> {
    ModelBuilder::new("scale")
        .input("x", DType::F32, &[n])
        .output("y", DType::F32, &[n])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .unwrap()
}

fn pool(rt: &Runtime, neff: Vec<u8>) -> ModelPool {
    ModelPool::builder(rt, neff).build().unwrap()
}

#[test]
fn infer_returns_typed_outputs_on_every_core() {
    let _g = lock();
    let rt = runtime();
    let pool = pool(&rt, scale_model(4, Duration::ZERO));
    assert_eq!(pool.cores(), [0, 1]);
    let out = pool
        .infer_blocking(&inputs!["x" => &[1.0f32, 2.0, 3.0, 4.0]])
        .unwrap();
    assert_eq!(out["y"].as_slice::<f32>().unwrap(), [3.0, 5.0, 7.0, 9.0]);
    assert_eq!(out["y"].shape(), [4]);
    let m = pool.shutdown_blocking();
    assert_eq!((m.total.ok, m.total.requests, m.total.failed), (1, 1, 0));
}

#[test]
fn dispatch_balances_concurrent_requests_over_the_cores() {
    let _g = lock();
    let rt = runtime();
    let pool = pool(&rt, scale_model(4, Duration::from_millis(2)));
    let before = control().counters();
    let started = std::time::Instant::now();
    tokio().block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let x = [i as f32; 4];
                    let out = pool.infer(&inputs!["x" => &x]).await.unwrap();
                    assert_eq!(out["y"].to_vec::<f32>().unwrap(), [2.0 * i as f32 + 1.0; 4]);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let after = control().counters();
    let runs: Vec<u64> = (0..2)
        .map(|c| after.cores[c].executions - before.cores[c].executions)
        .collect();
    assert_eq!(runs.iter().sum::<u64>(), 64);
    // Least loaded dispatch: both cores busy, neither more than 5/8 of the work.
    assert!(
        runs.iter().all(|&r| r >= 24),
        "executions per core: {runs:?}"
    );
    let m = pool.metrics();
    assert_eq!(m.total.ok, 64);
    assert_eq!(m.copies.iter().map(|c| c.counts.requests).sum::<u64>(), 64);
    assert_eq!((m.total.in_flight, m.total.waiting), (0, 0));
    assert_eq!(m.total.latency.count(), 64);
    // Busy time is a host-side measure: some, never more than the run's wall time per copy.
    assert!(m.total.device_busy > Duration::ZERO);
    assert!(
        m.copies.iter().all(|c| c.counts.device_busy <= elapsed),
        "{elapsed:?} {m:?}"
    );
}

#[test]
fn many_tasks_and_sync_threads_at_once() {
    let _g = lock();
    let rt = runtime();
    let pool = pool(&rt, scale_model(4, Duration::from_micros(300)));
    let tokio = tokio();
    let async_side = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            tokio.block_on(async {
                let tasks: Vec<_> = (0..100)
                    .map(|i| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            let x = Input::from_vec(vec![i as f32; 4]);
                            let out = pool.infer(&[("x", x)]).await.unwrap();
                            assert_eq!(
                                out["y"].to_vec::<f32>().unwrap(),
                                [2.0 * i as f32 + 1.0; 4]
                            );
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for k in 0..25 {
                    let x = [(t * 100 + k) as f32; 4];
                    let out = pool.infer_blocking(&inputs!["x" => &x]).unwrap();
                    assert_eq!(out["y"].as_slice::<f32>().unwrap(), [2.0 * x[0] + 1.0; 4]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    async_side.join().unwrap();
    let m = pool.metrics();
    assert_eq!(
        (m.total.requests, m.total.ok, m.total.failed),
        (200, 200, 0)
    );
    assert!(m.copies.iter().all(|c| c.counts.ok > 0), "{:?}", m.copies);
}

#[test]
fn admission_never_exceeds_the_units_capacity() {
    let _g = lock();
    let rt = runtime();
    // More set pairs than the simulator's queue holds (8): admission must wait. 20 ms
    // executions, so the queue fills however slowly the host side runs (with 1 ms, an
    // ASan build never filled it and the capacity stayed unlearned).
    let pool = ModelPool::builder(&rt, scale_model(4, Duration::from_millis(20)))
        .cores([0])
        .sets_per_copy(16, 16)
        .build()
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (unit, peak, done) = (unit.clone(), Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(unit.in_flight().unwrap() as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    tokio().block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.infer(&inputs!["x" => &[i as f32; 4]]).await })
            })
            .collect();
        for t in tasks {
            // No QueueFull (or any error) surfaces.
            t.await.unwrap().unwrap();
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak > 1, "requests were queued on the unit: {peak}");
    assert!(peak <= unit.capacity(), "{peak} > {}", unit.capacity());
    assert_eq!(
        unit.capacity(),
        8,
        "learned from the simulator's queue depth"
    );
}

#[test]
fn sets_grow_on_demand_up_to_the_bound() {
    let _g = lock();
    let rt = runtime();
    let pool = ModelPool::builder(&rt, scale_model(4, Duration::from_millis(1)))
        .cores([0])
        .sets_per_copy(1, 3)
        .build()
        .unwrap();
    assert_eq!(pool.metrics().copies[0].sets, 1);
    tokio().block_on(async {
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.infer(&inputs!["x" => &[i as f32; 4]]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    assert_eq!(pool.metrics().copies[0].sets, 3);
}

#[test]
fn inputs_that_do_not_fit_are_refused_before_dispatch() {
    let _g = lock();
    let rt = runtime();
    let pool = pool(&rt, scale_model(4, Duration::ZERO));
    let wrong_type = pool
        .infer_blocking(&inputs!["x" => &[1i32; 4]])
        .unwrap_err();
    assert_eq!(
        wrong_type.to_string(),
        "model `scale`: input `x` expects f32 [4] (4 elements), got i32 values"
    );
    let short = pool
        .infer_blocking(&inputs!["x" => &[1.0f32; 3]])
        .unwrap_err();
    assert!(
        matches!(&short, Error::InputMismatch(m)
            if m.model == "scale" && m.input == "x" && m.given == GivenInput::Elements(3)),
        "{short}"
    );
    assert_eq!(
        short.to_string(),
        "model `scale`: input `x` expects f32 [4] (4 elements), got 3 elements"
    );
    let missing = pool.infer_blocking(&[]).unwrap_err();
    assert!(matches!(missing, Error::MissingInput(_)), "{missing}");
    assert_eq!(
        missing.to_string(),
        "model `scale`: input `x` (f32 [4]) is not given (given: none)"
    );
    let unknown = pool
        .infer_blocking(&inputs!["x" => &[1.0f32; 4], "z" => &[1.0f32; 4]])
        .unwrap_err();
    assert!(matches!(unknown, Error::UnknownTensor { .. }), "{unknown}");
    let m = pool.metrics();
    assert_eq!((m.rejected, m.total.requests), (4, 4));
    assert!(m.copies.iter().all(|c| c.counts.requests == 0));
}

#[test]
fn a_lease_is_filled_and_read_by_the_caller() {
    let _g = lock();
    let rt = runtime();
    let pool = pool(&rt, scale_model(4, Duration::ZERO));
    tokio().block_on(async {
        let lease = pool.lease().await.unwrap();
        lease
            .inputs()
            .get("x")
            .unwrap()
            .write(&[1.0f32, 2.0, 3.0, 4.0])
            .unwrap();
        let lease = lease.execute().await.unwrap();
        let y: Vec<f32> = lease.outputs().get("y").unwrap().to_vec().unwrap();
        assert_eq!(y, [3.0, 5.0, 7.0, 9.0]);
        assert_eq!(lease.model().core(), Some(lease.core()));
        let m = pool.metrics();
        assert_eq!((m.total.in_flight, m.total.ok), (1, 1));
        drop(lease);
        assert_eq!(pool.metrics().total.in_flight, 0);
    });
}

#[test]
fn large_tensors_move_on_tensor_op_units() {
    let _g = lock();
    let rt = runtime();
    // 4 KiB in and out: "large" from 1 KiB, or never.
    for (n, threshold) in [(1024u32, 1024usize), (1024, usize::MAX)] {
        let pool = ModelPool::builder(&rt, scale_model(n, Duration::ZERO))
            .large_transfer_bytes(threshold)
            .build()
            .unwrap();
        let ops = |c: &nrt_sim::Counters| c.cores.iter().map(|k| k.tensor_ops).sum::<u64>();
        let before = ops(&control().counters());
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let out = tokio().block_on(pool.infer(&inputs!["x" => &x])).unwrap();
        let y = out["y"].to_vec::<f32>().unwrap();
        assert!(
            y.iter()
                .enumerate()
                .all(|(i, v)| *v == 2.0 * i as f32 + 1.0)
        );
        let moved = ops(&control().counters()) - before;
        // One write and one read on TENSOR_OP units, or none.
        assert_eq!(
            moved,
            if threshold == usize::MAX { 0 } else { 2 },
            "threshold {threshold}"
        );
        pool.shutdown_blocking();
    }
}

#[test]
fn several_copies_per_core_share_the_load_by_core_first() {
    let _g = lock();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scale.neff");
    std::fs::write(&path, scale_model(4, Duration::from_millis(1))).unwrap();
    let pool = ModelPool::builder(&rt, path.as_path())
        .copies_per_core(2)
        .build()
        .unwrap();
    assert_eq!(pool.cores(), [0, 0, 1, 1]);
    let before = control().counters();
    tokio().block_on(async {
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.infer(&inputs!["x" => &[i as f32; 4]]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    let after = control().counters();
    let runs: Vec<u64> = (0..2)
        .map(|c| after.cores[c].executions - before.cores[c].executions)
        .collect();
    assert!(
        runs.iter().all(|&r| r >= 18),
        "executions per core: {runs:?}"
    );
    let m = pool.metrics();
    assert!(
        m.copies.iter().all(|c| c.counts.ok > 0),
        "every copy served: {:?}",
        m.copies
    );
    // A dead compute unit takes both copies of its core out of the rotation.
    control().inject_faults("xu:vnc=0:type=compute").unwrap();
    for i in 0..6 {
        pool.infer_blocking(&inputs!["x" => &[i as f32; 4]])
            .unwrap();
    }
    let m = pool.metrics();
    assert_eq!(m.in_service(), 2);
    assert!(
        m.copies[..2].iter().all(|c| c.out_of_service.is_some()),
        "{:?}",
        m.copies
    );
}

#[test]
fn bad_builder_settings_are_refused_with_the_values() {
    let _g = lock();
    let rt = runtime();
    let neff = scale_model(4, Duration::ZERO);
    let refused = |b: neuron_rt::ModelPoolBuilder<'_>| match b.build() {
        Err(Error::InvalidArgument { argument, reason }) => format!("{argument}: {reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let b = || ModelPool::builder(&rt, &neff);
    assert!(refused(b().cores([0, 0])).contains("core 0 is listed twice"));
    assert!(refused(b().cores([2])).contains("core 2 is not visible: 2 cores are"));
    assert!(refused(b().cores([])).contains("no core"));
    assert!(refused(b().copies_per_core(0)).contains("got 0"));
    assert!(refused(b().sets_per_copy(3, 2)).contains("initial 3 and max 2"));
    assert!(refused(b().sets_per_copy(0, 0)).contains("max 0"));
    let missing = ModelPool::builder(&rt, std::path::Path::new("/nonexistent/model.neff")).build();
    assert!(missing.is_err());
}
