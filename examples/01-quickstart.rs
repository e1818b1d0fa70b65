//! Load a model, fill every input, run it, print every output.
//!
//! ```text
//! cargo run --example 01-quickstart                        # anywhere: a small model on nrt-sim
//! cargo run --example 01-quickstart -- model.neff          # on a Neuron instance: real libnrt
//! cargo run --example 01-quickstart -- --sim model.neff    # any NEFF on the simulator
//! ```
//!
//! With a NEFF path, the example uses the real libnrt (found the default way:
//! `LIBNRT_PATH`, `libnrt.so.1`, `/opt/aws/neuron/lib`) and fails (exit status 1, with
//! the error and its hint) when that model cannot run: it never runs another model
//! instead. `--sim` runs the file on the in-process simulator instead. Without a path it
//! builds a small model with the simulator's `ModelBuilder`.
//!
//! Any model goes through: every input is filled with a ramp of its element type (`i64`
//! ids, `f32` / `bf16` / `f16` values, integers; raw bytes for types with no Rust type,
//! such as fp8), and every output is printed with its shape and dtype. It ends with a
//! short host-timed benchmark.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use neuron_rt::{DType, Input, Model, Runtime, TensorInfo};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let result = match args.as_slice() {
        [] => simulated().and_then(|(runtime, model)| run(&runtime, &model)),
        [flag, path] if flag == "--sim" => on_simulator(Path::new(path)),
        [path] if path != "--sim" && path != "--help" => on_hardware(&PathBuf::from(path)),
        _ => Err("usage: 01-quickstart [--sim] [model.neff]".into()),
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
            "{} cannot run here: {e}\n(add --sim before the path to run it on the simulator)",
            path.display()
        )
    })?;
    let model = runtime.load_model_file(path)?;
    run(&runtime, &model)
}

/// The model at `path` on the in-process simulator. A NEFF from the Neuron compiler runs
/// in the simulator's signature-only mode: its inputs and outputs exactly as the NEFF
/// declares them, outputs synthetic (the simulator cannot execute compiled code).
fn on_simulator(path: &Path) -> Result<(), Box<dyn Error>> {
    banner();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if nrt_sim::is_signature_only(&bytes) {
        let neff = neuron_rt::neff::Neff::parse(&bytes)?;
        println!(
            "NEFF `{}`: {} core(s), compiler {}, target {}",
            neff.name(),
            neff.cores(),
            neff.tool_version().unwrap_or("unknown"),
            neff.target().unwrap_or("unknown")
        );
        println!(
            "note: compiled NEFF on the simulator (signature-only mode): inputs and outputs as the NEFF declares them, output values are synthetic, not results"
        );
    }
    let runtime = Runtime::builder().library(nrt_sim::library()).build()?;
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

    let inputs: Vec<(&str, Input)> = model
        .inputs()
        .iter()
        .map(|info| {
            println!(
                "input  {} {:?} {} = ramp",
                info.name, info.shape, info.dtype
            );
            (info.name.as_str(), ramp(info))
        })
        .collect();
    let outputs = model.run(&inputs)?;
    for output in &outputs {
        println!("output {output}");
    }

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

/// A ramp of the input's element type: `0, 1, 2, ...` for integers (wrapping), values
/// around zero for floats, and bytes `0, 1, 2, ...` for types with no Rust type.
fn ramp(info: &TensorInfo) -> Input<'static> {
    let n = info
        .dtype
        .size_in_bytes()
        .map_or(0, |size| info.size / size);
    let float = |i: usize| (i as f32 - n as f32 / 2.0) / 4.0;
    match info.dtype {
        DType::U8 => Input::from_vec((0..n).map(|i| i as u8).collect()),
        DType::I8 => Input::from_vec((0..n).map(|i| i as i8).collect()),
        DType::U16 => Input::from_vec((0..n).map(|i| i as u16).collect()),
        DType::I16 => Input::from_vec((0..n).map(|i| i as i16).collect()),
        DType::U32 => Input::from_vec((0..n).map(|i| i as u32).collect()),
        DType::I32 => Input::from_vec((0..n).map(|i| i as i32).collect()),
        DType::U64 => Input::from_vec((0..n).map(|i| i as u64).collect()),
        DType::I64 => Input::from_vec((0..n).map(|i| i as i64).collect()),
        DType::F32 | DType::Fp32R => Input::from_vec((0..n).map(float).collect()),
        #[cfg(feature = "half")]
        DType::BF16 => Input::from_vec((0..n).map(|i| half::bf16::from_f32(float(i))).collect()),
        #[cfg(feature = "half")]
        DType::F16 => Input::from_vec((0..n).map(|i| half::f16::from_f32(float(i))).collect()),
        // fp8, unknown dtypes (and bf16 / f16 without feature `half`): bytes.
        _ => Input::from_bytes((0..info.size).map(|i| i as u8).collect()),
    }
}

fn banner() {
    println!("==============================================================");
    println!(" running on nrt-sim (simulated libnrt): no Neuron device used");
    println!("==============================================================");
}

/// The in-process simulator and a model built for it: `out = relu(x @ w + x @ w)`.
fn simulated() -> Result<(Runtime, Model), Box<dyn Error>> {
    use nrt_sim::{ModelBuilder, Op};

    banner();
    let neff = ModelBuilder::new("quickstart")
        .input("x", DType::F32, &[2, 3])
        .input("w", DType::F32, &[3, 2])
        .output("out", DType::F32, &[2, 2])
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
