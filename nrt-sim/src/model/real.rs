//! Real NEFFs (compiled for Neuron hardware) in signature-only mode: the signature
//! read by `neuron_neff` becomes a [`Program`] without ops, whose executions write
//! synthetic outputs ([`synthetic_output`]): deterministic bytes, never results (nobody
//! outside the vendor can run a NEFF's instruction streams).

use super::program::Program;
use super::types::{Modeled, TensorSpec};
use crate::container;
use neuron_neff::{Neff, NeffWriter, ParseOptions};
use nrt_sys::*;
use std::time::Duration;

/// Archive entry of a real-format NEFF where the simulator reads the device time of one
/// execution: one line `device_time_ns <u64>`. Written by [`with_device_time`] and
/// `nrt-sim-model --format neff2 --device-time-us N`; ignored by the real runtime.
pub const DEVICE_TIME_ENTRY: &str = "nrt-sim.txt";

/// `writer` with the simulated device time of one execution (nanosecond resolution;
/// `NRT_SIM_EXEC_LATENCY_US` still overrides it).
///
/// ```
/// use nrt_sim::neff::{DType, Neff, NeffWriter};
/// let writer = NeffWriter::new("m").input("x", DType::F16, &[4]).output("y", DType::F32, &[4]);
/// let bytes = nrt_sim::with_device_time(writer, std::time::Duration::from_micros(250)).build()?;
/// assert_eq!(Neff::parse(&bytes)?.inputs()[0].byte_size, 8);
/// # Ok::<(), nrt_sim::neff::NeffError>(())
/// ```
pub fn with_device_time(writer: NeffWriter, time: Duration) -> NeffWriter {
    let ns = time.as_nanos().min(u64::MAX as u128);
    writer.entry(DEVICE_TIME_ENTRY, format!("device_time_ns {ns}\n"))
}

/// The bytes the simulator writes to output `output` (its index among the model's
/// outputs) of a real NEFF named `model` at its `execution`-th execution (0 for the
/// first execution of the loaded model, counting every execution that wrote outputs):
/// `len` bytes of a SplitMix64 stream, each 64-bit value stored little-endian (the
/// last one cut), seeded with the FNV-1a 64-bit hash of the model name's bytes, a
/// `0xff` byte, and `output` and `execution` as 8 little-endian bytes each.
///
/// Deterministic and cheap; *not* the model's results.
///
/// ```
/// let a = nrt_sim::synthetic_output("m", 0, 0, 16);
/// assert_eq!(a.len(), 16);
/// assert_eq!(a, nrt_sim::synthetic_output("m", 0, 0, 16));
/// assert_ne!(a, nrt_sim::synthetic_output("m", 0, 1, 16));
/// assert_ne!(a, nrt_sim::synthetic_output("m", 1, 0, 16));
/// ```
pub fn synthetic_output(model: &str, output: usize, execution: u64, len: usize) -> Vec<u8> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = model
        .as_bytes()
        .iter()
        .copied()
        .chain([0xff])
        .chain((output as u64).to_le_bytes())
        .chain(execution.to_le_bytes());
    for b in bytes {
        seed ^= b as u64;
        seed = seed.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = Vec::with_capacity(len);
    let mut state = seed;
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
    }
    out
}

/// Whether `nrt_load` of `bytes` on the simulator uses signature-only mode: a NEFF
/// container (header and length right) whose payload is gzip data, as compiled NEFFs'
/// is. Its executions then write synthetic outputs, not results.
///
/// ```
/// use nrt_sim::neff::{DType, NeffWriter};
/// let real = NeffWriter::new("m").output("y", DType::F32, &[2]).build()?;
/// assert!(nrt_sim::is_signature_only(&real));
/// assert!(!nrt_sim::is_signature_only(&nrt_sim::ModelBuilder::add_example(&[2]).build().unwrap()));
/// # Ok::<(), nrt_sim::neff::NeffError>(())
/// ```
pub fn is_signature_only(bytes: &[u8]) -> bool {
    neuron_neff::Header::split(bytes).is_ok_and(|(_, payload)| payload.starts_with(&[0x1f, 0x8b]))
}

