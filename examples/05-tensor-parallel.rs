//! Tensor parallelism: a two-layer MLP split over W NeuronCores, column-parallel then
//! row-parallel with one all-reduce, run as W ranks of a collective group, and compared
//! with the same MLP on one core. The ranks run in two modes: (a) threads, every rank
//! on its own core of this process; (b) processes, one process per rank launched by the
//! example itself as torchrun would (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `NEURON_RT_ROOT_COMM_ID=127.0.0.1:<free port>`, one visible core each), meeting at the
//! all-reduce over TCP on 127.0.0.1.
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
//! then, on nrt-sim, the same line with `mode=processes` for each W (a rank's latency is
//! its median execution; the line gives the slowest rank's). With `TP_LAUNCHER=slurm`
//! the processes get what SLURM's `srun` sets instead (`SLURM_PROCID`, `SLURM_NTASKS`,
//! `SLURM_LOCALID`, `SLURM_JOB_NODELIST=127.0.0.1`, no `NEURON_RT_ROOT_COMM_ID`: each
//! rank derives it from the node list's first host with
//! `RankSpec::export_root_comm_id`, port 46820), and the lines say `mode=processes-slurm`:
//! the two-node SLURM script of README, played on one machine.
//!
//! `max_abs_err` against the single-core MLP (0: the simulator sums in a fixed order
//! and every value here is exact in f32), `latency_ms` the median of the group's
//! executions, `speedup` against W = 1 (same total device time, split over the ranks;
//! the all-reduce adds its link time, `NRT_SIM_CC_GBPS`).

use std::error::Error;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neuron_rt::{DEFAULT_ROOT_COMM_PORT, RankGroup, RankSpec, Runtime, TensorSet};

const B: u32 = 8; // batch
const D: u32 = 64; // model width
const H: u32 = 256; // hidden width, split over the ranks
const TOTAL_DEVICE_TIME: Duration = Duration::from_millis(40);
const RUNS: usize = 9;
const WORLDS: [u32; 3] = [1, 2, 4];
/// Set in the environment of the processes the example launches, one per rank.
const CHILD: &str = "TP_EXAMPLE_RANK_PROCESS";
/// `slurm`: launch the rank processes with SLURM's variables rather than torchrun's.
const LAUNCHER: &str = "TP_LAUNCHER";

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(CHILD).is_some() {
        // Under SLURM the job script may leave NEURON_RT_ROOT_COMM_ID to the ranks.
        // SAFETY: the start of main: no other thread reads or writes the environment.
        unsafe { RankSpec::export_root_comm_id() }?;
        return rank_process();
    }
    let slurm = std::env::var(LAUNCHER).is_ok_and(|v| v == "slurm");
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
        let (x, w1, w2) = (sim::x(), sim::w1(), sim::w2());
        let outputs = model.run(&neuron_rt::inputs!["x" => &x, "w1" => &w1, "w2" => &w2])?;
        outputs["y"].to_vec::<f32>()?
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
        report("threads", world, err, latency, base);
    }
    let mut base = None;
    for world in WORLDS {
        let (err, latency) = launch_ranks(world, &reference, slurm)?;
        let base = *base.get_or_insert(latency);
        let mode = if slurm {
            "processes-slurm"
        } else {
            "processes"
        };
        report(mode, world, err, latency, base);
    }
    Ok(())
}

/// Launches one process per rank of a world of `world` (this executable again, with a
/// launcher's environment) and collects their results: the largest difference from
/// `reference` and the group's latency (the slowest rank's median, which every rank
/// reports after an all-gather; checked to agree).
fn launch_ranks(
    world: u32,
    reference: &[f32],
    slurm: bool,
) -> Result<(f32, Duration), Box<dyn Error>> {
    let port = rank0_port(slurm)?;
    let children = (0..world)
        .map(|rank| {
            let mut child = Command::new(std::env::current_exe()?);
            child.env(CHILD, "1").env_remove(LAUNCHER);
            if slurm {
                // What srun sets per task; rank 0's address comes from the node list
                // (an address: the simulator connects ranks by ip:port only).
                child
                    .env("SLURM_PROCID", rank.to_string())
                    .env("SLURM_NTASKS", world.to_string())
                    .env("SLURM_LOCALID", rank.to_string())
                    .env("SLURM_JOB_NODELIST", "127.0.0.1")
                    .env_remove("NEURON_RT_ROOT_COMM_ID")
                    .env_remove("RANK")
                    .env_remove("OMPI_COMM_WORLD_RANK");
            } else {
                child
                    .env("RANK", rank.to_string())
                    .env("WORLD_SIZE", world.to_string())
                    .env("LOCAL_RANK", rank.to_string())
                    .env("NEURON_RT_ROOT_COMM_ID", format!("127.0.0.1:{port}"));
            }
            child
                // Four simulated cores per process, of which this rank sees its own.
                .env("NRT_SIM_VNC_COUNT", "4")
                .env("NEURON_RT_VISIBLE_CORES", rank.to_string())
                .env_remove("NEURON_RT_NUM_CORES")
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let (mut err, mut latency) = (0f32, None);
    for (rank, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("rank {rank} of {world} failed ({}): {text}", out.status).into());
        }
        let (ns, y) = parse_rank_line(&text)
            .ok_or_else(|| format!("rank {rank} of {world} printed no result: {text}"))?;
        // Every rank reports the group's latency, all-gathered: they must agree.
        let group = *latency.get_or_insert(ns);
        if ns != group {
            return Err(format!(
                "rank {rank} of {world} reports the group's latency as {ns} ns, rank 0 as {group} ns: the all-gather disagrees"
            )
            .into());
        }
        for (a, b) in y.iter().zip(reference) {
            err = err.max((a - b).abs());
        }
        if y.len() != reference.len() {
            err = f32::NAN;
        }
    }
    let latency = latency.ok_or("a world of no ranks")?;
    Ok((err, Duration::from_nanos(latency)))
}

