//! The decode loop (`generate::Generator`) on the small decoder bundle: cached decode
//! equals full recomputation (the plain-Rust reference of `support/decoder_ref.rs`, and
//! the bundle's own prefill over the whole sequence), the cache never copied to the
//! host, buckets, device sampling equal to host greedy, stop conditions, the async
//! stream, batches, and the unhappy paths (typed errors, a unit dying mid-generation).
//!
//! Runs on the dlopen'ed simulator.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use neuron_rt::generate::{
    Bundle, BundleError, FinishReason, GenerateOptions, Generator, SamplingMode, SamplingParams,
};
use neuron_rt::{Error, Runtime};
use support::decoder_ref::{Reference, argmax, rel_err};

fn bundle(rt: &Runtime) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    nrt_sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    let bundle = Bundle::builder(rt)
        .dir(dir.path())
        .unwrap()
        .build()
        .unwrap();
    (dir, bundle)
}

fn ids(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

/// Device-to-host bytes of every state tensor of the bundle on `core`, from the
/// simulator's per-tensor counters.
fn cache_host_bytes(bundle: &Bundle, core: u32) -> u64 {
    bundle
        .states(core)
        .map(|(_, t)| {
            support::control()
                .tensor_transfers(t.as_raw())
                .expect("a live tensor")
                .device_to_host_bytes
        })
        .sum()
}

#[test]
fn cached_decode_equals_full_recomputation_for_32_steps() {
    let _g = support::lock();
    let rt = support::runtime();
    let (dir, bundle) = bundle(&rt);
    let reference = Reference::load(&dir.path().join("weights.safetensors"));
    let generator = Generator::new(&bundle, 0).unwrap();
    let prompt = ids("Hello, world");
    let mut generation = generator
        .generate(&prompt, &GenerateOptions::new(32))
        .unwrap();
    let mut sequence = prompt.clone();
    let mut worst = 0f32;
    for step in 0..32 {
        let token = generation.next().expect("32 tokens").unwrap();
        let cached = generation.last_logits().to_vec();
        assert_eq!(cached.len(), 256);
        // Against the reference over the whole sequence so far (no cache).
        let full = reference.forward(&sequence);
        let expected = full.last().unwrap();
        let err = rel_err(&cached, expected);
        assert!(err <= 1e-5, "step {step}: rel err {err} vs the reference");
        assert_eq!(token, argmax(expected), "step {step}: greedy token");
        assert_eq!(token, argmax(&cached));
        // Against re-running the bundle's prefill on the whole sequence (slot 1).
        let mut again = generator
            .generate(&sequence, &GenerateOptions::new(1))
            .unwrap();
        assert_eq!(again.next().unwrap().unwrap(), token, "step {step}");
        let err2 = rel_err(&cached, again.last_logits());
        assert!(err2 <= 1e-5, "step {step}: rel err {err2} vs prefill");
        worst = worst.max(err).max(err2);
        sequence.push(token);
    }
    assert!(generation.next().is_none());
    assert_eq!(generation.finish_reason(), Some(&FinishReason::Length));
    assert_eq!(generation.tokens(), &sequence[prompt.len()..]);
    println!("cached vs recompute: 32 steps, max rel err {worst:e}");
}

#[test]
fn the_cache_is_never_copied_to_the_host_and_each_step_moves_only_ids_and_logits() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let before = cache_host_bytes(&bundle, 0);
    for mode in [SamplingMode::Host, SamplingMode::Device] {
        let options = GenerateOptions::new(40).mode(mode);
        let tokens: Vec<u32> = generator
            .generate(&ids("The cache stays"), &options)
            .unwrap()
            .collect::<neuron_rt::Result<_>>()
            .unwrap();
        assert_eq!(tokens.len(), 40, "{mode}");
    }
    assert_eq!(cache_host_bytes(&bundle, 0) - before, 0);
    // The counter does count a host copy of a cache.
    let k0 = bundle.state(0, "k_l0").unwrap();
    let _ = k0.to_vec::<f32>().unwrap();
    assert_eq!(cache_host_bytes(&bundle, 0) - before, k0.size() as u64);
    // The decode member's logits output: 256 f32 per host-sampled step come back.
    let logits = bundle.member("decode_b1_logits").unwrap();
    assert_eq!(
        logits
            .user_outputs()
            .map(|o| (o.name.as_str(), o.size))
            .collect::<Vec<_>>(),
        [("logits", 256 * 4)]
    );
}

