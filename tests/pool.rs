//! `ModelPool`: results, dispatch balance, admission within a unit's capacity, set bounds,
//! many tasks on a multi-thread runtime plus sync callers at once, the lease API, bad
//! inputs, large tensors on TENSOR_OP units, shutdown.

mod support;

use std::time::Duration;

use neuron_rt::{ModelPool, Runtime, inputs};
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
    assert!(m.total.device_busy >= Duration::from_millis(2 * 64));
}
