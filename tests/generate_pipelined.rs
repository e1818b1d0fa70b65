//! Pipelined device-sampled decode (issue 27 item 4) on the small decoder bundle: steps
//! queued on the compute unit, each step's ids input bound to the previous step's
//! `next_ids` output on the device. Greedy on the device equals greedy on the host (the
//! plain-Rust reference of `support/decoder_ref.rs`) at every depth, fused or chained;
//! the caches never travel to the host; steps are really queued (the simulator's device
//! timeline); bad input gets typed errors naming the value.
//!
//! Runs on the dlopen'ed simulator.

mod support;

use std::future::Future;
use std::time::Duration;

use neuron_rt::generate::{
    Bundle, DecodeChain, DecodeOptions, DecodeStart, MAX_DECODE_DEPTH, PipelinedDecode, Timeline,
};
use neuron_rt::{Error, Runtime, SysTraceConfig};
use nrt_sim::decoder::DecoderBundleOptions;
use support::decoder_ref::{Reference, argmax};

/// Decode steps per test (tokens per row after the one sampled from the prefill).
const STEPS: u64 = 32;

struct Rig {
    _dir: tempfile::TempDir,
    bundle: Bundle,
    reference: Reference,
}

fn rig(rt: &Runtime, options: &DecoderBundleOptions) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    nrt_sim::decoder::write_bundle(dir.path(), options).unwrap();
    let bundle = Bundle::builder(rt)
        .dir(dir.path())
        .unwrap()
        .build()
        .unwrap();
    let reference = Reference::load(&dir.path().join("weights.safetensors"));
    Rig {
        _dir: dir,
        bundle,
        reference,
    }
}

fn seeded(seed: u64) -> DecoderBundleOptions {
    let mut options = DecoderBundleOptions::default();
    options.seed = seed;
    options
}

/// Prefills `prompt` (at most 16 tokens) into cache slot `slot` of core 0; returns the
/// last position's logits.
fn prefill(bundle: &Bundle, slot: i32, prompt: &[u32]) -> Vec<f32> {
    let m = bundle.member("prefill_t16").unwrap();
    let mut ids: Vec<i32> = prompt.iter().map(|&t| t as i32).collect();
    let mut pos: Vec<i32> = (0..prompt.len() as i32).collect();
    ids.resize(16, 0);
    pos.resize(16, -1);
    let (inputs, mut outputs) = m.sets(0, &[]).unwrap();
    inputs.get("input_ids").unwrap().write(&ids[..]).unwrap();
    inputs.get("position_ids").unwrap().write(&pos[..]).unwrap();
    inputs.get("seq_ids").unwrap().write(&[slot][..]).unwrap();
    m.model(0).unwrap().execute(&inputs, &mut outputs).unwrap();
    outputs.get("logits").unwrap().to_vec().unwrap()
}

/// Host greedy from the reference: the `n` tokens after `prompt` (argmax, ties to the
/// lowest id), each recomputed over the whole sequence.
fn host_greedy(reference: &Reference, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let logits = reference.forward(&seq).pop().unwrap();
        seq.push(argmax(&logits));
    }
    seq.split_off(prompt.len())
}

/// Prefills each prompt into the slot of its row and returns where the decode starts
/// (the first token: argmax of the prefill's logits).
fn start(bundle: &Bundle, prompts: &[&[u32]]) -> DecodeStart {
    bundle.clear_states().unwrap();
    let mut start = DecodeStart {
        ids: Vec::new(),
        positions: Vec::new(),
        seq_ids: Vec::new(),
    };
    for (row, prompt) in prompts.iter().enumerate() {
        start.ids.push(argmax(&prefill(bundle, row as i32, prompt)));
        start.positions.push(prompt.len() as u32);
        start.seq_ids.push(row as u32);
    }
    start
}

