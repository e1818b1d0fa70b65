//! The small decoder as a W-rank tensor-parallel bundle (nrt-sim's bundle writer with
//! `world` W: each rank computes heads / W attention heads and intermediate / W of the
//! MLP, an all-reduce after each, from its own weight shard
//! `weights/tp{rank}_sharded_checkpoint.safetensors`): one `Bundle` per rank (rank r on
//! core r, `nrt_load_collectives`), each rank's `Generator` in its own thread on the
//! same prompt. Every rank gives the greedy tokens of the W = 1 bundle and of the
//! plain-Rust reference (tests/support/decoder_ref.rs, over the full weights), and
//! logits within 1e-5 of the reference's at every step (the first is the prefill's).
//!
//! Runs on the dlopen'ed simulator with four cores.

mod support;

use neuron_rt::generate::{Bundle, BundleError, GenerateOptions, Generator, SamplingMode};
use neuron_rt::{RankSpec, Runtime};
use nrt_sim::decoder::{BundleErrorKind, DecoderBundleOptions, write_bundle};
use support::decoder_ref::{Reference, argmax, rel_err};

const NEW_TOKENS: usize = 32;

/// Four visible cores (the default collective timeout of 30 s: the ranks' threads share
/// a busy machine), set once before this binary's first runtime.
fn four_core_runtime() -> (support::Guard, Runtime) {
    static ENV: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before this binary's first runtime reads the environment (every
    // test of this binary starts here).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_VNC_COUNT", "4") });
    let guard = support::lock();
    (guard, support::runtime())
}

fn options(world: u32) -> DecoderBundleOptions {
    let mut o = DecoderBundleOptions::default();
    o.world = world;
    o
}

fn prompt() -> Vec<u32> {
    "Tensor parallel".bytes().map(u32::from).collect()
}

/// One rank's generation: each token with the logits it was chosen from.
type Steps = Vec<(u32, Vec<f32>)>;

fn run(generator: &Generator, prompt: &[u32], options: &GenerateOptions) -> Steps {
    let mut generation = generator.generate(prompt, options).unwrap();
    let mut steps = Vec::new();
    while let Some(token) = generation.next() {
        steps.push((token.unwrap(), generation.last_logits().to_vec()));
    }
    assert_eq!(steps.len(), NEW_TOKENS);
    steps
}

/// The bundle of `dir` loaded once per rank of `world` (rank r on core r).
fn rank_bundles(rt: &Runtime, dir: &std::path::Path, world: u32) -> Vec<Bundle> {
    (0..world)
        .map(|rank| {
            Bundle::builder(rt)
                .dir(dir)
                .unwrap()
                .rank(RankSpec::new(rank, rank, world).unwrap())
                .build()
                .unwrap()
        })
        .collect()
}

