//! Generation on a NeuronCore: a bundle of bucketed NEFFs sharing one copy of the
//! weights and of the KV cache, a prompt prefilled, then 48 tokens decoded greedily with
//! the cache resident on the device, sampled on the host and then on the device.
//!
//! ```text
//! cargo run --release --example 07-generate                 # the small decoder, simulated
//! cargo run --release --example 07-generate -- --bundle DIR # a compiled bundle directory
//! ```
//!
//! Without `--bundle` it writes the simulator's small decoder (2 layers, hidden 64,
//! byte vocabulary, context 128; 1 ms of device time per call) and its seeded weights
//! into a temporary directory and runs it on nrt-sim, which computes the decoder for
//! real. With `--bundle DIR` (a `bundle.json` directory, see `neuron_rt::generate`) it
//! runs on libnrt when it is found, else on the simulator in signature-only mode
//! (synthetic outputs): the `check` and `memory` figures mean something only for the
//! built-in bundle. Prints:
//!
//! ```text
//! generate sampling=<host|device> prompt_tokens=<p> new_tokens=<n> ttft_us=<a> per_token_p50_us=<b> device_step_us=<c> gap_p50_us=<g> cache_host_copies=<k>
//! check cached_vs_recompute steps=<s> max_rel_err=<e> device_equals_host_greedy=<true|false>
//! memory weights_bytes_per_core=<w> state_bytes_per_core=<v> members=<m>
//! load weights_bytes=<l> upload_mb_per_s=<u> memcpy_mb_per_s=<r> dma_mb_per_s=<d>
//! ```
//!
//! Device sampling runs pipelined ([`GenerateOptions::depth`], 2 steps queued): each
//! step is scheduled before the previous one completed, its ids input bound to the
//! previous step's ids output on the device, so the core does not idle between steps.
//! Host sampling cannot queue a step before it has sampled its input.
//!
//! * `ttft_us`: from the call to the first token (the prefill), after one warm-up
//!   generation per mode; `per_token_p50_us`: the
//!   median interval between consecutive tokens; `device_step_us` and `gap_p50_us`: the
//!   median decode execution and the median idle time of the core between consecutive
//!   decode executions, from the runtime's system trace; `cache_host_copies`: bytes of
//!   the KV cache read to the host, counted per tensor by the simulator (0).
//! * `check`: each step's logits from the cached decode against a prefill of the whole
//!   sequence so far (max |a - b| / max |b|), and the device's argmax tokens against the
//!   host's greedy ones.
//! * `memory`: device bytes per core of the weights and of the state, one copy for all
//!   members (checked against the simulator's memory counters).
//! * `load`: the weights uploaded to the cores next to a `memcpy` of the same bytes with
//!   the same threads, and the simulated DMA rate (`NRT_SIM_DMA_GBPS`, 16 GB/s per
//!   core by default).

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use neuron_rt::generate::{
    Bundle, GenerateOptions, Generator, SamplingMode, WeightFile, measure_upload,
};
use neuron_rt::sim::SimControl;
use neuron_rt::sim::decoder::{DecoderBundleOptions, write_bundle};
use neuron_rt::{NC_EXEC_RUNNING, Runtime, SysTraceConfig, TraceEvent};

