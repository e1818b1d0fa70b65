//! `nrt-sim-model`: writes nrt-sim model files (for C users and scripts).
//!
//! ```text
//! nrt-sim-model -o add.neff --name add --device-time-us 500 \
//!     --input a:f32:2x3 --input b:f32:2x3 --output out:f32:2x3 --op 'add a b out'
//! nrt-sim-model -o model.neff --from model.txt     # payload text format
//! nrt-sim-model --print model.neff                 # check a file and show its payload
//! ```

use std::process::ExitCode;

const USAGE: &str = "usage:
  nrt-sim-model -o FILE [--name NAME] [--device-time-us N]
                [--input NAME:DTYPE:DIMS]... [--output NAME:DTYPE:DIMS]... [--op 'KIND ARGS']...
  nrt-sim-model -o FILE --from TEXT_FILE
  nrt-sim-model --print FILE

DTYPE: u8 i8 u16 i16 u32 i32 u64 i64 f32 bf16 f16
DIMS:  2x3 (or 2,3); empty for a scalar (NAME:DTYPE:)
KIND ARGS: identity IN OUT | add A B OUT | mul A B OUT | scale_bias IN SCALE BIAS OUT
           | matmul A B OUT | relu IN OUT
The text format of --from is described in the nrt-sim README.";

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
            "--input" => lines.push(tensor_line("input", &value(&arg)?)?),
            "--output" => lines.push(tensor_line("output", &value(&arg)?)?),
            "--op" => lines.push(format!("op {}", value(&arg)?)),
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
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nrt-sim-model: {e}");
            ExitCode::FAILURE
        }
    }
}
