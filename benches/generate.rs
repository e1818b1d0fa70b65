//! Generation on the simulator (issue 27 item 8): the small decoder bundle with a decode
//! step of 1 ms device time, one line per batch size and sampling mode:
//!
//! ```text
//! generate batch=<b> sampling=<host|device|device-chain> launch_us=<L> steps=<n> per_token_p50_us=<x> device_step_us=<y> gap_p50_us=<g> overhead_us=<z>
//! ```
//!
//! `sampling=device`: the fused member that samples on the device (`decode_b{b}_ids`),
//! run by `generate::PipelinedDecode` with its default depth of steps queued;
//! `device-chain`: the same step as the chain `chain_embed`, `chain_layer_0`,
//! `chain_layer_1`, `chain_head_ids` (each 1/4 of the step's device time). Both run at the
//! simulator's launch cost L = 180 us (the cost between back-to-back executions users
//! measure on runtime 2.31, aws-neuron-sdk#1370), which queued steps hide.
//!
//! * `gap_p50_us`: the device's idle time between consecutive executions on the core
//!   (the system trace's `nc_exec_running` spans, `generate::Timeline`), median;
//! * `device_step_us`: the median execution time from the trace (a chain: the sum of its
//!   members per step);
//! * `per_token_p50_us`: the median interval between one sequence's consecutive tokens
//!   as the host receives them;
//! * `overhead_us` = `per_token_p50_us` - `device_step_us`.
//!
//! `sampling=host` (L = 0): the host `Generator`, greedy, with `decode_b{b}_logits`:
//! each step's ids go in, its logits come back and the host samples them before it can
//! schedule the next step, so its gap and overhead are the crate's own cost (on hardware
//! every such step also pays the launch cost, which only queued steps hide).
//!
//! Targets: gap p50 <= 15 us in both device modes; host-sampling overhead <= 30 us.

use std::path::Path;
use std::time::{Duration, Instant};

use neuron_rt::generate::{
    Bundle, DecodeChain, DecodeOptions, DecodeStart, GenerateOptions, Generator, PipelinedDecode,
    Timeline, p50,
};
use neuron_rt::{Runtime, SysTraceConfig};
use nrt_sim::SimControl;
use nrt_sim::decoder::DecoderBundleOptions;

/// Device time of one decode step.
const STEP: Duration = Duration::from_millis(1);
/// Launch cost of the device-sampling lines, in microseconds.
const DEVICE_LAUNCH_US: u64 = 180;
/// Prompt of every row (4 bytes: with STEPS, within the context of 128).
const PROMPT: &[u8] = b"The ";
/// Decode steps per line.
const STEPS: u64 = 120;
/// Device sampling's target for the gap p50 (the implicit-async figure of
/// aws-neuron-sdk#1370).
const GAP_TARGET: Duration = Duration::from_micros(15);
/// Host sampling's target for the overhead (per-token p50 minus the device step).
const HOST_OVERHEAD_TARGET: Duration = Duration::from_micros(30);
/// Executions before the measured ones, per line (warm units and tensors).
const WARMUP_STEPS: u64 = 4;

/// One printed line.
struct Line {
    batch: u32,
    sampling: &'static str,
    launch_us: u64,
    steps: u64,
    per_token: Duration,
    device_step: Duration,
    gap: Duration,
}

impl Line {
    fn print(&self) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        if self.sampling.starts_with("device") && self.gap > GAP_TARGET {
            eprintln!(
                "generate: batch {} {}: gap p50 {:?} misses the target of {GAP_TARGET:?}",
                self.batch, self.sampling, self.gap
            );
        }
        if self.sampling == "host"
            && self.per_token.saturating_sub(self.device_step) > HOST_OVERHEAD_TARGET
        {
            eprintln!(
                "generate: batch {} host: overhead {:?} misses the target of {HOST_OVERHEAD_TARGET:?}",
                self.batch,
                self.per_token.saturating_sub(self.device_step)
            );
        }
        println!(
            "generate batch={} sampling={} launch_us={} steps={} per_token_p50_us={:.1} device_step_us={:.1} gap_p50_us={:.1} overhead_us={:.1}",
            self.batch,
            self.sampling,
            self.launch_us,
            self.steps,
            us(self.per_token),
            us(self.device_step),
            us(self.gap),
            // `+ 0.0`: no `-0.0` for a step received as fast as the device made it.
            us(self.per_token) - us(self.device_step) + 0.0,
        );
    }
}