/// Reads a real NEFF for `nrt_load`: the container (hash checked when
/// `validate_hash`), then the signature.
///
/// Errors: `NRT_INVALID` with the reader's reason (truncated, bad hash, bad archive or
/// JSON, a zero-sized tensor, zero cores), `NRT_UNSUPPORTED_NEFF_VERSION` for an
/// unknown packaging version.
pub(crate) fn load(bytes: &[u8], validate_hash: bool) -> Result<Program, (NRT_STATUS, String)> {
    let options = ParseOptions {
        verify_hash: validate_hash,
        keep_entries: vec![DEVICE_TIME_ENTRY.into()],
        ..ParseOptions::default()
    };
    let neff = Neff::parse_with(bytes, &options)
        .map_err(|e| (container::status_of(&e), format!("real NEFF: {e}")))?;
    program_of(&neff).map_err(|m| (NRT_INVALID, format!("real NEFF '{}': {m}", neff.name())))
}

fn program_of(neff: &Neff) -> Result<Program, String> {
    let cores = neff.cores();
    if cores == 0 {
        return Err("its header (byte 168) says it needs 0 NeuronCores".into());
    }
    let specs = |list: &[neuron_neff::TensorSpec], role: &str| {
        list.iter()
            .map(|t| {
                let dtype = Some(t.dtype).filter(|d| d.is_modeled()).ok_or_else(|| {
                    format!(
                        "{role} '{}' has dtype {}, which the simulator does not model",
                        t.name, t.dtype
                    )
                })?;
                if t.byte_size == 0 {
                    return Err(format!(
                        "{role} '{}' ({} {:?}) has no bytes: a tensor cannot be bound to it",
                        t.name, t.dtype, t.shape
                    ));
                }
                Ok(TensorSpec {
                    name: t.name.clone(),
                    dtype,
                    shape: t.shape.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let inputs = specs(neff.inputs(), "input")?;
    let outputs = specs(neff.outputs(), "output")?;
    let device_time = match neff.entry(DEVICE_TIME_ENTRY) {
        Some(text) => device_time(text)?,
        None => Duration::ZERO,
    };
    let name = match neff.name() {
        "" => "(unnamed NEFF)".to_owned(),
        n => n.to_owned(),
    };
    Ok(Program::signature_only(
        name,
        device_time,
        inputs,
        outputs,
        cores,
    ))
}

fn device_time(text: &[u8]) -> Result<Duration, String> {
    let text = String::from_utf8_lossy(text);
    let mut fields = text.split_whitespace();
    match (
        fields.next(),
        fields.next().map(str::parse::<u64>),
        fields.next(),
    ) {
        (Some("device_time_ns"), Some(Ok(ns)), None) => Ok(Duration::from_nanos(ns)),
        _ => Err(format!(
            "entry {DEVICE_TIME_ENTRY} holds {:?}, not `device_time_ns <u64>`",
            text.chars().take(60).collect::<String>()
        )),
    }
}

/// What `describe_model` shows for a real NEFF: comment lines (it is not a payload).
pub(super) fn describe(p: &Program) -> String {
    let mut out = format!(
        "# real NEFF, signature-only mode: nrt_load accepts it and executions write synthetic outputs, not results\n# name {}\n# cores {}\n# device_time_ns {}\n",
        p.name,
        p.cores,
        p.device_time.as_nanos()
    );
    for (kind, list) in [("input", &p.inputs), ("output", &p.outputs)] {
        for spec in list.iter() {
            out.push_str("# ");
            out.push_str(&spec.line(kind));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_bytes_follow_the_documented_recipe() {
        // FNV-1a of "" + 0xff + 0u64 + 0u64, then SplitMix64: computed independently.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in [0xffu8].iter().chain(&[0u8; 16]) {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
        let s = h.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^= z >> 31;
        assert_eq!(synthetic_output("", 0, 0, 8), z.to_le_bytes());
        assert_eq!(synthetic_output("", 0, 0, 3), z.to_le_bytes()[..3]);
        assert_eq!(synthetic_output("m", 2, 7, 0), Vec::<u8>::new());
    }

    #[test]
    fn device_time_entry_is_checked() {
        assert_eq!(
            device_time(b"device_time_ns 1500\n"),
            Ok(Duration::from_nanos(1500))
        );
        assert!(
            device_time(b"device_time_ns x")
                .unwrap_err()
                .contains("nrt-sim.txt")
        );
        assert!(device_time(b"").is_err());
    }
}
