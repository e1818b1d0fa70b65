//! Pipelining across execution units and across NeuronCores, measured.
//!
//! ```text
//! cargo run --release --example 04-multi-core
//! ```
//!
//! Runs on nrt-sim (the simulated libnrt) with 8 cores. Each job writes its input
//! (about 0.5 ms of simulated transfer on TENSOR_OP queue 0), executes the model (1 ms
//! on COMPUTE) and reads its output back (about 0.5 ms on TENSOR_OP queue 1). Prints:
//!
//! ```text
//! staged cores=1 jobs=<n> throughput=<x>/s ideal=<y>/s efficiency_pct=<z>
//! sequential cores=1 jobs=<n> throughput=<x>/s
//! replicas cores=<k> jobs=<n> throughput=<x>/s scaling_pct=<z>
//! ```
//!
//! * `staged`: one core, [`StagedPipeline`]: the three units work at once, so the
//!   throughput approaches 1 / (slowest stage) = `ideal`.
//! * `sequential`: one core, one job at a time with the synchronous API
//!   ([`Replicas::execute`]): write, then execute, then read, about 1 / 2 ms.
//! * `replicas`: [`Replicas`] on k = 1, 2, 4, 8 cores; scaling = throughput(k) /
//!   (k x throughput(1)).
//!
//! Transfer sizes: the simulator charges `size / NRT_SIM_DMA_GBPS` per transfer. At a
//! real host link's rate (16 GB/s), 0.5 ms would be 8 MB per tensor, and 8 replicas
//! would then measure this machine's memcpy speed (the simulator really copies the
//! bytes on the host), not the pipeline. So the example sets a low simulated bandwidth
//! instead (`NRT_SIM_DMA_GBPS` = 4 KiB / 0.5 ms, about 0.008 GB/s) with 4 KiB tensors:
//! the same device time per transfer, little host work. Set `NRT_SIM_DMA_GBPS` yourself
//! to override it.

use std::error::Error;
use std::time::{Duration, Instant};

use neuron_rt::{Replicas, Runtime, StagedPipeline};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

/// Simulated device time of one execution.
const EXEC_TIME: Duration = Duration::from_millis(1);
/// Simulated time of one transfer (write or read).
const TRANSFER_TIME: Duration = Duration::from_micros(500);
/// f32 elements per input and output: 4 KiB each.
const ELEMENTS: usize = 1024;
/// Cores of the simulated machine.
const CORES: u32 = 8;
/// Jobs per measured run on one core (replicas run this many per core).
const JOBS: usize = 2000;

fn main() -> Result<(), Box<dyn Error>> {
    // `nrt_execute` needs a large stack (see `neuron_rt::EXEC_STACK_NEEDED`): on a thread
    // with less left, every synchronous execution would start a helper thread.
    std::thread::Builder::new()
        .stack_size(2 * neuron_rt::HELPER_STACK)
        .spawn(measure)?
        .join()
        .map_err(|_| "the measuring thread panicked")?
        .map_err(|e| e.to_string().into())
}

