//! Tensor parallelism: a two-layer MLP split over W NeuronCores, column-parallel then
//! row-parallel with one all-reduce, run as W ranks of a collective group in this
//! process, and compared with the same MLP on one core.
//!
//! ```text
//! cargo run --release --example 05-tensor-parallel                       # on nrt-sim
//! cargo run --release --example 05-tensor-parallel -- w1.neff w2.neff w4.neff
//! ```
//!
//! With NEFF paths (on a Neuron instance), they are the MLP compiled for 1, 2 and 4
//! ranks (one SPMD NEFF per world size, the same input names on every rank); the inputs
//! are filled with the same pattern on every rank, so only latency and the agreement
//! of the ranks are meaningful. On nrt-sim the example builds the models itself.
//!
//! For each W in 1, 2, 4 it prints exactly
//!
//! ```text
//! tp mode=threads ranks=<W> max_abs_err=<x> latency_ms=<x> speedup=<x>
//! ```
//!
//! `max_abs_err` against the single-core MLP (0: the simulator sums in a fixed order
//! and every value here is exact in f32), `latency_ms` the median of the group's
//! executions, `speedup` against W = 1 (same total device time, split over the ranks;
//! the all-reduce adds its link time, `NRT_SIM_CC_GBPS`).

use std::error::Error;
use std::time::{Duration, Instant};

use neuron_rt::{RankGroup, Runtime, TensorSet};

const B: u32 = 8; // batch
const D: u32 = 64; // model width
const H: u32 = 256; // hidden width, split over the ranks
const TOTAL_DEVICE_TIME: Duration = Duration::from_millis(40);
const RUNS: usize = 9;
const WORLDS: [u32; 3] = [1, 2, 4];

fn main() -> Result<(), Box<dyn Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if !paths.is_empty() {
        return on_hardware(&paths);
    }
    // Four simulated cores, set before the runtime reads the environment.
    if std::env::var_os("NRT_SIM_VNC_COUNT").is_none() {
        // SAFETY: no other thread runs yet; nothing reads the environment concurrently.
        unsafe { std::env::set_var("NRT_SIM_VNC_COUNT", "4") };
    }
    println!("running on nrt-sim (simulated libnrt): no Neuron device used");
    let runtime = Runtime::builder().library(nrt_sim::library()).build()?;
    let reference = {
        let model = runtime.load_model_on(&sim::mlp(1, false)?, 0)?;
        let inputs = [("x", sim::x()), ("w1", sim::w1()), ("w2", sim::w2())];
        let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (*n, &v[..])).collect();
        model.run(&named)?["y"].clone()
    };
    let mut base = None;
    for world in WORLDS {
        let group = runtime.load_rank_group(&sim::mlp(world, true)?, 0..world, 0, world)?;
        let inputs = group.allocate_inputs()?;
        for (rank, set) in inputs.iter().enumerate() {
            sim::fill_shards(set, rank as u32, world)?;
        }
        let (latency, outputs) = measure(&group, &inputs)?;
        let mut err = 0f32;
        for set in &outputs {
            let y: Vec<f32> = set.get("y").ok_or("no output y")?.to_vec()?;
            for (a, b) in y.iter().zip(&reference) {
                err = err.max((a - b).abs());
            }
        }
        let base = *base.get_or_insert(latency);
        report(world, err, latency, base);
    }
    Ok(())
}

/// Runs every rank at once `RUNS` times; the median latency and the last outputs.
fn measure(
    group: &RankGroup,
    inputs: &[TensorSet],
) -> Result<(Duration, Vec<TensorSet>), Box<dyn Error>> {
    let mut outputs = group.allocate_outputs()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        for result in group.execute(inputs, &mut outputs) {
            result?;
        }
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], outputs))
}

fn report(world: u32, err: f32, latency: Duration, base: Duration) {
    println!(
        "tp mode=threads ranks={world} max_abs_err={err} latency_ms={:.3} speedup={:.2}",
        latency.as_secs_f64() * 1e3,
        base.as_secs_f64() / latency.as_secs_f64()
    );
}

