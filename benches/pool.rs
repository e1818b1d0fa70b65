//! `ModelPool` throughput and latency: a 1 ms model (f32 [16] in and out) on 2 simulated
//! cores, `c` client tasks on a 2-thread tokio runtime each sending requests back to back
//! through `infer`, for c in {1, 2, 16, 64}. One line per c:
//!
//! ```text
//! pool cores=2 concurrency=<c> requests=<n> throughput_rps=<x> ideal_rps=<y> efficiency_pct=<z> p50_us=<a> p99_us=<b> sim_end_lag_p50_us=<l> sim_end_lag_p99_us=<m>
//! ```
//!
//! `sim_end_lag`: how late the simulator's own threads reached the executions' modelled
//! ends (`SimControl::clock_stats`): that part of the latency is the simulator's, not
//! the pool's.
//!
//! `ideal_rps = min(c, cores) / device time`: what the cores could do if the pool cost
//! nothing (the baseline in the same run). The targets: efficiency >= 97 % at c >= 16;
//! at c = 1, p50 within 40 µs of the device time (the pool's own cost per request,
//! host copies of the small tensors included).
//!
//! `cargo bench --bench pool` (release; the simulator in process).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::{Input, ModelPool, Runtime};
use nrt_sim::{DType, ModelBuilder, Op};

const CORES: u32 = 2;
const DEVICE_TIME: Duration = Duration::from_millis(1);
const ELEMENTS: u32 = 16;

fn model() -> Vec<u8> {
    ModelBuilder::new("scale")
        .input("x", DType::F32, &[ELEMENTS])
        .output("y", DType::F32, &[ELEMENTS])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(DEVICE_TIME)
        .build()
        .expect("model")
}

/// `requests` requests from `concurrency` tasks; every latency, and the wall time.
async fn run(pool: &ModelPool, concurrency: usize, requests: usize) -> (Vec<Duration>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, next) = (pool.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let x = vec![1.0f32; ELEMENTS as usize];
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let t0 = Instant::now();
                    let out = pool.infer(&[("x", Input::from(&x))]).await.expect("infer");
                    latencies.push(t0.elapsed());
                    assert_eq!(out["y"].as_slice::<f32>().expect("f32")[0], 3.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    (latencies, wall)
}

/// The baseline for the pool's own cost at c = 1: the same request without the pool (one
/// pair of sets, input written and output read synchronously, the execution scheduled on
/// core 0's COMPUTE unit and awaited).
async fn bare(runtime: &Runtime, requests: usize) -> Vec<Duration> {
    let model = runtime.load_model_on(&model(), 0).expect("model");
    let unit = runtime.compute_unit(0).expect("unit");
    let mut sets = Some((
        model.allocate_inputs().expect("inputs"),
        model.allocate_outputs().expect("outputs"),
    ));
    let x = vec![1.0f32; ELEMENTS as usize];
    let mut y = vec![0.0f32; ELEMENTS as usize];
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t0 = Instant::now();
        let (inputs, outputs) = sets.take().expect("sets");
        inputs.get("x").expect("x").write(&x).expect("write");
        let (inputs, outputs) = unit
            .execute(&model, inputs, outputs)
            .expect("schedule")
            .await
            .expect("execute");
        outputs.get("y").expect("y").read(&mut y).expect("read");
        latencies.push(t0.elapsed());
        sets = Some((inputs, outputs));
    }
    latencies.sort_unstable();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = Runtime::builder()
        .library(nrt_sim::library())
        .build()
        .expect("runtime on nrt-sim");
    let pool = ModelPool::builder(&runtime, model())
        .cores(0..CORES)
        .build()
        .expect("pool");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    tokio.block_on(async {
        // Warm-up: every copy's sets allocated, units and event registrations made.
        run(&pool, 64, if quick { 64 } else { 512 }).await;
        // The baseline (stderr, so that stdout has exactly one line per concurrency).
        let bare = tokio::spawn({
            let runtime = runtime.clone();
            async move { bare(&runtime, if quick { 4 } else { 1000 }).await }
        })
        .await
        .expect("baseline task");
        eprintln!(
            "baseline: one request at a time without the pool, p50_us={} p99_us={}",
            percentile(&bare, 0.50).as_micros(),
            percentile(&bare, 0.99).as_micros()
        );
        for concurrency in [1usize, 2, 16, 64] {
            let requests = match (quick, concurrency) {
                (true, c) => 4 * c,
                (false, 1) => 1000,
                (false, 2) => 2000,
                (false, _) => 4000,
            };
            let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
            sim.clock_stats(true);
            let (latencies, wall) = run(&pool, concurrency, requests).await;
            let lag = sim.clock_stats(true);
            let throughput = requests as f64 / wall.as_secs_f64();
            let ideal = concurrency.min(CORES as usize) as f64 / DEVICE_TIME.as_secs_f64();
            println!(
                "pool cores={CORES} concurrency={concurrency} requests={requests} throughput_rps={throughput:.1} ideal_rps={ideal:.1} efficiency_pct={:.1} p50_us={} p99_us={} sim_end_lag_p50_us={:.1} sim_end_lag_p99_us={:.1}",
                100.0 * throughput / ideal,
                percentile(&latencies, 0.50).as_micros(),
                percentile(&latencies, 0.99).as_micros(),
                lag.end_lag_p50.as_secs_f64() * 1e6,
                lag.end_lag_p99.as_secs_f64() * 1e6,
            );
        }
    });
    pool.shutdown_blocking();
}