#[test]
fn device_greedy_gives_the_tokens_of_host_greedy() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let run = |mode| {
        generator
            .generate(
                &ids("Once upon a time"),
                &GenerateOptions::new(48).mode(mode),
            )
            .unwrap()
            .collect::<neuron_rt::Result<Vec<u32>>>()
            .unwrap()
    };
    let host = run(SamplingMode::Host);
    assert_eq!(host.len(), 48);
    assert_eq!(run(SamplingMode::Device), host);
}

#[test]
fn prompts_pick_the_smallest_prefill_bucket_and_pad_exactly() {
    let _g = support::lock();
    let rt = support::runtime();
    let (dir, bundle) = bundle(&rt);
    let reference = Reference::load(&dir.path().join("weights.safetensors"));
    let generator = Generator::new(&bundle, 0).unwrap();
    // 1, 16 (exactly the small bucket), 17 (the large one, 47 pads) and 64 tokens.
    for len in [1usize, 16, 17, 64] {
        let prompt: Vec<u32> = (0..len).map(|i| (i * 7 % 256) as u32).collect();
        let member = bundle
            .bucket_for(
                &neuron_rt::generate::MemberKind::Prefill,
                None,
                1,
                len as u32,
            )
            .unwrap();
        assert_eq!(
            member.name(),
            if len <= 16 {
                "prefill_t16"
            } else {
                "prefill_t64"
            }
        );
        let mut g = generator
            .generate(&prompt, &GenerateOptions::new(2))
            .unwrap();
        let first = g.next().unwrap().unwrap();
        let full = reference.forward(&prompt);
        let err = rel_err(g.last_logits(), full.last().unwrap());
        assert!(err <= 1e-5, "len {len}: rel err {err}");
        assert_eq!(first, argmax(full.last().unwrap()));
    }
    // 65 tokens: no bucket; the error names the largest one.
    let err = generator
        .generate(&[1; 65], &GenerateOptions::new(1))
        .unwrap_err();
    match err.as_bundle() {
        Some(BundleError::NoBucket {
            seq_len: 65,
            largest: Some(b),
            ..
        }) => assert_eq!((b.batch, b.seq_len), (1, 64)),
        other => panic!("{other:?}: {err}"),
    }
    assert!(
        err.to_string()
            .contains("largest bucket is batch 1 x 64 tokens"),
        "{err}"
    );
}

#[test]
fn a_batch_decodes_in_the_smallest_bucket_and_each_row_matches_its_own_generation() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let prompts = [ids("abc"), ids("Hello there"), ids("x")];
    let singles: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            generator
                .generate(p, &GenerateOptions::new(20))
                .unwrap()
                .collect::<neuron_rt::Result<_>>()
                .unwrap()
        })
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let mut batch = generator
        .generate_batch(&refs, &GenerateOptions::new(20))
        .unwrap();
    let slots: Vec<u32> = (0..3).map(|r| batch.slot(r).unwrap()).collect();
    assert_eq!(slots, [0, 1, 2], "one slot per row");
    let mut calls = 0;
    for step in batch.by_ref() {
        let step = step.unwrap();
        calls += 1;
        // Prefills give one row each; decode steps every running row (3: the b4 bucket).
        assert!(step.len() == 1 || step.len() == 3, "{step:?}");
    }
    assert_eq!(calls, 3 + 19);
    for (r, single) in singles.iter().enumerate() {
        assert_eq!(batch.tokens(r), single.as_slice(), "row {r}");
        assert_eq!(batch.finish_reason(r), Some(&FinishReason::Length));
    }
}

