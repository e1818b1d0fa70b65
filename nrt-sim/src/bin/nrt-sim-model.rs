//! `nrt-sim-model`: writes nrt-sim model files (for C users and scripts).
//!
//! ```text
//! nrt-sim-model -o add.neff --name add --device-time-us 500 \
//!     --input a:f32:2x3 --input b:f32:2x3 --output out:f32:2x3 --op 'add a b out'
//! nrt-sim-model -o model.neff --from model.txt     # payload text format
//! nrt-sim-model --print model.neff                 # check a file and show its payload
//! nrt-sim-model -o real.neff --format neff2 --name bert --cores 2 --device-time-us 800 \
//!     --input ids:i64:1x128 --input mask:f16:1x128 --output logits:bf16:1x2
//!     # the compiler's container (real format, signature only: synthetic outputs)
//! nrt-sim-model bundle --out DIR --seed 7 --decode-device-time-us 1000
//!     # the small decoder as a bundle: bundle.json, NEFF + metaneff.pb per member, weights
//! ```

use std::process::ExitCode;

const USAGE: &str = "usage:
  nrt-sim-model -o FILE [--name NAME] [--device-time-us N]
                [--input NAME:DTYPE:DIMS]... [--output NAME:DTYPE:DIMS]... [--op 'KIND ARGS']...
  nrt-sim-model -o FILE --from TEXT_FILE
  nrt-sim-model --print FILE
  nrt-sim-model bundle --out DIR [--seed S] [--prefill-device-time-us N]
                [--decode-device-time-us N] [--chain-device-time-us N] [--world W]
  nrt-sim-model -o FILE --format neff2|neff1 --name NAME [--cores N] [--target T]
                [--compiler-version V] [--device-time-us N]
                [--input NAME:DTYPE:DIMS]... [--output NAME:DTYPE:DIMS]...

DTYPE: u8 i8 u16 i16 u32 i32 u64 i64 f32 bf16 f16
DIMS:  2x3 (or 2,3); empty for a scalar (NAME:DTYPE:)
KIND ARGS: identity IN OUT | add A B OUT | mul A B OUT | scale_bias IN SCALE BIAS OUT
           | matmul A B OUT | relu IN OUT | cast IN DTYPE OUT | reshape IN [DIMS] OUT
           | gather TABLE IDS OUT | rms_norm X W EPS OUT | silu IN OUT | rope X POS THETA OUT
           | cache_write CACHE NEW SEQ POS OUT | attention Q K V SEQ POS OUT
           | last_token X POS OUT | argmax X DTYPE OUT   (arithmetic: MODEL_FORMAT.md)
