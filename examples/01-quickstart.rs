//! Load a model, fill its inputs, run it, print its outputs.
//!
//! ```text
//! cargo run --example 01-quickstart                  # anywhere: on nrt-sim
//! cargo run --example 01-quickstart -- model.neff    # on a Neuron instance: real libnrt
//! ```
//!
//! With a NEFF path, the example uses the real libnrt (found the default way:
//! `LIBNRT_PATH`, `libnrt.so.1`, `/opt/aws/neuron/lib`) and fails (exit status 1, with
//! the error and its hint) when that model cannot run: it never runs another model
//! instead. Without a path it builds a small model with `nrt_sim::ModelBuilder` and runs
//! it on the in-process simulator. Either way it ends with a short host-timed benchmark.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use neuron_rt::{DType, Model, Runtime, TensorSet};

fn main() -> ExitCode {
    let neff_path = std::env::args_os().nth(1).map(PathBuf::from);
    let result = match &neff_path {
        Some(path) => on_hardware(path),
        None => simulated().and_then(|(runtime, model)| run(&runtime, &model)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the message and, for runtime errors, what to do.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The model at `path` on the real libnrt; any failure is the program's failure.
fn on_hardware(path: &Path) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::new().map_err(|e| {
        format!(
            "{} cannot run here: {e}\n(run without arguments to try the simulator)",
            path.display()
        )
    })?;
    let model = runtime.load_model_file(path)?;
    run(&runtime, &model)
}

fn run(runtime: &Runtime, model: &Model) -> Result<(), Box<dyn Error>> {
    let version = runtime.version()?;
    println!(
        "libnrt {version} ({}), {} NeuronCore(s) visible",
        runtime.library().origin(),
        runtime.visible_core_count()?
    );
    match model.core() {
        Some(core) => println!("model `{}` on core {core}", model.label()),
        None => println!(
            "model `{}` (core not reported by this libnrt)",
            model.label()
        ),
    }

    let inputs = model.allocate_inputs()?;
    let mut outputs = model.allocate_outputs()?;
    fill_inputs(model, &inputs)?;
    model.execute(&inputs, &mut outputs)?;
    print_outputs(model, &outputs)?;

    let stats = model.benchmark(10, 100)?;
    println!(
        "benchmark: {} runs, mean {:?}, min {:?}, p50 {:?}, p99 {:?}, max {:?}, std-dev {:?}, {:.0} runs/s",
        stats.iterations,
        stats.mean,
        stats.min,
        stats.p50,
        stats.p99,
        stats.max,
        stats.std_dev,
        stats.throughput
    );
    Ok(())
}

/// The in-process simulator and a model built for it: `out = relu(x @ w + x @ w)`.
fn simulated() -> Result<(Runtime, Model), Box<dyn Error>> {
    use nrt_sim::{DType as SimDType, ModelBuilder, Op};

    println!("==============================================================");
    println!(" running on nrt-sim (simulated libnrt): no Neuron device used");
    println!("==============================================================");
    let neff = ModelBuilder::new("quickstart")
        .input("x", SimDType::F32, &[2, 3])
        .input("w", SimDType::F32, &[3, 2])
        .output("out", SimDType::F32, &[2, 2])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "xw".into(),
        })
        .op(Op::Add {
            a: "xw".into(),
            b: "xw".into(),
            out: "twice".into(),
        })
        .op(Op::Relu {
            input: "twice".into(),
            out: "out".into(),
        })
        .build()?;
    let runtime = Runtime::builder().library(nrt_sim::library()).build()?;
    let model = runtime.load_model(&neff)?;
    Ok((runtime, model))
}

/// Fills each input with a small ramp of its element type (bytes for other types).
fn fill_inputs(model: &Model, inputs: &TensorSet) -> neuron_rt::Result<()> {
    for info in model.inputs() {
        let tensor = inputs
            .get(&info.name)
            .expect("allocate_inputs binds every input");
        match info.dtype {
            DType::F32 => {
                let n = info.size / 4;
                let values: Vec<f32> = (0..n).map(|i| i as f32 - n as f32 / 2.0).collect();
                tensor.write(&values)?;
            }
            DType::I32 => {
                let values: Vec<i32> = (0..info.size / 4).map(|i| i as i32).collect();
                tensor.write(&values)?;
            }
            _ => {
                let values: Vec<u8> = (0..info.size).map(|i| i as u8).collect();
                tensor.write(&values)?;
            }
        }
        println!(
            "input  {:<8} {:?} {} = ramp",
            info.name, info.shape, info.dtype
        );
    }
    Ok(())
}

/// Prints each output (the first 16 elements).
fn print_outputs(model: &Model, outputs: &TensorSet) -> neuron_rt::Result<()> {
    for info in model.outputs() {
        let tensor = outputs
            .get(&info.name)
            .expect("allocate_outputs binds every output");
        let text = match info.dtype {
            DType::F32 => format!("{:?}", first(tensor.to_vec::<f32>()?)),
            DType::I32 => format!("{:?}", first(tensor.to_vec::<i32>()?)),
            _ => format!("{:?}", first(tensor.to_vec::<u8>()?)),
        };
        println!(
            "output {:<8} {:?} {} = {text}",
            info.name, info.shape, info.dtype
        );
    }
    Ok(())
}

fn first<T>(mut values: Vec<T>) -> Vec<T> {
    values.truncate(16);
    values
}
