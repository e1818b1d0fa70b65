//! Pipelining: a model taking D of device time per execution, and H < D of host work to
//! prepare each request (busy CPU + writing the input). A synchronous loop keeps the
//! device busy D/(D+H) of the time; the async API with 3 requests queued should keep it
//! busy >= 97% (simulator busy time / wall time).
//!
//! `cargo bench --bench pipelining`: criterion's time per batch of jobs for `sync` and
//! `async_depth_1..4`, then a table of device utilisation and throughput.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use neuron_rt::{ExecSets, Model, Pipeline, Runtime};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

/// Device time per execution.
const D: Duration = Duration::from_millis(2);
/// Host preparation per request.
const H: Duration = Duration::from_millis(1);
/// Jobs per measured batch.
const JOBS: usize = 100;

fn model(rt: &Runtime) -> Model {
    let bytes = ModelBuilder::new("scale")
        .input("x", DType::F32, &[1024])
        .output("y", DType::F32, &[1024])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(D)
        .build()
        .expect("model");
    rt.load_model_on(&bytes, 0).expect("load")
}

/// Host work for job `job`: H of computation, then the input written to the device.
fn prepare(inputs: &neuron_rt::TensorSet, host: &mut [f32], job: usize) {
    let start = Instant::now();
    let mut k = 0usize;
    while start.elapsed() < H {
        host[k % host.len()] = (job + k) as f32;
        k += 1;
    }
    inputs
        .get("x")
        .expect("input x")
        .write(host)
        .expect("write");
}

struct Bench {
    model: Model,
    compute: neuron_rt::ExecUnit,
    control: SimControl,
    pool: RefCell<Vec<ExecSets>>,
    host: RefCell<Vec<f32>>,
}

/// What one measured batch saw.
#[derive(Default, Clone, Copy)]
struct Sample {
    wall: Duration,
    busy: Duration,
    jobs: usize,
}

impl Bench {
    fn busy(&self) -> Duration {
        self.control.counters().cores[0].busy
    }

    fn sync_batch(&self) {
        let mut pool = self.pool.borrow_mut();
        let (inputs, outputs) = pool.last_mut().expect("a pair");
        let mut host = self.host.borrow_mut();
        for job in 0..JOBS {
            prepare(inputs, &mut host, job);
            self.model.execute(inputs, outputs).expect("execute");
        }
    }

    fn async_batch(&self, depth: usize) {
        let pipeline = Pipeline::with_depth(depth, 0..JOBS, |job| {
            let (inputs, outputs) = self.pool.borrow_mut().pop().expect("a free pair");
            prepare(&inputs, &mut self.host.borrow_mut(), job);
            Ok(self.compute.execute(&self.model, inputs, outputs)?)
        })
        .expect("depth");
        for result in pipeline {
            self.pool.borrow_mut().push(result.expect("execution"));
        }
    }

    /// Runs one batch of `variant` (0 = sync, n = async depth n), measuring it.
    fn run(&self, variant: usize) -> Sample {
        let busy = self.busy();
        let start = Instant::now();
        if variant == 0 {
            self.sync_batch();
        } else {
            self.async_batch(variant);
        }
        Sample {
            wall: start.elapsed(),
            busy: self.busy() - busy,
            jobs: JOBS,
        }
    }
}

fn name(variant: usize) -> String {
    if variant == 0 {
        "sync".into()
    } else {
        format!("async_depth_{variant}")
    }
}

fn main() {
    let lib = nrt_sim::library();
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let model = model(&rt);
    let pool = (0..5)
        .map(|_| {
            (
                model.allocate_inputs().expect("inputs"),
                model.allocate_outputs().expect("outputs"),
            )
        })
        .collect();
    let bench = Bench {
        compute: rt.compute_unit(0).expect("unit"),
        control: SimControl::new(lib).expect("nrt-sim"),
        model,
        pool: RefCell::new(pool),
        host: RefCell::new(vec![0.0; 1024]),
    };
    let variants = 0..=4usize;
    let totals: RefCell<Vec<Sample>> = RefCell::new(vec![Sample::default(); 5]);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = c.benchmark_group(format!(
        "pipelining_D{}us_H{}us_{JOBS}jobs",
        D.as_micros(),
        H.as_micros()
    ));
    for variant in variants.clone() {
        group.bench_function(BenchmarkId::from_parameter(name(variant)), |b| {
            b.iter_custom(|iters| {
                let mut wall = Duration::ZERO;
                for _ in 0..iters {
                    let s = bench.run(variant);
                    wall += s.wall;
                    let mut t = totals.borrow_mut();
                    t[variant].wall += s.wall;
                    t[variant].busy += s.busy;
                    t[variant].jobs += s.jobs;
                }
                wall
            })
        });
    }
    group.finish();
    c.final_summary();

    let expected_sync = D.as_secs_f64() / (D + H).as_secs_f64();
    println!(
        "\ndevice utilisation (busy / wall), D = {D:?}, H = {H:?}; sync expected {:.1}%:",
        expected_sync * 100.0
    );
    println!(
        "{:<16} {:>12} {:>14} {:>10}",
        "variant", "utilisation", "jobs/s", "jobs"
    );
    for (variant, s) in totals.borrow().iter().enumerate() {
        if s.jobs == 0 {
            continue;
        }
        println!(
            "{:<16} {:>11.1}% {:>14.1} {:>10}",
            name(variant),
            100.0 * s.busy.as_secs_f64() / s.wall.as_secs_f64(),
            s.jobs as f64 / s.wall.as_secs_f64(),
            s.jobs
        );
    }
}
