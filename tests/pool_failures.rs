//! `ModelPool` under failures: sets given back after failed executions (the simulator's
//! tensor count is unchanged by a faults run), requests refused by a dead unit re-routed,
//! a copy dying mid-run (its in-flight requests fail with its error, never retried), no
//! copy left, and shutdown with work in flight.

mod support;

use std::time::Duration;

use neuron_rt::{Error, ModelPool, NrtStatus, Runtime, inputs};
use nrt_sim::{DType, ModelBuilder, Op};
use support::{control, lock, runtime};

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// `y = x + 1` on f32 [4], taking `device_time`.
fn inc_model(device_time: Duration) -> Vec<u8> {
    ModelBuilder::new("inc")
        .input("x", DType::F32, &[4])
        .output("y", DType::F32, &[4])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 1.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .unwrap()
}

/// Sends `n` requests from as many tasks; each result, in request order.
fn run_many(pool: &ModelPool, n: usize) -> Vec<neuron_rt::Result<f32>> {
    tokio().block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let x = [i as f32; 4];
                    let out = pool.infer(&inputs!["x" => &x]).await?;
                    let y = out["y"].to_vec::<f32>()?;
                    assert_eq!(y, [i as f32 + 1.0; 4], "request {i}");
                    Ok(y[0])
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            // A pool that lost sets stalls: fail instead of hanging.
            let done = tokio::time::timeout(Duration::from_secs(30), t).await;
            results.push(done.expect("the pool stalled").unwrap());
        }
        results
    })
}

fn device_tensors() -> u64 {
    control().counters().cores.iter().map(|c| c.tensors).sum()
}

#[test]
fn failed_executions_give_their_sets_back() {
    let _g = lock();
    let rt = runtime();
    // Every set pair allocated up front and none grown: a lost pair would show as fewer
    // tensors (and a pool that stalls), a re-allocated one as more.
    let pool = ModelPool::builder(&rt, inc_model(Duration::from_micros(300)))
        .sets_per_copy(4, 4)
        .build()
        .unwrap();
    let before = device_tensors();
    let faults_before = control().faults_injected();
    control()
        .inject_faults("exec:vnc=0:every=3:status=1003; exec:vnc=1:every=3:status=1003")
        .unwrap();
    let results = run_many(&pool, 120);
    control().clear_faults();
    let injected = control().faults_injected() - faults_before;
    let errors: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        errors.len() as u64,
        injected,
        "one error per injected fault"
    );
    assert!(injected >= 30, "faults injected: {injected}");
    for e in &errors {
        assert_eq!(e.status(), Some(NrtStatus::ExecCompletedWithNumErr), "{e}");
    }
    assert_eq!(device_tensors(), before, "tensors after the faults run");
    let m = pool.metrics();
    assert_eq!(m.total.failed, injected);
    assert_eq!(m.total.ok, 120 - injected);
    assert!(
        m.copies
            .iter()
            .all(|c| c.sets == 4 && c.out_of_service.is_none())
    );
    // Every pair is usable: 8 requests at once (4 per copy) all succeed.
    assert!(run_many(&pool, 8).iter().all(Result::is_ok));
}

#[test]
fn requests_refused_by_a_dead_unit_are_rerouted() {
    let _g = lock();
    let rt = runtime();
    let pool = ModelPool::builder(&rt, inc_model(Duration::from_micros(200)))
        .build()
        .unwrap();
    let before = control().counters();
    // Core 1's compute queue is unrecoverable from now on: it refuses every schedule.
    control().inject_faults("xu:vnc=1:type=compute").unwrap();
    let results = run_many(&pool, 40);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let after = control().counters();
    assert_eq!(after.cores[1].executions, before.cores[1].executions);
    assert_eq!(after.cores[0].executions - before.cores[0].executions, 40);
    let m = pool.metrics();
    let dead = &m.copies[1];
    assert!(dead.counts.refused >= 1, "{dead:?}");
    let why = dead
        .out_of_service
        .as_deref()
        .expect("copy 1 out of service");
    assert!(why.contains("unrecoverable"), "{why}");
    assert_eq!(m.in_service(), 1);
    assert_eq!((m.total.ok, m.total.failed), (40, 0));
}