/// The port rank 0 will listen on, checked free. Under SLURM it is the one the ranks
/// derive ([`DEFAULT_ROOT_COMM_PORT`], inside Linux's ephemeral range, so an outgoing
/// connection of another program may hold it for a while: waited for, up to 20 s).
/// Otherwise a free port below the ephemeral range (32768-60999 by default), which the
/// kernel never hands to outgoing connections, so it stays free until rank 0 binds it
/// (a port from `bind(":0")` is an ephemeral one, and was taken in between once).
fn rank0_port(slurm: bool) -> Result<u16, Box<dyn Error>> {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    if slurm {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !free(DEFAULT_ROOT_COMM_PORT) {
            if Instant::now() > deadline {
                return Err(format!(
                    "port {DEFAULT_ROOT_COMM_PORT} (rank 0's under SLURM) stayed in use on this machine for 20 s"
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(DEFAULT_ROOT_COMM_PORT);
    }
    // Start somewhere different in every run (two runs at once pick different ports).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    const LOW: u32 = 20_000;
    const SPAN: u32 = 32_768 - LOW;
    (0..SPAN)
        .map(|i| (LOW + (seed.wrapping_add(i.wrapping_mul(7_919)) % SPAN)) as u16)
        .find(|&port| free(port))
        .ok_or_else(|| "no free port from 20000 to 32767 on 127.0.0.1".into())
}

/// `tp-rank latency_ns=<n> y=<v>,<v>,...` (a rank process's stdout).
fn parse_rank_line(text: &str) -> Option<(u64, Vec<f32>)> {
    let line = text.lines().find(|l| l.starts_with("tp-rank "))?;
    let mut fields = line.split(' ').skip(1);
    let ns = fields.next()?.strip_prefix("latency_ns=")?.parse().ok()?;
    let y = fields.next()?.strip_prefix("y=")?;
    let y = y
        .split(',')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    Some((ns, y))
}

/// One rank in its own process: its rank from the launcher's environment, its shards,
/// a warm-up execution (the ranks connect), a barrier so every rank starts timing
/// together, `RUNS` timed executions, and an all-gather of the ranks' medians so each
/// reports the slowest rank's (the group's latency).
fn rank_process() -> Result<(), Box<dyn Error>> {
    let spec = RankSpec::from_env()?;
    let runtime = Runtime::builder().library(nrt_sim::library()).build()?;
    let model = runtime.load_model_rank(&sim::mlp(spec.world, true)?, spec)?;
    let inputs = model.allocate_inputs()?;
    sim::fill_shards(&inputs, spec.rank, spec.world)?;
    let mut outputs = model.allocate_outputs()?;
    model.execute(&inputs, &mut outputs)?;
    runtime.barrier(spec)?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        model.execute(&inputs, &mut outputs)?;
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[RUNS / 2].as_nanos() as u64;
    let medians = runtime.all_gather(spec, &[median])?;
    let slowest = medians.iter().copied().max().unwrap_or(median);
    let y: Vec<f32> = outputs.get("y").ok_or("no output y")?.to_vec()?;
    let y: Vec<String> = y.iter().map(f32::to_string).collect();
    println!("tp-rank latency_ns={slowest} y={}", y.join(","));
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

fn report(mode: &str, world: u32, err: f32, latency: Duration, base: Duration) {
    println!(
        "tp mode={mode} ranks={world} max_abs_err={err} latency_ms={:.3} speedup={:.2}",
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
        report(
            "threads",
            world,
            if same { 0.0 } else { f32::NAN },
            latency,
            base,
        );
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