/// The bundle (1 ms decode step; chain stages 1/4 each) on core 0.
fn bundle(rt: &Runtime, dir: &Path) -> Bundle {
    let mut options = DecoderBundleOptions::default();
    options.decode_device_time = STEP;
    options.chain_device_time = STEP / 4;
    nrt_sim::decoder::write_bundle(dir, &options).expect("bundle");
    Bundle::builder(rt)
        .dir(dir)
        .expect("bundle dir")
        .build()
        .expect("bundle")
}

/// Prefills `PROMPT` into slots `0..rows` and returns where the decode starts (the
/// prefill's argmax: greedy).
fn prefill(bundle: &Bundle, rows: u32) -> DecodeStart {
    bundle.clear_states().expect("clear");
    let member = bundle.member("prefill_t16").expect("prefill_t16");
    let mut ids: Vec<i32> = PROMPT.iter().map(|&b| i32::from(b)).collect();
    let mut pos: Vec<i32> = (0..PROMPT.len() as i32).collect();
    ids.resize(16, 0);
    pos.resize(16, -1);
    let mut start = DecodeStart {
        ids: Vec::new(),
        positions: Vec::new(),
        seq_ids: Vec::new(),
    };
    for slot in 0..rows {
        let (inputs, mut outputs) = member.sets(0, &[]).expect("sets");
        inputs.get("input_ids").unwrap().write(&ids[..]).unwrap();
        inputs.get("position_ids").unwrap().write(&pos[..]).unwrap();
        inputs
            .get("seq_ids")
            .unwrap()
            .write(&[slot as i32][..])
            .unwrap();
        member
            .model(0)
            .unwrap()
            .execute(&inputs, &mut outputs)
            .expect("prefill");
        let logits: Vec<f32> = outputs.get("logits").unwrap().to_vec().unwrap();
        let first =
            (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best });
        start.ids.push(first as u32);
        start.positions.push(PROMPT.len() as u32);
        start.seq_ids.push(slot);
    }
    start
}

/// A `sampling=device` line (`chain` false: the fused `decode_b{batch}_ids`) or a
/// `sampling=device-chain` one, at L = 180 us.
fn device_line(rt: &Runtime, sim: &SimControl, bundle: &Bundle, batch: u32, chain: bool) -> Line {
    let decode_chain = if chain {
        DecodeChain::stages(bundle).expect("chain stages")
    } else {
        DecodeChain::single(bundle, &format!("decode_b{batch}_ids")).expect("decode member")
    };
    assert_eq!(decode_chain.batch(), batch);
    let members: Vec<String> = decode_chain.members().map(str::to_owned).collect();
    let start = prefill(bundle, batch);
    sim.set_launch_cost(Duration::from_micros(DEVICE_LAUNCH_US))
        .expect("launch cost");
    // Warm-up: a few steps from the same start, then the measured decode (the cache
    // positions they wrote are written again).
    let warm = PipelinedDecode::new(
        bundle,
        0,
        &decode_chain,
        &start,
        DecodeOptions::new(WARMUP_STEPS),
    )
    .expect("decode");
    for step in warm {
        step.expect("warm-up step");
    }
    let trace = rt.sys_trace(&SysTraceConfig::new()).expect("trace");
    let mut decode =
        PipelinedDecode::new(bundle, 0, &decode_chain, &start, DecodeOptions::new(STEPS))
            .expect("decode");
    let mut received = Vec::with_capacity(STEPS as usize);
    while let Some(ids) = decode.next_step().expect("step") {
        received.push(Instant::now());
        assert_eq!(ids.len(), batch as usize);
    }
    decode.finish().expect("finish");
    let events = trace.fetch().expect("trace events");
    trace.stop().expect("trace stop");
    sim.set_launch_cost(Duration::ZERO).expect("launch cost");
    let timeline = Timeline::from_events(&events, 0).only(|n| members.iter().any(|m| m == n));
    assert_eq!(
        timeline.spans().len(),
        STEPS as usize * members.len(),
        "one span per member per step"
    );
    let intervals = received.windows(2).map(|w| w[1] - w[0]).collect();
    Line {
        batch,
        sampling: if chain { "device-chain" } else { "device" },
        launch_us: DEVICE_LAUNCH_US,
        steps: STEPS,
        per_token: p50(intervals).expect("intervals"),
        device_step: timeline.step_p50(members.len()).expect("steps"),
        gap: timeline.gap_p50().expect("gaps"),
    }
}