fn bytes(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// Runs the decode to its end: per step, each row's id.
fn run(decode: PipelinedDecode) -> Vec<Vec<u32>> {
    decode.collect::<neuron_rt::Result<Vec<_>>>().unwrap()
}

/// Row `r`'s tokens of a decode's steps.
fn row(steps: &[Vec<u32>], r: usize) -> Vec<u32> {
    steps.iter().map(|s| s[r]).collect()
}

#[test]
fn pipelined_device_decode_at_depths_1_to_3_yields_host_greedy_tokens() {
    let _g = support::lock();
    let rt = support::runtime();
    let rig = rig(&rt, &seeded(11));
    let prompts: Vec<Vec<u32>> = ["the cache ", "Hi", "0123456789abcdef", "pipelined"]
        .iter()
        .map(|p| bytes(p))
        .collect();
    let want: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| host_greedy(&rig.reference, p, STEPS as usize + 1))
        .collect();
    for (member, rows) in [("decode_b1_ids", 1), ("decode_b4_ids", 4)] {
        let chain = DecodeChain::single(&rig.bundle, member).unwrap();
        let refs: Vec<&[u32]> = prompts[..rows].iter().map(Vec::as_slice).collect();
        for depth in 1..=3 {
            let start = start(&rig.bundle, &refs);
            for (r, want) in want[..rows].iter().enumerate() {
                assert_eq!(start.ids[r], want[0], "{member} row {r}: prefill argmax");
            }
            let options = DecodeOptions::new(STEPS).depth(depth);
            let decode = PipelinedDecode::new(&rig.bundle, 0, &chain, &start, options).unwrap();
            assert_eq!((decode.depth(), decode.batch()), (depth, rows));
            let steps = run(decode);
            assert_eq!(steps.len(), STEPS as usize);
            for (r, want) in want[..rows].iter().enumerate() {
                assert_eq!(
                    row(&steps, r),
                    want[1..],
                    "{member} depth {depth} row {r}: device greedy vs host greedy"
                );
            }
        }
    }
}

#[test]
fn the_chain_of_stages_gives_the_tokens_of_the_fused_member() {
    let _g = support::lock();
    let rt = support::runtime();
    let rig = rig(&rt, &seeded(5));
    let prompt = bytes("a chain of four");
    let chain = DecodeChain::stages(&rig.bundle).unwrap();
    assert_eq!(chain.len(), 4);
    let fused = DecodeChain::single(&rig.bundle, "decode_b1_ids").unwrap();
    let want = host_greedy(&rig.reference, &prompt, STEPS as usize + 1);
    let mut results = Vec::new();
    // Depth 3 of a 4-member chain is 12 executions: more than the simulator's queue
    // (8), so steps are also scheduled member by member as the queue drains.
    for (which, chain, depth) in [
        ("fused", &fused, 2),
        ("chain", &chain, 2),
        ("chain", &chain, 3),
    ] {
        let start = start(&rig.bundle, &[&prompt]);
        let options = DecodeOptions::new(STEPS).depth(depth);
        let decode = PipelinedDecode::new(&rig.bundle, 0, chain, &start, options).unwrap();
        let tokens = row(&run(decode), 0);
        assert_eq!(tokens, want[1..], "{which} depth {depth} vs host greedy");
        results.push(tokens);
    }
    assert_eq!(results[0], results[1], "chain vs fused decode_b1_ids");
}

#[test]
fn the_deepest_queue_still_gives_host_greedy_fused_and_chained() {
    let _g = support::lock();
    let rt = support::runtime();
    let rig = rig(&rt, &seeded(9));
    let prompt = bytes("deep");
    let want = host_greedy(&rig.reference, &prompt, 17);
    // Depth 8 fills the simulator's queue of 8 with one member; the chain's 32
    // executions go in as the queue drains.
    for chain in [
        DecodeChain::single(&rig.bundle, "decode_b1_ids").unwrap(),
        DecodeChain::stages(&rig.bundle).unwrap(),
    ] {
        let start = start(&rig.bundle, &[&prompt]);
        let options = DecodeOptions::new(16).depth(MAX_DECODE_DEPTH);
        let decode = PipelinedDecode::new(&rig.bundle, 0, &chain, &start, options).unwrap();
        assert_eq!(row(&run(decode), 0), want[1..], "{chain:?}");
    }
}