#[test]
fn a_copy_dying_mid_run_fails_only_its_requests_in_flight() {
    let _g = lock();
    let rt = runtime();
    let pool = ModelPool::builder(&rt, inc_model(Duration::from_millis(1)))
        .build()
        .unwrap();
    // Core 1's compute unit dies at its 10th request: that one and those queued behind
    // it complete with the fatal status; later ones go to core 0.
    control()
        .inject_faults("xu:vnc=1:type=compute:nth=10")
        .unwrap();
    let results = run_many(&pool, 80);
    let errors: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!errors.is_empty(), "the dying unit's requests must fail");
    for e in &errors {
        assert!(e.is_fatal(), "only the dead unit's error: {e}");
    }
    let m = pool.metrics();
    // Never retried: each failed request ran (or was queued) on copy 1, and no more
    // than the copy's sets could hold were on it at once.
    assert_eq!(m.copies[1].counts.failed, errors.len() as u64);
    assert!(
        errors.len() <= neuron_rt::DEFAULT_MAX_SETS,
        "{}",
        errors.len()
    );
    assert!(m.copies[1].out_of_service.is_some());
    assert_eq!(m.copies[0].counts.failed, 0);
    assert_eq!(m.total.ok + errors.len() as u64, 80);
    // The pool carries on with core 0.
    assert!(run_many(&pool, 10).iter().all(Result::is_ok));
}

#[test]
fn no_copy_left_is_reported() {
    let _g = lock();
    let rt = runtime();
    let pool = ModelPool::builder(&rt, inc_model(Duration::ZERO))
        .build()
        .unwrap();
    control()
        .inject_faults("xu:vnc=0:type=compute; xu:vnc=1:type=compute")
        .unwrap();
    let error = pool
        .infer_blocking(&inputs!["x" => &[1.0f32; 4]])
        .unwrap_err();
    match &error {
        Error::PoolUnavailable { reason, .. } => {
            assert!(reason.contains("copy 0 (core 0)"), "{reason}");
            assert!(reason.contains("copy 1 (core 1)"), "{reason}");
        }
        other => panic!("expected PoolUnavailable, got {other}"),
    }
    let m = pool.metrics();
    assert_eq!(m.in_service(), 0);
    assert_eq!(m.rejected, 1);
}

#[test]
fn shutdown_finishes_work_in_flight_then_unloads() {
    let _g = lock();
    let rt: Runtime = runtime();
    let before = control().counters();
    let pool = ModelPool::builder(&rt, inc_model(Duration::from_millis(5)))
        .build()
        .unwrap();
    let loaded = control().counters();
    assert_eq!(loaded.cores[0].models, before.cores[0].models + 1);
    let tokio = tokio();
    let (results, late, metrics) = tokio.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let out = pool.infer(&inputs!["x" => &[i as f32; 4]]).await?;
                    out["y"].to_vec::<f32>().map(|y| y[0])
                })
            })
            .collect();
        // Wait until all 16 requests entered the pool (a slow machine may not have
        // polled every task yet) and some are on the device, then shut down.
        while pool.metrics().total.requests < 16 || pool.metrics().total.in_flight == 0 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let shutdown = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.shutdown().await })
        };
        while !pool.metrics().shut_down {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let late = pool.infer(&inputs!["x" => &[0.0f32; 4]]).await;
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        (results, late, shutdown.await.unwrap())
    });
    // Every request admitted before the shutdown finished; the late one was refused.
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.as_ref().ok(),
            Some(&(i as f32 + 1.0)),
            "request {i}: {r:?}"
        );
    }
    assert!(
        matches!(late, Err(Error::PoolUnavailable { .. })),
        "{late:?}"
    );
    assert_eq!(metrics.total.ok, 16);
    assert_eq!((metrics.total.in_flight, metrics.total.waiting), (0, 0));
    // Unloaded and freed, although this handle still exists.
    let after = control().counters();
    for core in 0..2 {
        assert_eq!(after.cores[core].models, before.cores[core].models);
        assert_eq!(after.cores[core].tensors, before.cores[core].tensors);
    }
    assert!(matches!(
        pool.infer_blocking(&inputs!["x" => &[0.0f32; 4]]),
        Err(Error::PoolUnavailable { .. })
    ));
}