/// NEFFs compiled for 1, 2 and 4 ranks, on the cores of this instance.
fn on_hardware(paths: &[String]) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::new()?;
    let mut base = None;
    let mut reference: Option<Vec<u8>> = None;
    for (path, world) in paths.iter().zip(WORLDS) {
        let neff = std::fs::read(path)?;
        let group = runtime.load_rank_group(&neff, 0..world, 0, world)?;
        let inputs = group.allocate_inputs()?;
        for set in &inputs {
            for (_, tensor) in set.iter() {
                let bytes: Vec<u8> = (0..tensor.size()).map(|i| (i % 7) as u8).collect();
                tensor.write(&bytes)?;
            }
        }
        let (latency, outputs) = measure(&group, &inputs)?;
        // Ranks must agree with each other and with W = 1 byte for byte.
        let first = outputs[0]
            .iter()
            .next()
            .ok_or("no output")?
            .1
            .to_vec::<u8>()?;
        let same = reference.get_or_insert_with(|| first.clone()) == &first;
        let base = *base.get_or_insert(latency);
        report(world, if same { 0.0 } else { f32::NAN }, latency, base);
    }
    Ok(())
}

/// The simulator's models and data.
mod sim {
    use super::{B, D, H, TOTAL_DEVICE_TIME};
    use neuron_rt::TensorSet;
    use nrt_sim::{BuildError, DType, ModelBuilder, Op};

    /// `y = relu(x w1) w2`; for `world` ranks each holds `H / world` columns of `w1`
    /// and rows of `w2`, and (`collective`) an all-reduce sums the partial products.
    /// The device time is the single-core time split over the ranks.
    pub fn mlp(world: u32, collective: bool) -> Result<Vec<u8>, BuildError> {
        let h = H / world;
        let mm = |a: &str, b: &str, out: &str| Op::MatMul {
            a: a.into(),
            b: b.into(),
            out: out.into(),
        };
        let mut b = ModelBuilder::new(format!("mlp-tp{world}"))
            .input("x", DType::F32, &[B, D])
            .input("w1", DType::F32, &[D, h])
            .input("w2", DType::F32, &[h, D])
            .output("y", DType::F32, &[B, D])
            .op(mm("x", "w1", "h"))
            .op(Op::Relu {
                input: "h".into(),
                out: "r".into(),
            })
            .device_time(TOTAL_DEVICE_TIME / world);
        if collective {
            b = b.op(mm("r", "w2", "partial")).op(Op::AllReduce {
                input: "partial".into(),
                out: "y".into(),
            });
        } else {
            b = b.op(mm("r", "w2", "y"));
        }
        b.build()
    }

    /// Multiples of 1/4 in [-1, 1]: every product and sum of the MLP is exact in f32.
    fn values(n: u32, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + seed * 5) % 9) as f32 / 4.0 - 1.0)
            .collect()
    }

    pub fn x() -> Vec<f32> {
        values(B * D, 1)
    }
    pub fn w1() -> Vec<f32> {
        values(D * H, 2)
    }
    pub fn w2() -> Vec<f32> {
        values(H * D, 3)
    }

    /// Rank `rank`'s inputs: all of `x`, its columns of `w1`, its rows of `w2`.
    pub fn fill_shards(set: &TensorSet, rank: u32, world: u32) -> neuron_rt::Result<()> {
        let h = (H / world) as usize;
        let r = rank as usize;
        let w1: Vec<f32> = w1()
            .chunks(H as usize)
            .flat_map(|row| row[r * h..(r + 1) * h].to_vec())
            .collect();
        let w2 = &w2()[r * h * D as usize..(r + 1) * h * D as usize];
        let get = |name: &str| set.get(name).expect("the model's inputs are allocated");
        get("x").write(&x())?;
        get("w1").write(&w1)?;
        get("w2").write(w2)
    }
}