#[test]
fn next_step_async_yields_host_greedy_and_a_cancelled_step_ends_the_decode() {
    fn send<T: Send>(_: &T) {}
    let _g = support::lock();
    let rt = support::runtime();
    let mut options = seeded(13);
    options.decode_device_time = Duration::from_millis(1);
    let fast = rig(&rt, &options);
    let prompts = [
        bytes("async"),
        bytes("stream"),
        bytes("of"),
        bytes("tokens"),
    ];
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let want: Vec<Vec<u32>> = refs
        .iter()
        .map(|p| host_greedy(&fast.reference, p, 17))
        .collect();
    let chain = DecodeChain::single(&fast.bundle, "decode_b4_ids").unwrap();
    let start = start(&fast.bundle, &refs);
    let mut decode =
        PipelinedDecode::new(&fast.bundle, 0, &chain, &start, DecodeOptions::new(16)).unwrap();
    send(&decode);
    let executor = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Moved into the future and back out, as a `Stream` would.
    let steps = executor.block_on(async move {
        let mut steps = Vec::new();
        while let Some(ids) = decode.next_step_async().await.unwrap() {
            steps.push(ids);
        }
        steps
    });
    for (r, want) in want.iter().enumerate() {
        assert_eq!(row(&steps, r), want[1..], "row {r}");
    }

    // A future dropped while its step runs (polled once, pending) ends the decode.
    let mut options = seeded(13);
    options.decode_device_time = Duration::from_millis(50);
    let slow = rig(&rt, &options);
    let slow = &slow.bundle;
    let chain = DecodeChain::single(slow, "decode_b1_ids").unwrap();
    let start = DecodeStart {
        ids: vec![1],
        positions: vec![0],
        seq_ids: vec![0],
    };
    let mut decode = PipelinedDecode::new(slow, 0, &chain, &start, DecodeOptions::new(4)).unwrap();
    {
        let mut future = std::pin::pin!(decode.next_step_async());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    let err = decode.next_step().unwrap_err();
    assert!(err.to_string().contains("dropped mid-step"), "{err}");
    drop(decode);
    slow.runtime().compute_unit(0).unwrap().wait_idle().unwrap();
}

#[test]
fn caches_never_reach_the_host_and_steps_are_queued_ahead() {
    let _g = support::lock();
    let rt = support::runtime();
    let mut options = seeded(3);
    // Long steps and a launch cost: on the simulator's device timeline an execution
    // starts at max(previous end, queued + L), so a gap below L between two steps means
    // the second was queued before the first completed. (The steps are longer than the
    // simulator's own compute of a step in a debug build, so that its device timeline
    // keeps up with the wall clock.)
    options.decode_device_time = Duration::from_millis(25);
    let launch = Duration::from_millis(2);
    let rig = rig(&rt, &options);
    let chain = DecodeChain::single(&rig.bundle, "decode_b4_ids").unwrap();
    let prompts = [bytes("one"), bytes("two"), bytes("three"), bytes("four")];
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let control = support::control();
    let states: Vec<(String, neuron_rt::Tensor)> = rig
        .bundle
        .states(0)
        .map(|(n, t)| (n.to_owned(), t.clone()))
        .collect();
    assert_eq!(states.len(), 4);
    let to_host = |t: &neuron_rt::Tensor| {
        control
            .tensor_transfers(t.as_raw().cast())
            .expect("a live tensor")
            .device_to_host_bytes
    };
    let before: Vec<u64> = states.iter().map(|(_, t)| to_host(t)).collect();

    for depth in [1, 3] {
        let start = start(&rig.bundle, &refs);
        control.set_launch_cost(launch).unwrap();
        let trace = rt.sys_trace(&SysTraceConfig::new()).unwrap();
        let options = DecodeOptions::new(8).depth(depth);
        let mut decode = PipelinedDecode::new(&rig.bundle, 0, &chain, &start, options).unwrap();
        let unit = rt.compute_unit(0).unwrap();
        let mut most = unit.in_flight().unwrap();
        while let Some(ids) = decode.next_step().unwrap() {
            assert_eq!(ids.len(), 4);
            most = most.max(unit.in_flight().unwrap());
            assert!(decode.queued() <= depth, "{decode:?}");
        }
        decode.finish().unwrap();
        let events = trace.fetch().unwrap();
        trace.stop().unwrap();
        control.set_launch_cost(Duration::ZERO).unwrap();
        let timeline = Timeline::from_events(&events, 0).only(|n| n == "decode_b4_ids");
        assert_eq!(timeline.spans().len(), 8, "depth {depth}");
        let g = timeline.gaps();
        println!("depth {depth}: most in flight {most}, device gaps {g:?}");
        if depth == 1 {
            // Each step is scheduled once the previous one completed: it pays L.
            assert!(g.iter().all(|&gap| gap >= launch), "depth 1: {g:?}");
        } else {
            assert!(most >= 2, "depth {depth}: at most {most} step(s) in flight");
            // Steps 1 and 2 were queued with step 0, before it completed: each starts
            // less than L after its predecessor ended (later steps too, unless the
            // host fell behind: the machine may be loaded, so they are not asserted).
            let ahead = g.iter().filter(|&&gap| gap < launch).count();
            assert!(
                ahead >= 2,
                "depth {depth}: steps were not queued ahead: gaps {g:?}"
            );
        }
    }
    for ((name, t), before) in states.iter().zip(before) {
        assert_eq!(to_host(t), before, "{name}: device-to-host bytes");
        assert_eq!(before, 0, "{name}: device-to-host bytes");
    }
}

fn invalid(result: neuron_rt::Result<PipelinedDecode>) -> (String, String) {
    match result {
        Err(Error::InvalidArgument { argument, reason }) => (argument.to_string(), reason),
        Err(other) => panic!("expected InvalidArgument, got {other}"),
        Ok(decode) => panic!("expected an error, got {decode:?}"),
    }
}

#[test]
fn bad_depth_batch_positions_and_members_are_typed_errors_naming_the_value() {
    let _g = support::lock();
    let rt = support::runtime();
    let rig = rig(&rt, &DecoderBundleOptions::default());
    let b = &rig.bundle;
    let chain = DecodeChain::single(b, "decode_b4_ids").unwrap();
    let good = DecodeStart {
        ids: vec![1, 2, 3, 4],
        positions: vec![0, 1, 2, 3],
        seq_ids: vec![0, 1, 2, 3],
    };
    let new = |start: &DecodeStart, options| PipelinedDecode::new(b, 0, &chain, start, options);

    for depth in [0, MAX_DECODE_DEPTH + 1] {
        let (name, reason) = invalid(new(&good, DecodeOptions::new(4).depth(depth)));
        assert_eq!(name, "depth");
        assert!(
            reason.contains(&format!("{depth} steps queued")),
            "{reason}"
        );
        assert!(reason.contains(&MAX_DECODE_DEPTH.to_string()), "{reason}");
    }
    let mut one_row = good.clone();
    one_row.ids.truncate(1);
    let (name, reason) = invalid(new(&one_row, DecodeOptions::new(4)));
    assert_eq!(name, "start.ids");
    assert!(
        reason.contains("1 values for a chain of batch 4"),
        "{reason}"
    );
    let mut short_slots = good.clone();
    short_slots.seq_ids.pop();
    assert_eq!(
        invalid(new(&short_slots, DecodeOptions::new(4))).0,
        "start.seq_ids"
    );

    // Position 120 of row 2 + 16 steps passes the context of 128.
    let mut late = good.clone();
    late.positions[2] = 120;
    let (name, reason) = invalid(new(&late, DecodeOptions::new(16)));
    assert_eq!(name, "steps");
    assert!(
        reason.contains("from position 120 (row 2) reach position 135")
            && reason.contains("context of 128"),
        "{reason}"
    );
    // Exactly up to the last position is fine.
    new(&late, DecodeOptions::new(8)).unwrap().finish().unwrap();

    let mut huge = good.clone();
    huge.ids[3] = u32::MAX;
    let (name, reason) = invalid(new(&huge, DecodeOptions::new(1)));
    assert_eq!(name, "start.ids");
    assert!(
        reason.contains("row 3") && reason.contains("4294967295"),
        "{reason}"
    );

    let (name, reason) = invalid(PipelinedDecode::new(
        b,
        3,
        &chain,
        &good,
        DecodeOptions::new(1),
    ));
    assert_eq!(name, "core");
    assert!(reason.contains("not on core 3"), "{reason}");

    // Members that cannot make a device-sampled step.
    let err = DecodeChain::single(b, "decode_b4_logits").unwrap_err();
    assert!(
        err.to_string().contains("decode_b4_logits") && err.to_string().contains("logits"),
        "{err}"
    );
    let err = DecodeChain::single(b, "no_such_member").unwrap_err();
    assert!(err.to_string().contains("no_such_member"), "{err}");
    let err = DecodeChain::new(b, ["chain_layer_0", "chain_head_ids"]).unwrap_err();
    assert!(err.to_string().contains("chain_layer_0"), "{err}");
    let err = DecodeChain::new(b, ["decode_b1_ids", "decode_b4_ids"]).unwrap_err();
    assert!(err.to_string().contains("decode_b4_ids"), "{err}");

    // Zero steps: nothing scheduled, nothing yielded.
    let mut none = new(&good, DecodeOptions::new(0)).unwrap();
    assert!(none.next_step().unwrap().is_none());
    assert_eq!(none.queued(), 0);
}
