//! `neff-inspect`: prints what a NEFF needs and offers (name, packaging, hash, cores,
//! compiler version, target, inputs and outputs).
//!
//! ```text
//! neff-inspect model.neff            # a summary for people
//! neff-inspect --json model.neff     # the same as one JSON object
//! neff-inspect --no-hash model.neff  # skip the payload hash check
//! ```
//!
//! Exit status 0 when the file reads, 1 with the error on stderr when not, 2 for bad
//! arguments.

use neuron_neff::{Neff, ParseOptions, TensorSpec};
use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const USAGE: &str = "usage: neff-inspect [--json] [--no-hash] FILE.neff";

fn shape(s: &[u32]) -> String {
    let dims: Vec<String> = s.iter().map(u32::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn hash_text(neff: &Neff) -> String {
    let algo = neff.header().packaging.hash_algorithm();
    if neff.hash_checked() {
        format!("{algo} verified")
    } else {
        format!("{algo} not checked")
    }
}

fn summary(neff: &Neff) -> String {
    let h = neff.header();
    let mut out = format!(
        "name:          {}\npackaging:     version {} ({})\nformat:        {}.{}\ncores:         {} (requested {})\ncompiler:      {}\ntarget:        {}\n",
        neff.name(),
        h.packaging.number(),
        hash_text(neff),
        h.format_major,
        h.format_minor,
        neff.cores(),
        h.requested_tpb,
        neff.tool_version().unwrap_or("(no info.json)"),
        neff.target().unwrap_or("(no kelf-0.json)"),
    );
    for (title, list) in [("inputs", neff.inputs()), ("outputs", neff.outputs())] {
        out.push_str(&format!("{title} ({}):\n", list.len()));
        let width = list.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in list {
            out.push_str(&format!(
                "  {:width$}  {:8}  {:16}  {} bytes\n",
                t.name,
                t.dtype.as_str(),
                shape(&t.shape),
                t.byte_size
            ));
        }
    }
    out
}

fn tensors(list: &[TensorSpec]) -> Value {
    list.iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.as_str(),
                "shape": t.shape,
                "bytes": t.byte_size,
            })
        })
        .collect()
}

fn to_json(neff: &Neff) -> Value {
    let h = neff.header();
    let uuid: String = h.uuid.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "name": neff.name(),
        "packaging_version": h.packaging.number(),
        "hash": {
            "algorithm": h.packaging.hash_algorithm(),
            "checked": neff.hash_checked(),
        },
        "format_version": format!("{}.{}", h.format_major, h.format_minor),
        "build_version": h.build_version,
        "uuid": uuid,
        "cores": neff.cores(),
        "requested_cores": h.requested_tpb,
        "compiler_version": neff.tool_version(),
        "target": neff.target(),
        "inputs": tensors(neff.inputs()),
        "outputs": tensors(neff.outputs()),
    })
}

fn main() -> ExitCode {
    let mut json = false;
    let mut options = ParseOptions::default();
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "--no-hash" => options.verify_hash = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') || path.is_some() => {
                err!("neff-inspect: unexpected argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => path = Some(arg),
        }
    }
    let Some(path) = path else {
        err!("neff-inspect: no file\n{USAGE}");
        return ExitCode::from(2);
    };
    let text = match Neff::open_with(&path, &options) {
        Ok(neff) if json => format!("{:#}\n", to_json(&neff)),
        Ok(neff) => summary(&neff),
        Err(e) => {
            err!("neff-inspect: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Not print!: it panics when stdout is closed early (`neff-inspect x | head`).
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            err!("neff-inspect: writing the summary: {e}");
            ExitCode::FAILURE
        }
    }
}
