//! The same workload run synchronously and through the async API, with the throughput
//! and device utilisation of each.
//!
//! ```text
//! cargo run --release --example 02-async-pipeline                # anywhere: on nrt-sim
//! cargo run --release --example 02-async-pipeline -- model.neff  # on a Neuron instance
//! ```
//!
//! Each job needs some host work first (here: `HOST_WORK` of computation, then writing
//! the input tensor), then one execution of the model. A synchronous loop leaves the
//! device idle during the host work of every job: utilisation D / (D + H). With requests
//! kept queued on the COMPUTE unit ([`Pipeline`]), the host prepares job k+1 while the
//! device runs job k, so the device never waits. On nrt-sim, utilisation is the
//! simulator's busy time over wall time; on real hardware only throughput is shown.

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use neuron_rt::{ExecSets, ExecUnit, Failed, Model, Pipeline, Runtime, TensorSet};

/// Host work per job (on nrt-sim the model takes DEVICE_TIME per execution).
const HOST_WORK: Duration = Duration::from_millis(1);
const DEVICE_TIME: Duration = Duration::from_millis(2);
const JOBS: usize = 100;

fn main() -> Result<(), Box<dyn Error>> {
    let neff_path = std::env::args_os().nth(1).map(PathBuf::from);
    let (runtime, model, busy) = match &neff_path {
        Some(path) => match Runtime::new() {
            Ok(runtime) => {
                let model = runtime.load_model_file(path)?;
                (runtime, model, None)
            }
            Err(neuron_rt::Error::LibraryNotFound(e)) => {
                eprintln!("no libnrt found ({e}); using the simulator instead");
                simulated()?
            }
            Err(e) => return Err(e.into()),
        },
        None => simulated()?,
    };
    let core = model.core().unwrap_or(0);
    println!(
        "libnrt {} ({}), model `{}` on core {core}, {JOBS} jobs, host work {HOST_WORK:?} per job",
        runtime.version()?,
        runtime.library().origin(),
        model.label()
    );
    let unit = match runtime.compute_unit(core) {
        Ok(unit) => unit,
        Err(e @ neuron_rt::Error::Unsupported { .. }) => {
            println!("the async API is not available here: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    // depth + 1 pairs of sets: `depth` in flight, one with the caller.
    let mut pool: Vec<ExecSets> = (0..5)
        .map(|_| Ok((model.allocate_inputs()?, model.allocate_outputs()?)))
        .collect::<neuron_rt::Result<_>>()?;
    let mut host = vec![0u8; model.inputs().first().map_or(0, |i| i.size)];

    println!(
        "\n{:<20} {:>12} {:>12} {:>12}",
        "mode", "wall", "jobs/s", "device busy"
    );
    let measure = |name: &str, run: &mut dyn FnMut() -> neuron_rt::Result<()>| {
        let before = busy.as_ref().map(|b| b());
        let start = Instant::now();
        run()?;
        let wall = start.elapsed();
        let utilisation = match (&busy, before) {
            (Some(b), Some(before)) => format!(
                "{:.1}%",
                100.0 * (b() - before).as_secs_f64() / wall.as_secs_f64()
            ),
            _ => "n/a".into(),
        };
        println!(
            "{name:<20} {:>12.1?} {:>12.1} {utilisation:>12}",
            wall,
            JOBS as f64 / wall.as_secs_f64()
        );
        Ok::<_, neuron_rt::Error>(())
    };

    measure("sync", &mut || {
        let (inputs, outputs) = pool.last_mut().expect("a pair of sets");
        for job in 0..JOBS {
            prepare(&model, inputs, &mut host, job)?;
            model.execute(inputs, outputs)?;
        }
        Ok(())
    })?;
    for depth in 1..=4 {
        measure(&format!("async, depth {depth}"), &mut || {
            run_async(&model, &unit, depth, &mut pool, &mut host)
        })?;
    }
    println!("\nsync is bound by D / (D + H); with 2-3 requests queued the device stays busy.");
    Ok(())
}

/// Runs the jobs through a pipeline of `depth` requests on `unit`, recycling the sets.
///
/// A failed job hands its sets back with its error (`Failed`), so the pool never
/// shrinks: they go back to the pool before the error is reported.
fn run_async(
    model: &Model,
    unit: &ExecUnit,
    depth: usize,
    pool: &mut Vec<ExecSets>,
    host: &mut [u8],
) -> neuron_rt::Result<()> {
    let pool = std::cell::RefCell::new(pool);
    let pipeline = Pipeline::with_depth(depth, 0..JOBS, |job| {
        let (inputs, outputs) = pool.borrow_mut().pop().expect("depth + 1 pairs of sets");
        if let Err(error) = prepare(model, &inputs, host, job) {
            return Err(Failed::new(error, Some((inputs, outputs))));
        }
        // A refused submit (`Rejected`) becomes a `Failed` holding the sets.
        Ok(unit.execute(model, inputs, outputs)?)
    })?;
    let mut first_error = None;
    for result in pipeline {
        // Results arrive in job order; the outputs could be read here.
        let (error, sets) = match result {
            Ok(sets) => (None, Some(sets)),
            Err(failed) => {
                let (error, sets) = failed.into_parts();
                (Some(error), sets)
            }
        };
        pool.borrow_mut().extend(sets);
        first_error = first_error.or(error);
    }
    first_error.map_or(Ok(()), Err)
}

/// The host side of a job: some computation, then the first input written.
fn prepare(
    model: &Model,
    inputs: &TensorSet,
    host: &mut [u8],
    job: usize,
) -> neuron_rt::Result<()> {
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < HOST_WORK {
        if let Some(b) = host.get_mut(k % host.len().max(1)) {
            *b = (job + k) as u8;
        }
        k += 1;
    }
    if let Some(info) = model.inputs().first()
        && let Some(tensor) = inputs.get(&info.name)
    {
        // The host buffer holds the input's bytes: written as bytes, whatever its dtype.
        tensor.write_bytes(host)?;
    }
    Ok(())
}

/// The simulator's busy time of core 0.
type BusyFn = Box<dyn Fn() -> Duration>;

/// The in-process simulator, a model taking DEVICE_TIME per execution, and a way to
/// read the simulated device's busy time.
fn simulated() -> Result<(Runtime, Model, Option<BusyFn>), Box<dyn Error>> {
    use nrt_sim::{DType, ModelBuilder, Op, SimControl};

    println!("==============================================================");
    println!(" running on nrt-sim (simulated libnrt): no Neuron device used");
    println!("==============================================================");
    let neff = ModelBuilder::new("scale")
        .input("x", DType::F32, &[1024])
        .output("y", DType::F32, &[1024])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 0.5,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(DEVICE_TIME)
        .build()?;
    let lib = nrt_sim::library();
    let runtime = Runtime::builder().library(lib).build()?;
    let model = runtime.load_model_on(&neff, 0)?;
    let control = SimControl::new(lib).ok_or("the in-process library is not nrt-sim")?;
    let busy: BusyFn = Box::new(move || control.counters().cores[0].busy);
    println!("device time {DEVICE_TIME:?} per execution");
    Ok((runtime, model, Some(busy)))
}