The text format of --from is described in the nrt-sim README.
--format neff2 (or neff1) writes a real-format NEFF (the Neuron compiler's container:
packaging version 2 with MD5, or 1 with SHA-256; a signature, no instructions), which
nrt_load runs in signature-only mode: synthetic outputs, not results. Default: sim.
bundle writes the small decoder bundle (MODEL_FORMAT.md, \"Decoder bundles\"): device
time per call of each prefill, decode and chain-stage member (default 0), weights seed
(default 0), tensor-parallel world (default 1; W > 1 also writes
weights/tp{rank}_sharded_checkpoint.safetensors per rank).";

/// `nrt-sim-model bundle ...`: writes the decoder bundle.
fn bundle(args: Vec<String>) -> Result<(), String> {
    let mut options = nrt_sim::decoder::DecoderBundleOptions::default();
    let mut out = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
        let number = || -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{arg} {v:?} is not a whole number"))
        };
        let us = |n: u64| std::time::Duration::from_micros(n);
        match arg.as_str() {
            "--out" | "-o" => out = Some(v.clone()),
            "--seed" => options.seed = number()?,
            "--prefill-device-time-us" => options.prefill_device_time = us(number()?),
            "--decode-device-time-us" => options.decode_device_time = us(number()?),
            "--chain-device-time-us" => options.chain_device_time = us(number()?),
            "--world" => {
                options.world =
                    u32::try_from(number()?).map_err(|_| format!("--world {v:?} is too large"))?
            }
            other => return Err(format!("unknown bundle argument {other:?}\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("bundle needs --out DIR\n{USAGE}"))?;
    let b = nrt_sim::decoder::write_bundle(&out, &options).map_err(|e| e.to_string())?;
    let shards = match b.shards.len() {
        0 => String::new(),
        n => format!(" and {n} rank shards (weights/)"),
    };
    println!(
        "wrote {} members and weights.safetensors{shards} to {out}",
        b.members.len()
    );
    Ok(())
}

/// A real-format NEFF with the tensors of `specs` (`(is_input, NAME:DTYPE:DIMS)`).
struct RealFormat {
    packaging: nrt_sim::neff::Packaging,
    cores: u32,
    target: Option<String>,
    compiler: Option<String>,
}

fn tensor_spec(kind: &str, spec: &str) -> Result<(String, nrt_sim::DType, Vec<u32>), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [name, dtype, dims] = parts[..] else {
        return Err(format!("--{kind} {spec:?} is not NAME:DTYPE:DIMS"));
    };
    let dtype = nrt_sim::DType::from_name(dtype)
        .ok_or_else(|| format!("--{kind} {spec:?}: unknown dtype {dtype:?}"))?;
    let dims = dims
        .split(['x', ','])
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<u32>()
                .map_err(|_| format!("--{kind} {spec:?}: bad dimension {d:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_owned(), dtype, dims))
}

fn real_neff(
    format: &RealFormat,
    name: &str,
    time_us: u64,
    tensors: &[(bool, String)],
) -> Result<Vec<u8>, String> {
    let mut w = nrt_sim::neff::NeffWriter::new(name)
        .packaging(format.packaging)
        .cores(format.cores);
    if let Some(t) = &format.target {
        w = w.target(t.as_str());
    }
    if let Some(v) = &format.compiler {
        w = w.tool_version(v.as_str());
    }
    for (is_input, spec) in tensors {
        let kind = if *is_input { "input" } else { "output" };
        let (n, dtype, dims) = tensor_spec(kind, spec)?;
        w = if *is_input {
            w.input(n, dtype, &dims)
        } else {
            w.output(n, dtype, &dims)
        };
    }
    let w = nrt_sim::with_device_time(w, std::time::Duration::from_micros(time_us));
    w.build().map_err(|e| e.to_string())
}

fn tensor_line(kind: &str, spec: &str) -> Result<String, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [name, dtype, dims] = parts[..] else {
        return Err(format!("--{kind} {spec:?} is not NAME:DTYPE:DIMS"));
    };
    let dims: Vec<&str> = dims.split(['x', ',']).filter(|d| !d.is_empty()).collect();
    Ok(format!("{kind} {name} {dtype} [{}]", dims.join(",")))
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut out = None;
    let mut from = None;
    let mut print = None;
    let mut name = None;
    let mut time_us = 0u64;
    let mut lines = Vec::new();
    let mut tensors = Vec::new();
    let mut has_ops = false;
    let mut real: Option<RealFormat> = None;
    let mut cores = 1u32;
    let mut target = None;
    let mut compiler = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-o" | "--output-file" => out = Some(value(&arg)?),
            "--from" => from = Some(value(&arg)?),
            "--print" => print = Some(value(&arg)?),
            "--name" => name = Some(value(&arg)?),
            "--device-time-us" => {
                let v = value(&arg)?;
                time_us = v
                    .parse()
                    .map_err(|_| format!("--device-time-us {v:?} is not a whole number"))?;
            }
            "--input" => {
                let v = value(&arg)?;
                lines.push(tensor_line("input", &v)?);
                tensors.push((true, v));
            }
            "--output" => {
                let v = value(&arg)?;
                lines.push(tensor_line("output", &v)?);
                tensors.push((false, v));
            }
            "--op" => {
                lines.push(format!("op {}", value(&arg)?));
                has_ops = true;
            }
            "--format" => {
                let v = value(&arg)?;
                real = match v.as_str() {
                    "sim" => None,
                    "neff2" | "neff1" => Some(RealFormat {
                        packaging: if v == "neff2" {
                            nrt_sim::neff::Packaging::V2
                        } else {
                            nrt_sim::neff::Packaging::V1
                        },
                        cores: 1,
                        target: None,
                        compiler: None,
                    }),
                    _ => return Err(format!("--format {v:?} is not sim, neff2 or neff1")),
                };
            }
            "--cores" => {
                let v = value(&arg)?;
                cores = v
                    .parse()
                    .ok()
                    .filter(|&c| c >= 1)
                    .ok_or_else(|| format!("--cores {v:?} is not a count of 1 or more"))?;
            }
            "--target" => target = Some(value(&arg)?),
            "--compiler-version" => compiler = Some(value(&arg)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if let Some(path) = print {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let text = nrt_sim::describe_model(&bytes).map_err(|e| format!("{path}: {e}"))?;
        print!("{text}");
        return Ok(());
    }
    let out = out.ok_or_else(|| format!("no output file (-o)\n{USAGE}"))?;
    if let Some(mut format) = real {
        if has_ops || from.is_some() {
            return Err(
                "--format neff2/neff1 writes a signature only: no --op or --from (executions of it write synthetic outputs)".into(),
            );
        }
        format.cores = cores;
        format.target = target;
        format.compiler = compiler;
        let name = name.ok_or("--name is required")?;
        let file = real_neff(&format, &name, time_us, &tensors)?;
        std::fs::write(&out, &file).map_err(|e| format!("cannot write {out}: {e}"))?;
        return Ok(());
    }
    if cores != 1 || target.is_some() || compiler.is_some() {
        return Err("--cores, --target and --compiler-version need --format neff2 or neff1".into());
    }
    let text = match from {
        Some(path) => {
            if name.is_some() || !lines.is_empty() {
                return Err("--from cannot be combined with --name/--input/--output/--op".into());
            }
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?
        }
        None => {
            let name = name.ok_or("--name is required without --from")?;
            let ns = time_us
                .checked_mul(1000)
                .ok_or("--device-time-us is too large")?;
            format!(
                "nrt-sim-model 1\nname {name}\ndevice_time_ns {ns}\n{}\n",
                lines.join("\n")
            )
        }
    };
    let file = nrt_sim::build_model_from_text(&text).map_err(|e| e.to_string())?;
    std::fs::write(&out, &file).map_err(|e| format!("cannot write {out}: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().is_some_and(|a| a == "bundle") {
        bundle(args[1..].to_vec())
    } else {
        run(args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nrt-sim-model: {e}");
            ExitCode::FAILURE
        }
    }
}