const NEW_TOKENS: u32 = 48;
const PROMPT: &str = "The NeuronCore";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("07-generate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let given = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--bundle" => Some(PathBuf::from(dir)),
        _ => return Err("usage: 07-generate [--bundle DIR]".into()),
    };
    let temp = tempfile::tempdir()?;
    let (dir, runtime, builtin) = match given {
        Some(dir) => {
            let rt = Runtime::new().or_else(|e| {
                eprintln!(
                    "libnrt not usable ({e}): running the bundle on the simulator, signature-only"
                );
                Runtime::builder().simulator().build()
            })?;
            (dir, rt, false)
        }
        None => {
            let mut options = DecoderBundleOptions::default();
            options.decode_device_time = Duration::from_millis(1);
            options.prefill_device_time = Duration::from_millis(1);
            write_bundle(temp.path(), &options)?;
            let rt = Runtime::builder().simulator().build()?;
            (temp.path().to_path_buf(), rt, true)
        }
    };
    let sim = builtin
        .then(|| SimControl::new(neuron_rt::sim::library()))
        .flatten();
    let device_bytes_before = sim.as_ref().map(|s| s.counters().cores[0].device_bytes);

    // Load: every member on core 0, the weights uploaded once, with a progress line on
    // stderr when it is a terminal (rewritten in place with `\r`, cleared at the end;
    // nothing otherwise, so that piped output stays the figures only).
    let tty = std::io::stderr().is_terminal();
    let load_start = Instant::now();
    let bundle = Bundle::builder(&runtime)
        .dir(&dir)?
        .cores([0])
        .progress(move |p| {
            if tty {
                let mib = |b: u64| b as f64 / f64::from(1 << 20);
                let rate = mib(p.bytes_done) / load_start.elapsed().as_secs_f64().max(1e-9);
                let (done, total) = (mib(p.bytes_done), mib(p.bytes_total));
                eprint!("\rloading {done:.1}/{total:.1} MiB {rate:.0} MiB/s\x1b[K");
            }
        })
        .build()?;
    if tty {
        eprint!("\r\x1b[K");
    }

    let generator = Generator::new(&bundle, 0)?;
    let prompt: Vec<u32> = PROMPT.bytes().map(u32::from).collect();
    // Warm-up: the first call of each member pays one-time costs (the simulator
    // prepares a model's graph on its first execution); the figures are steady state.
    for mode in [SamplingMode::Host, SamplingMode::Device] {
        let options = GenerateOptions::new(2).mode(mode);
        generator
            .generate(&prompt, &options)?
            .collect::<neuron_rt::Result<Vec<_>>>()?;
    }
    let mut host_tokens = Vec::new();
    let mut host_logits = Vec::new();
    let mut device_tokens = Vec::new();
    for mode in [SamplingMode::Host, SamplingMode::Device] {
        let trace = runtime.sys_trace(&SysTraceConfig::new())?;
        let cache_before = cache_host_bytes(&bundle, sim.as_ref());
        let options = GenerateOptions::new(NEW_TOKENS).mode(mode);
        let start = Instant::now();
        let mut generation = generator.generate(&prompt, &options)?;
        let mut arrivals = Vec::new();
        let mut tokens = Vec::new();
        while let Some(token) = generation.next() {
            tokens.push(token?);
            arrivals.push(Instant::now());
            if mode == SamplingMode::Host {
                host_logits.push(generation.last_logits().to_vec());
            }
        }
        let events = trace.fetch_core(0, None)?;
        trace.stop()?;
        let cache_copies = cache_host_bytes(&bundle, sim.as_ref()) - cache_before;
        let ttft = arrivals.first().map_or(Duration::ZERO, |t| *t - start);
        let intervals: Vec<f64> = arrivals.windows(2).map(|w| us(w[1] - w[0])).collect();
        // The decode executions: every execution after the first (the prefill).
        let (step, gap) = decode_timeline(&events);
        println!(
            "generate sampling={mode} prompt_tokens={} new_tokens={} ttft_us={:.1} per_token_p50_us={:.1} device_step_us={:.1} gap_p50_us={:.1} cache_host_copies={cache_copies}",
            prompt.len(),
            tokens.len(),
            us(ttft),
            median(intervals),
            step,
            gap,
        );
        match mode {
            SamplingMode::Host => host_tokens = tokens,
            SamplingMode::Device => device_tokens = tokens,
        }
    }

    // Cached decode against recomputing the whole sequence with a prefill member.
    let mut sequence = prompt.clone();
    let mut worst = 0f64;
    let mut steps = 0;
    for (token, cached) in host_tokens.iter().zip(&host_logits) {
        let mut again = generator.generate(&sequence, &GenerateOptions::new(1))?;
        again.next().transpose()?;
        worst = worst.max(rel_err(cached, again.last_logits()));
        steps += 1;
        sequence.push(*token);
    }
    println!(
        "check cached_vs_recompute steps={steps} max_rel_err={worst:.2e} device_equals_host_greedy={}",
        device_tokens == host_tokens
    );

    let memory = bundle.memory();
    println!(
        "memory weights_bytes_per_core={} state_bytes_per_core={} members={}",
        memory.weights_bytes_per_core, memory.state_bytes_per_core, memory.members
    );
    if let (Some(sim), Some(before)) = (&sim, device_bytes_before) {
        // Models, plus one copy of the weights and one of the state: nothing per member.
        let models: u64 = bundle
            .members()
            .iter()
            .map(|m| {
                std::fs::metadata(dir.join(m.name()).join("graph.neff")).map_or(0, |f| f.len())
            })
            .sum();
        let used = sim.counters().cores[0].device_bytes - before;
        let expected = models + memory.weights_bytes_per_core + memory.state_bytes_per_core;
        if used != expected {
            return Err(format!(
                "core 0 holds {used} device bytes, expected {expected} (models + one weight copy + one state copy)"
            )
            .into());
        }
    }

    // Upload rate of the bundle's weights (best of 5) next to memcpy and the DMA rate.
    let weights = WeightFile::read(dir.join("weights.safetensors"))?;
    let cores = bundle.cores().to_vec();
    let (mut upload, mut memcpy) = (0f64, 0f64);
    for _ in 0..5 {
        let m = measure_upload(&runtime, &weights, &cores, cores.len())?;
        upload = upload.max(m.upload.upload_mb_per_s());
        memcpy = memcpy.max(m.memcpy_mb_per_s);
    }
    let gbps: f64 = std::env::var("NRT_SIM_DMA_GBPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16.0);
    println!(
        "load weights_bytes={} upload_mb_per_s={upload:.0} memcpy_mb_per_s={memcpy:.0} dma_mb_per_s={:.0}",
        weights.data_bytes(),
        gbps * 1000.0 * cores.len() as f64
    );
    Ok(())
}

/// Device-to-host bytes of the bundle's state tensors on core 0 (0 without a simulator
/// to count them).
fn cache_host_bytes(bundle: &Bundle, sim: Option<&SimControl>) -> u64 {
    let Some(sim) = sim else { return 0 };
    bundle
        .states(0)
        .filter_map(|(_, t)| sim.tensor_transfers(t.as_raw()))
        .map(|t| t.device_to_host_bytes)
        .sum()
}

/// Median decode execution time and median idle gap between consecutive decode
/// executions, in us, from the trace's `nc_exec_running` spans (the first: the prefill).
fn decode_timeline(events: &[TraceEvent]) -> (f64, f64) {
    let mut spans: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e.event_type == NC_EXEC_RUNNING)
        .filter_map(|e| Some((e.timestamp_ns?, e.duration_ns?)))
        .collect();
    spans.sort_unstable();
    let decode = spans.get(1..).unwrap_or(&[]);
    let steps = decode.iter().map(|&(_, d)| d as f64 / 1e3).collect();
    let gaps = decode
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0 + w[0].1) as f64 / 1e3)
        .collect();
    (median(steps), median(gaps))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())));
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
    if a.len() != b.len() {
        f64::INFINITY
    } else {
        diff / scale.max(f64::MIN_POSITIVE)
    }
}