#[test]
fn stop_strings_eos_the_budget_and_the_context_end_a_sequence() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let prompt = ids("Stop here");
    let greedy: Vec<u32> = generator
        .generate(&prompt, &GenerateOptions::new(30))
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    // A stop string of the 5th and 6th tokens' bytes ends after the 6th.
    let stop = [greedy[4] as u8, greedy[5] as u8];
    let first = greedy
        .windows(2)
        .position(|w| w == [greedy[4], greedy[5]])
        .unwrap();
    let mut g = generator
        .generate(&prompt, &GenerateOptions::new(30).stop_string(stop))
        .unwrap();
    let got: Vec<u32> = g.by_ref().collect::<neuron_rt::Result<_>>().unwrap();
    assert_eq!(got, greedy[..first + 2]);
    assert_eq!(
        g.finish_reason(),
        Some(&FinishReason::StopString(stop.to_vec()))
    );
    // EOS: the first occurrence of the 3rd token's id ends it (that token included).
    let eos = greedy[2];
    let at = greedy.iter().position(|&t| t == eos).unwrap();
    let mut g = generator
        .generate(&prompt, &GenerateOptions::new(30).eos(eos))
        .unwrap();
    assert_eq!(
        g.by_ref().collect::<neuron_rt::Result<Vec<_>>>().unwrap(),
        greedy[..=at]
    );
    assert_eq!(g.finish_reason(), Some(&FinishReason::Eos(eos)));
    // A budget of 0 yields nothing; the context (128) ends a long generation.
    let mut g = generator
        .generate(&prompt, &GenerateOptions::new(0))
        .unwrap();
    assert!(g.next().is_none());
    assert_eq!(g.finish_reason(), Some(&FinishReason::Length));
    let long = vec![65u32; 60];
    let mut g = generator
        .generate(&long, &GenerateOptions::new(1000))
        .unwrap();
    let n = g.by_ref().inspect(|t| assert!(t.is_ok(), "{t:?}")).count();
    assert_eq!(
        n,
        128 - 60 + 1,
        "the last token is at position 128, never fed"
    );
    assert_eq!(g.finish_reason(), Some(&FinishReason::ContextFull));
}

#[test]
fn seeded_sampling_repeats_and_differs_from_greedy() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let run = |params| {
        generator
            .generate(&ids("Seed"), &GenerateOptions::new(32).sampling(params))
            .unwrap()
            .collect::<neuron_rt::Result<Vec<u32>>>()
            .unwrap()
    };
    let hot = SamplingParams {
        temperature: 1.5,
        top_k: 0,
        top_p: 1.0,
        seed: 42,
    };
    assert_eq!(run(hot), run(hot));
    assert_ne!(run(hot), run(SamplingParams::greedy()));
    assert_ne!(run(hot), run(SamplingParams { seed: 43, ..hot }));
    // Device sampling is the argmax: other parameters are refused.
    let err = generator
        .generate(
            &ids("x"),
            &GenerateOptions::new(4)
                .sampling(hot)
                .mode(SamplingMode::Device),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "sampling",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_prompts_and_full_slots_get_typed_errors() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let err = generator
        .generate(&[], &GenerateOptions::new(4))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "prompt",
                ..
            }
        ),
        "{err}"
    );
    let err = generator
        .generate(&[1, 2, 300], &GenerateOptions::new(4))
        .unwrap_err();
    match err.as_bundle() {
        Some(BundleError::TokenOutOfRange {
            id: 300,
            vocab: 256,
            origin,
        }) => {
            assert_eq!(origin, "prompt 0, position 2")
        }
        other => panic!("{other:?}"),
    }
    let err = Generator::new(&bundle, 5).unwrap_err();
    assert!(err.to_string().contains("not on core 5"), "{err}");
    // Four slots: a fifth running generation is refused until one is dropped.
    let held: Vec<_> = (0..4)
        .map(|_| generator.generate(&[1], &GenerateOptions::new(4)).unwrap())
        .collect();
    let err = generator
        .generate(&[1], &GenerateOptions::new(4))
        .unwrap_err();
    assert!(
        matches!(
            err.as_bundle(),
            Some(BundleError::NoFreeSlot {
                core: 0,
                slots: 4,
                wanted: 1
            })
        ),
        "{err}"
    );
    drop(held);
    generator.generate(&[1], &GenerateOptions::new(4)).unwrap();
    // Five rows: more than the largest decode bucket (4) and the slots.
    let five: Vec<&[u32]> = vec![&[1]; 5];
    let err = generator
        .generate_batch(&five, &GenerateOptions::new(4))
        .unwrap_err();
    assert!(
        matches!(
            err.as_bundle(),
            Some(BundleError::NoBucket { batch: 5, .. })
        ),
        "{err}"
    );
}

