//! Where `ModelPool` moves tensors on TENSOR_OP units instead of copying them on the
//! request's task (`LARGE_TRANSFER_BYTES`): for each tensor size, the same pool requests
//! (one f32 input and one output of that size, 200 µs of device time, 2 simulated cores,
//! transfers at the simulator's default 16 GB/s) with every transfer synchronous and with
//! every transfer scheduled, at concurrency 1 (latency) and 16 (throughput), on a
//! 2-thread tokio runtime.
//!
//! `cargo bench --bench pool_transfer`: one line per size and concurrency:
//! `bytes=<b> concurrency=<c> sync_rps=<x> scheduled_rps=<y> sync_p50_us=<a> scheduled_p50_us=<b>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::{Input, ModelPool, Runtime};
use nrt_sim::{DType, ModelBuilder, Op};

fn model(elements: u32) -> Vec<u8> {
    ModelBuilder::new("copy")
        .input("x", DType::F32, &[elements])
        .output("y", DType::F32, &[elements])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .device_time(Duration::from_micros(200))
        .build()
        .expect("model")
}

/// Throughput (requests/s) and p50 latency of `requests` from `concurrency` tasks.
async fn measure(
    pool: &ModelPool,
    elements: usize,
    concurrency: usize,
    requests: usize,
) -> (f64, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, next) = (pool.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let x = vec![1.0f32; elements];
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let t0 = Instant::now();
                    pool.infer(&[("x", Input::from(&x))]).await.expect("infer");
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("task"));
    }
    let rps = requests as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (rps, latencies[latencies.len() / 2])
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = Runtime::builder()
        .library(nrt_sim::library())
        .build()
        .expect("runtime on nrt-sim");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let sizes: &[usize] = if quick {
        &[16 << 10]
    } else {
        &[
            16 << 10,
            64 << 10,
            128 << 10,
            256 << 10,
            512 << 10,
            1 << 20,
            4 << 20,
        ]
    };
    for &bytes in sizes {
        let elements = bytes / 4;
        let neff = model(elements as u32);
        let build = |threshold: usize| {
            ModelPool::builder(&runtime, &neff)
                .large_transfer_bytes(threshold)
                .build()
                .expect("pool")
        };
        let (sync, scheduled) = (build(usize::MAX), build(0));
        for concurrency in [1usize, 16] {
            let requests = if quick { 8 } else { 300 };
            let (s, a) = tokio.block_on(async {
                measure(&sync, elements, concurrency, 16).await; // warm-up
                measure(&scheduled, elements, concurrency, 16).await;
                let s = measure(&sync, elements, concurrency, requests).await;
                let a = measure(&scheduled, elements, concurrency, requests).await;
                (s, a)
            });
            println!(
                "bytes={bytes} concurrency={concurrency} sync_rps={:.0} scheduled_rps={:.0} sync_p50_us={} scheduled_p50_us={}",
                s.0,
                a.0,
                s.1.as_micros(),
                a.1.as_micros()
            );
        }
        sync.shutdown_blocking();
        scheduled.shutdown_blocking();
    }
}