/// Every rank's generation, all ranks at once (their all-reduces wait for each other).
fn run_ranks(bundles: &[Bundle], prompt: &[u32], options: &GenerateOptions) -> Vec<Steps> {
    std::thread::scope(|s| {
        let handles: Vec<_> = bundles
            .iter()
            .enumerate()
            .map(|(rank, b)| {
                s.spawn(move || {
                    let generator = Generator::new(b, rank as u32).unwrap();
                    run(&generator, prompt, options)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The reference's greedy tokens and the logits of each, recomputed from scratch.
fn reference_steps(reference: &Reference, prompt: &[u32]) -> Steps {
    let mut sequence = prompt.to_vec();
    let mut steps = Vec::new();
    for _ in 0..NEW_TOKENS {
        let logits = reference.forward(&sequence).pop().unwrap();
        let token = argmax(&logits);
        steps.push((token, logits));
        sequence.push(token);
    }
    steps
}

fn tokens(steps: &Steps) -> Vec<u32> {
    steps.iter().map(|s| s.0).collect()
}

/// The logits of every step within 1e-5 of the reference's; returns the worst.
fn check_logits(what: &str, steps: &Steps, reference: &Steps) -> f32 {
    let mut worst = 0f32;
    for (step, ((_, got), (_, want))) in steps.iter().zip(reference).enumerate() {
        let err = rel_err(got, want);
        assert!(
            err <= 1e-5,
            "{what}, step {step} ({}): rel err {err} vs the reference",
            if step == 0 { "prefill" } else { "decode" }
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn a_tensor_parallel_bundle_gives_the_tokens_and_logits_of_one_core_on_2_and_4_ranks() {
    let (_g, rt) = four_core_runtime();
    let prompt = prompt();
    let greedy = GenerateOptions::new(NEW_TOKENS as u32);

    // W = 1: the whole model on core 0, and the reference from its full weights.
    let one = tempfile::tempdir().unwrap();
    write_bundle(one.path(), &options(1)).unwrap();
    let reference = Reference::load(&one.path().join("weights.safetensors"));
    let expected = reference_steps(&reference, &prompt);
    let single = Bundle::builder(&rt)
        .dir(one.path())
        .unwrap()
        .build()
        .unwrap();
    let single_steps = run(&Generator::new(&single, 0).unwrap(), &prompt, &greedy);
    assert_eq!(
        tokens(&single_steps),
        tokens(&expected),
        "W = 1 vs reference"
    );
    check_logits("W = 1", &single_steps, &expected);
    let single_state = single.memory().state_bytes_per_core;
    let single_weights = single.memory().weights_bytes_per_core;
    drop(single);

    for world in [2u32, 4] {
        let dir = tempfile::tempdir().unwrap();
        let written = write_bundle(dir.path(), &options(world)).unwrap();
        assert_eq!(written.shards.len(), world as usize);
        // The full weights beside the shards are the W = 1 bundle's.
        assert_eq!(
            std::fs::read(&written.weights).unwrap(),
            std::fs::read(one.path().join("weights.safetensors")).unwrap()
        );
        let bundles = rank_bundles(&rt, dir.path(), world);
        for (rank, b) in bundles.iter().enumerate() {
            assert_eq!(b.cores(), [rank as u32]);
            let m = b.memory();
            // Each rank's cache holds only its heads: 1/W of W = 1's.
            assert_eq!(
                m.state_bytes_per_core * u64::from(world),
                single_state,
                "W = {world}, rank {rank}: state bytes"
            );
            assert!(m.weights_bytes_per_core < single_weights);
            let shape = b.state(rank as u32, "k_l0").unwrap().shape().unwrap();
            assert_eq!(shape, [4, 4 / world, 128, 16]);
        }
        let ranks = run_ranks(&bundles, &prompt, &greedy);
        for (rank, steps) in ranks.iter().enumerate() {
            assert_eq!(
                tokens(steps),
                tokens(&single_steps),
                "W = {world}, rank {rank} vs W = 1"
            );
            assert_eq!(
                tokens(steps),
                tokens(&expected),
                "W = {world}, rank {rank} vs the reference"
            );
            let worst = check_logits(&format!("W = {world}, rank {rank}"), steps, &expected);
            println!("W = {world}, rank {rank}: {NEW_TOKENS} tokens, max rel err {worst:e}");
        }
        // The ranks compute the same bits (each combines every rank's parts itself).
        assert!(ranks.iter().all(|s| *s == ranks[0]), "W = {world}");

        // Sampled on the device (the argmax members, steps pipelined): the same tokens.
        let device = GenerateOptions::new(NEW_TOKENS as u32).mode(SamplingMode::Device);
        for (rank, steps) in run_ranks(&bundles, &prompt, &device).iter().enumerate() {
            assert_eq!(
                tokens(steps),
                tokens(&expected),
                "W = {world}, rank {rank}, device sampling"
            );
        }
    }
}

#[test]
fn a_rank_bundle_loaded_without_a_rank_or_in_another_world_is_refused() {
    let (_g, rt) = four_core_runtime();
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), &options(2)).unwrap();
    let load = |rank: Option<RankSpec>| {
        let mut b = Bundle::builder(&rt).dir(dir.path()).unwrap();
        if let Some(r) = rank {
            b = b.rank(r);
        }
        b.build()
            .expect_err("a W = 2 bundle loads only as a rank of 2")
    };
    // Without a rank (the full weights would not even fit its inputs), as the only rank
    // of a world of 1 (its all-reduces would copy half the model), as a rank of 4 (they
    // would sum the wrong parts): each refused before anything loads.
    for (rank, loaded) in [
        (None, None),
        (Some(RankSpec::new(0, 0, 1).unwrap()), Some(1)),
        (Some(RankSpec::new(1, 1, 4).unwrap()), Some(4)),
    ] {
        let err = load(rank);
        assert_eq!(err.kind(), neuron_rt::ErrorKind::InvalidInput);
        match err.as_bundle() {
            Some(BundleError::WorldMismatch {
                file,
                world,
                loaded: l,
            }) => {
                assert_eq!((*world, *l), (2, loaded));
                assert_eq!(file, &dir.path().join("bundle.json"));
            }
            other => panic!("expected WorldMismatch, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("world of 2 ranks"), "{text}");
    }
    support::assert_no_leaks();
    // A malformed world in the manifest.
    let json = dir.path().join("bundle.json");
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, text.replace("\"world\": 2", "\"world\": 0")).unwrap();
    let err = Bundle::builder(&rt).dir(dir.path()).err().unwrap();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::Manifest { reason, .. }) if reason.contains("tensor_parallel.world")),
        "{err}"
    );
}

#[test]
fn a_world_that_does_not_divide_the_heads_is_refused_naming_the_values() {
    let dir = tempfile::tempdir().unwrap();
    for world in [3u32, 0] {
        let err = write_bundle(dir.path(), &options(world)).unwrap_err();
        assert_eq!(
            err.kind(),
            &BundleErrorKind::World {
                world,
                heads: 4,
                intermediate: 128
            }
        );
        let text = err.to_string();
        for value in [
            format!("world of {world}"),
            "heads 4".into(),
            "intermediate 128".into(),
        ] {
            assert!(text.contains(&value), "{text:?} names {value}");
        }
    }
    // Nothing was written.
    assert!(!dir.path().join("bundle.json").exists());
}
