//! Benchmark a model from the host and from the device, read the system trace, and
//! write inspect and continuous-profiling captures.
//!
//! ```text
//! cargo run --release --example 06-profiling            # on nrt-sim
//! cargo run --release --example 06-profiling -- DIR     # captures into DIR
//! ```
//!
//! It runs on the in-process simulator with a model of 1,000 us device time and prints:
//!
//! ```text
//! benchmark mode=host runs=<n> p50_us=<x> p99_us=<y>
//! benchmark mode=device runs=<n> p50_us=<x> p99_us=<y>
//! trace events=<n> nc_exec_running=<m>
//! ```
//!
//! then where its capture files went. Host mode times each `execute` call (device time
//! plus the call's own cost); device mode takes each execution's `nc_exec_running` span
//! from the system trace, i.e. the NeuronCore's time alone.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use neuron_rt::{BenchmarkStats, InspectConfig, NC_EXEC_RUNNING, Runtime, SysTraceConfig};

const RUNS: u32 = 200;
const WARMUP: u32 = 10;
const DEVICE_TIME: Duration = Duration::from_micros(1000);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn line(mode: &str, stats: &BenchmarkStats) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "benchmark mode={mode} runs={} p50_us={:.1} p99_us={:.1}",
        stats.iterations,
        us(stats.p50),
        us(stats.p99)
    );
}

fn run() -> Result<(), Box<dyn Error>> {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("neuron-rt-profiling-{}", std::process::id()))
        });
    let neff = nrt_sim::ModelBuilder::add_example(&[256])
        .device_time(DEVICE_TIME)
        .build()?;
    let runtime = Runtime::builder().library(nrt_sim::library()).build()?;
    let model = runtime.load_model(&neff)?;

    line("host", &model.benchmark(WARMUP, RUNS)?);
    line("device", &model.benchmark_device(WARMUP, RUNS)?);

    // The system trace of RUNS executions: every event, and the device spans among them.
    let trace = runtime.sys_trace(&SysTraceConfig::new())?;
    let inputs = model.allocate_inputs()?;
    let mut outputs = model.allocate_outputs()?;
    for _ in 0..RUNS {
        model.execute(&inputs, &mut outputs)?;
    }
    let events = trace.fetch()?;
    trace.stop()?;
    let running = events
        .iter()
        .filter(|e| e.event_type == NC_EXEC_RUNNING)
        .count();
    println!("trace events={} nc_exec_running={running}", events.len());

    // Inspect: a capture of a few executions; continuous profiling: the latest one saved.
    let session = runtime.inspect(&InspectConfig::new(out_dir.join("inspect")).session_id(1))?;
    for _ in 0..3 {
        model.execute(&inputs, &mut outputs)?;
    }
    let inspect_dir = session.output_dir().join("session_1");
    session.stop()?;
    let profiler = runtime.continuous_profiling(out_dir.join("continuous"))?;
    model.execute(&inputs, &mut outputs)?;
    let core = model.core().unwrap_or(0);
    profiler.save(core)?;
    let continuous_dir = profiler.output_dir().to_owned();
    profiler.stop()?;

    for dir in [inspect_dir, continuous_dir] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for f in files {
            println!("capture {}", f.display());
        }
    }
    Ok(())
}