#[test]
fn a_unit_dying_mid_generation_fails_that_generation_and_leaks_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let live = support::control().counters().live_objects();
    // The 6th execution on core 0 fails with NRT_EXEC_BAD_INPUT (1003): prefill + 4
    // decode steps succeed, the 5th decode step fails.
    support::control()
        .inject_faults("exec:vnc=0:nth=6:status=1003")
        .unwrap();
    let mut g = generator
        .generate(&ids("Doomed"), &GenerateOptions::new(20))
        .unwrap();
    let ok = AtomicUsize::new(0);
    let mut error = None;
    for t in g.by_ref() {
        match t {
            Ok(_) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert_eq!(ok.load(Ordering::Relaxed), 5);
    let error = error.expect("the failed execution's error");
    assert_eq!(
        error.status(),
        Some(neuron_rt::NrtStatus::from_raw(1003)),
        "{error}"
    );
    assert!(g.next().is_none(), "nothing after the error");
    assert_eq!(g.finish_reason(), None);
    drop(g);
    support::control().clear_faults();
    // The slot is free again, the next generation runs, and no handle leaked.
    let tokens = generator
        .generate(&ids("Doomed"), &GenerateOptions::new(3))
        .unwrap()
        .count();
    assert_eq!(tokens, 3);
    assert_eq!(support::control().counters().live_objects(), live);
}

#[test]
fn the_async_stream_yields_the_tokens_of_the_iterator() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let options = GenerateOptions::new(24);
    let expected: Vec<u32> = generator
        .generate(&ids("Async"), &options)
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    let stream = generator.stream(&ids("Async"), &options).unwrap();
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt2.block_on(async move {
        let mut stream = std::pin::pin!(stream);
        let mut got = Vec::new();
        while let Some(t) = std::future::poll_fn(|cx| stream.as_mut().poll_next_token(cx)).await {
            got.push(t.unwrap());
        }
        (got, stream.finish_reason().cloned())
    });
    assert_eq!(got.0, expected);
    assert_eq!(got.1, Some(FinishReason::Length));
}

#[test]
fn a_compute_unit_dying_mid_stream_fails_the_stream_with_its_error() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let live = support::control().counters().live_objects();
    let stream = generator
        .stream(&ids("Doomed"), &GenerateOptions::new(20))
        .unwrap();
    // The third request on core 0's compute queue kills the unit: prefill and one
    // decode step give two tokens, then the stream ends with the unit's error.
    support::control()
        .inject_faults("xu:vnc=0:type=compute:queue=0:nth=3")
        .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, err, after) = tokio.block_on(async move {
        let mut stream = std::pin::pin!(stream);
        let (mut ok, mut err) = (0, None);
        while let Some(t) = std::future::poll_fn(|cx| stream.as_mut().poll_next_token(cx)).await {
            match t {
                Ok(_) => ok += 1,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let after = std::future::poll_fn(|cx| stream.as_mut().poll_next_token(cx)).await;
        (ok, err, after.is_none())
    });
    assert_eq!(ok, 2);
    let err = err.expect("the unit's error");
    assert!(
        matches!(err, Error::Unrecoverable { .. } | Error::Nrt { .. }),
        "{err:?}"
    );
    assert!(after, "nothing after the error");
    support::control().clear_faults();
    drop(tokio);
    assert_eq!(
        support::control().counters().live_objects(),
        live,
        "nothing leaked"
    );
}

#[test]
fn device_sampling_pipelined_or_step_by_step_matches_host_greedy_for_batches_and_stops() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let prompts = [ids("one"), ids("two two"), ids("three"), ids("four 4")];
    for rows in [4usize, 3] {
        let refs: Vec<&[u32]> = prompts[..rows].iter().map(Vec::as_slice).collect();
        let run = |options: GenerateOptions| {
            let mut batch = generator.generate_batch(&refs, &options).unwrap();
            for step in batch.by_ref() {
                step.unwrap();
            }
            (0..rows)
                .map(|r| batch.tokens(r).to_vec())
                .collect::<Vec<_>>()
        };
        let host = run(GenerateOptions::new(24));
        for depth in [0, 1, 3] {
            let device = run(GenerateOptions::new(24)
                .mode(SamplingMode::Device)
                .depth(depth));
            assert_eq!(device, host, "rows {rows}, depth {depth}");
        }
    }
    // A stop string ends a pipelined device generation where it ends a host one.
    let host: Vec<u32> = generator
        .generate(&ids("Stop"), &GenerateOptions::new(40))
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    let stop = [host[9] as u8];
    let end = host.iter().position(|&t| t == host[9]).unwrap();
    let mut g = generator
        .generate(
            &ids("Stop"),
            &GenerateOptions::new(40)
                .mode(SamplingMode::Device)
                .stop_string(stop),
        )
        .unwrap();
    let got: Vec<u32> = g.by_ref().collect::<neuron_rt::Result<_>>().unwrap();
    assert_eq!(got, host[..=end]);
    assert_eq!(
        g.finish_reason(),
        Some(&FinishReason::StopString(stop.to_vec()))
    );
    drop(g);
    // Its queued steps were dropped with it; the slot serves the next generation.
    let again: Vec<u32> = generator
        .generate(
            &ids("Stop"),
            &GenerateOptions::new(40).mode(SamplingMode::Device),
        )
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    assert_eq!(again, host);
}