fn measure() -> Result<(), Box<dyn Error + Send + Sync>> {
    let bytes = (ELEMENTS * size_of::<f32>()) as f64;
    let gbps = bytes / TRANSFER_TIME.as_secs_f64() / 1e9;
    // SAFETY: set before any other thread of this program (`main` only waits for this
    // one) reads the environment; the simulator reads it at `nrt_init`, below.
    unsafe {
        std::env::set_var("NRT_SIM_VNC_COUNT", CORES.to_string());
        if std::env::var_os("NRT_SIM_DMA_GBPS").is_none() {
            std::env::set_var("NRT_SIM_DMA_GBPS", gbps.to_string());
        }
    }
    println!("==============================================================");
    println!(" running on nrt-sim (simulated libnrt): no Neuron device used");
    println!("==============================================================");
    let neff = ModelBuilder::new("scale")
        .input("x", DType::F32, &[ELEMENTS as u32])
        .output("y", DType::F32, &[ELEMENTS as u32])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(EXEC_TIME)
        .build()?;
    let rt = Runtime::builder().library(nrt_sim::library()).build()?;
    let sim = SimControl::new(nrt_sim::library()).ok_or("the in-process library is not nrt-sim")?;
    println!(
        "note: {} cores, execution {EXEC_TIME:?}, {} B per transfer at {} GB/s",
        rt.visible_core_count()?,
        bytes,
        std::env::var("NRT_SIM_DMA_GBPS").unwrap_or_default()
    );

    // Staged: write -> execute -> read with all three units of core 0 at once.
    let model = rt.load_model_on(&neff, 0)?;
    let mut pipeline = StagedPipeline::new(&model)?;
    run_staged(&mut pipeline, 100)?; // warm-up: slots allocated, events registered
    let before = sim.counters().cores[0].clone();
    let (n, elapsed) = run_staged(&mut pipeline, JOBS)?;
    let after = sim.counters().cores[0].clone();
    let throughput = n as f64 / elapsed.as_secs_f64();
    let slowest = EXEC_TIME.max(TRANSFER_TIME);
    let ideal = 1.0 / slowest.as_secs_f64();
    println!(
        "staged cores=1 jobs={n} throughput={throughput:.1}/s ideal={ideal:.1}/s efficiency_pct={:.1}",
        100.0 * throughput / ideal
    );
    let busy = [
        after.tensor_op_busy[0] - before.tensor_op_busy[0],
        after.compute_queue_busy - before.compute_queue_busy,
        after.tensor_op_busy[1] - before.tensor_op_busy[1],
    ];
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "note: units busy during the staged run (simulator counters): write {:.1} %, execute {:.1} %, read {:.1} %",
        pct(busy[0]),
        pct(busy[1]),
        pct(busy[2]),
    );
    // The simulator's own time per request (waking its worker threads on a loaded host)
    // comes on top of the configured device time: the slowest stage as measured.
    let measured = busy.iter().max().copied().unwrap_or_default() / n as u32;
    let device_ideal = 1.0 / measured.as_secs_f64();
    println!(
        "note: slowest stage as simulated: {:.0} us per job -> device-limited ideal {device_ideal:.1}/s, staged reaches {:.1} % of it",
        measured.as_secs_f64() * 1e6,
        100.0 * throughput / device_ideal
    );
    drop(pipeline);

    // Sequential: one job at a time, synchronous calls.
    let single = Replicas::from_models(vec![model], 1)?;
    let jobs = JOBS / 4;
    let mut out = vec![0f32; ELEMENTS];
    let input = vec![1f32; ELEMENTS];
    let started = Instant::now();
    for _ in 0..jobs {
        single.execute(
            |inputs| inputs.write("x", &input),
            |outputs| outputs.read("y", &mut out),
        )?;
    }
    let throughput = jobs as f64 / started.elapsed().as_secs_f64();
    println!("sequential cores=1 jobs={jobs} throughput={throughput:.1}/s");
    drop(single);

    // Replicas on 1, 2, 4 and 8 cores.
    let mut base = None;
    for k in [1u32, 2, 4, 8] {
        let cores: Vec<u32> = (0..k).collect();
        let mut replicas = Replicas::load_on(&rt, &neff, &cores)?;
        run_replicas(&mut replicas, 100 * k as usize)?;
        let (n, elapsed) = run_replicas(&mut replicas, JOBS * k as usize)?;
        let throughput = n as f64 / elapsed.as_secs_f64();
        let one = *base.get_or_insert(throughput);
        println!(
            "replicas cores={k} jobs={n} throughput={throughput:.1}/s scaling_pct={:.1}",
            100.0 * throughput / (k as f64 * one)
        );
        let per_core: Vec<String> = (replicas.stats().iter())
            .map(|s| {
                format!(
                    "core {}: {} jobs, busy {} ms",
                    s.core,
                    s.jobs,
                    s.busy.as_millis()
                )
            })
            .collect();
        println!("note:   {}", per_core.join("; "));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if k as usize > 2 * cpus {
            // Three simulator queue workers per core and the application share the CPUs:
            // the host's scheduling, not the crate, decides this figure.
            println!(
                "note: replicas cores={k} share {cpus} CPU(s) with their simulator workers: this scaling figure is the host's, not the crate's"
            );
        }
    }
    Ok(())
}

/// Runs `jobs` jobs through `pipeline`; returns how many succeeded and the time taken.
fn run_staged(pipeline: &mut StagedPipeline, jobs: usize) -> neuron_rt::Result<(usize, Duration)> {
    let input = vec![1f32; ELEMENTS];
    let mut out = vec![0f32; ELEMENTS];
    let started = Instant::now();
    let mut n = 0;
    for result in pipeline.run(
        0..jobs,
        |_, inputs| inputs.write("x", &input),
        |_, outputs| outputs.read("y", &mut out),
    ) {
        result?;
        n += 1;
    }
    Ok((n, started.elapsed()))
}

/// Runs `jobs` jobs over `replicas`; returns how many succeeded and the time taken.
fn run_replicas(replicas: &mut Replicas, jobs: usize) -> neuron_rt::Result<(usize, Duration)> {
    let input = vec![1f32; ELEMENTS];
    let mut out = vec![0f32; ELEMENTS];
    let started = Instant::now();
    let mut n = 0;
    for result in replicas.run(
        0..jobs,
        |_, inputs| inputs.write("x", &input),
        |_, outputs| outputs.read("y", &mut out),
    ) {
        result?;
        n += 1;
    }
    Ok((n, started.elapsed()))
}