/// A `sampling=host` line: the host `Generator`, greedy, its decode member returning
/// logits (`decode_b{batch}_logits`), at L = 0 (the crate's own cost: ids in, 256
/// logits per row out, sampled on the host).
fn host_line(rt: &Runtime, bundle: &Bundle, batch: u32) -> Line {
    let generator = Generator::new(bundle, 0).expect("generator");
    let prompt: Vec<u32> = PROMPT.iter().map(|&b| u32::from(b)).collect();
    let prompts: Vec<&[u32]> = (0..batch).map(|_| prompt.as_slice()).collect();
    let member = format!("decode_b{batch}_logits");
    // Warm-up: sets made, members run once.
    let warm = GenerateOptions::new(WARMUP_STEPS as u32);
    for step in generator.generate_batch(&prompts, &warm).expect("warm-up") {
        step.expect("warm-up step");
    }
    let trace = rt.sys_trace(&SysTraceConfig::new()).expect("trace");
    // One token from the prefills, then STEPS decode steps.
    let options = GenerateOptions::new(STEPS as u32 + 1);
    let mut generation = generator
        .generate_batch(&prompts, &options)
        .expect("generate");
    let mut received = Vec::with_capacity(STEPS as usize);
    for step in generation.by_ref() {
        let tokens = step.expect("step");
        // Row 0's tokens: its prefill's, then one per decode step.
        if tokens.iter().any(|&(row, _)| row == 0) {
            received.push(Instant::now());
        }
    }
    assert_eq!(generation.tokens(0).len(), STEPS as usize + 1);
    drop(generation);
    let events = trace.fetch().expect("trace events");
    trace.stop().expect("trace stop");
    let timeline = Timeline::from_events(&events, 0).only(|n| n == member);
    assert_eq!(
        timeline.spans().len(),
        STEPS as usize,
        "one span per decode step"
    );
    // Intervals between decode-step tokens (the first token is the prefill's).
    let intervals = received[1..].windows(2).map(|w| w[1] - w[0]).collect();
    Line {
        batch,
        sampling: "host",
        launch_us: 0,
        steps: STEPS,
        per_token: p50(intervals).expect("intervals"),
        device_step: timeline.exec_p50().expect("steps"),
        gap: timeline.gap_p50().expect("gaps"),
    }
}

fn run() {
    let lib = nrt_sim::library();
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let sim = SimControl::new(lib).expect("nrt-sim");
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = bundle(&rt, dir.path());
    for batch in [1, 4] {
        host_line(&rt, &bundle, batch).print();
        device_line(&rt, &sim, &bundle, batch, false).print();
    }
    device_line(&rt, &sim, &bundle, 1, true).print();
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("generate: run with `cargo bench --bench generate`");
        return;
    }
    std::thread::Builder::new()
        .name("generate".into())
        .stack_size(64 << 20)
        .spawn(run)
        .expect("benchmark thread")
        .join()
        .expect("benchmark thread panicked");
}
