//! Continuous batching (`generate::Batcher`) on the small decoder bundle: chunked
//! prefill equals the reference, batched greedy outputs equal each prompt generated
//! alone, sequences join and leave at step boundaries, cancellation and slow clients
//! free their slots, bad requests and overload get typed errors, a dying unit ends only
//! its core's sequences, and 10,000 cancelled requests leak nothing.
//!
//! Runs on the dlopen'ed simulator.

mod support;

use std::time::Duration;

use neuron_rt::generate::{
    BatchError, Batcher, BatchingOptions, Bundle, FinishReason, GenerateOptions, Generated,
    Generator, SamplingMode, SamplingParams,
};
use neuron_rt::{Error, Runtime};
use support::decoder_ref::{Reference, argmax};

fn bundle(rt: &Runtime, cores: &[u32]) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    nrt_sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    let bundle = Bundle::builder(rt)
        .dir(dir.path())
        .unwrap()
        .cores(cores.iter().copied())
        .build()
        .unwrap();
    (dir, bundle)
}

fn prompt(i: usize) -> Vec<u32> {
    // Lengths 3 to 47: one to three prefill chunks of 16.
    (0..(3 + (i * 11) % 45))
        .map(|j| ((i * 31 + j * 7) % 256) as u32)
        .collect()
}

/// Greedy tokens of each prompt generated alone by the `Generator` (one at a time).
fn alone(bundle: &Bundle, prompts: &[Vec<u32>], n: u32) -> Vec<Vec<u32>> {
    let generator = Generator::new(bundle, bundle.cores()[0]).unwrap();
    prompts
        .iter()
        .map(|p| {
            generator
                .generate(p, &GenerateOptions::new(n))
                .unwrap()
                .collect::<neuron_rt::Result<_>>()
                .unwrap()
        })
        .collect()
}

fn idle(batcher: &Batcher) -> bool {
    batcher
        .metrics()
        .iter()
        .all(|m| m.running == 0 && m.waiting == 0)
}

fn wait_idle(batcher: &Batcher) {
    for _ in 0..500 {
        if idle(batcher) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not idle: {:?}", batcher.metrics());
}

#[test]
fn chunked_prefill_of_a_long_prompt_equals_the_reference() {
    let _g = support::lock();
    let rt = support::runtime();
    let (dir, bundle) = bundle(&rt, &[0]);
    let reference = Reference::load(&dir.path().join("weights.safetensors"));
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    // 40 tokens: chunks of 16, 16 and 8 through prefill_t16 at positions 0, 16, 32.
    let p: Vec<u32> = (0..40).map(|j| (j * 13 % 256) as u32).collect();
    let (tokens, finish) = batcher
        .submit(&p, &GenerateOptions::new(6).mode(SamplingMode::Host))
        .unwrap()
        .collect_blocking()
        .unwrap();
    let mut seq = p.clone();
    for &t in &tokens {
        assert_eq!(t, argmax(reference.forward(&seq).last().unwrap()));
        seq.push(t);
    }
    let finish = finish.unwrap();
    assert_eq!(finish.reason, FinishReason::Length);
    assert_eq!((finish.prompt_tokens, finish.completion_tokens), (40, 6));
    assert!(batcher.metrics()[0].prefill_chunks >= 3);
}

#[test]
fn batched_greedy_outputs_equal_each_prompt_generated_alone_on_two_cores() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0, 1]);
    let prompts: Vec<Vec<u32>> = (0..12).map(prompt).collect();
    let expected = alone(&bundle, &prompts, 20);
    for device_sampling in [true, false] {
        let batcher = Batcher::new(
            &bundle,
            BatchingOptions::default().device_sampling(device_sampling),
        )
        .unwrap();
        // Twelve requests at once: 8 slots on 2 cores, 4 wait and join as others leave.
        let streams: Vec<_> = prompts
            .iter()
            .map(|p| batcher.submit(p, &GenerateOptions::new(20)).unwrap())
            .collect();
        for (i, s) in streams.into_iter().enumerate() {
            let (tokens, finish) = s.collect_blocking().unwrap();
            assert_eq!(
                tokens, expected[i],
                "request {i}, device sampling {device_sampling}"
            );
            assert_eq!(finish.unwrap().reason, FinishReason::Length);
        }
        wait_idle(&batcher);
        let m = batcher.metrics();
        assert_eq!(m.iter().map(|c| c.finished).sum::<u64>(), 12);
        assert!(m.iter().all(|c| c.admitted > 0), "both cores served: {m:?}");
        assert_eq!(m.iter().map(|c| c.tokens).sum::<u64>(), 12 * 20);
    }
}

#[test]
fn sequences_with_their_own_budgets_stops_and_sampling_join_and_leave() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0]);
    let p = prompt(5);
    let greedy = alone(&bundle, std::slice::from_ref(&p), 30).remove(0);
    let sampled = SamplingParams {
        temperature: 1.2,
        top_k: 20,
        top_p: 0.9,
        seed: 9,
    };
    let expected_sampled: Vec<u32> = Generator::new(&bundle, 0)
        .unwrap()
        .generate(&p, &GenerateOptions::new(30).sampling(sampled))
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    let short = batcher.submit(&p, &GenerateOptions::new(3)).unwrap();
    let long = batcher.submit(&p, &GenerateOptions::new(30)).unwrap();
    let hot = batcher
        .submit(&p, &GenerateOptions::new(30).sampling(sampled))
        .unwrap();
    let stop = [greedy[7] as u8];
    let at = greedy.iter().position(|&t| t == greedy[7]).unwrap();
    let stopped = batcher
        .submit(&p, &GenerateOptions::new(30).stop_string(stop))
        .unwrap();
    let (t, f) = short.collect_blocking().unwrap();
    assert_eq!(
        (t.as_slice(), f.unwrap().reason),
        (&greedy[..3], FinishReason::Length)
    );
    // A request joining while the others run.
    let late = batcher.submit(&p, &GenerateOptions::new(10)).unwrap();
    assert_eq!(long.collect_blocking().unwrap().0, greedy);
    assert_eq!(hot.collect_blocking().unwrap().0, expected_sampled);
    let (t, f) = stopped.collect_blocking().unwrap();
    assert_eq!(t, greedy[..=at]);
    assert_eq!(f.unwrap().reason, FinishReason::StopString(stop.to_vec()));
    assert_eq!(late.collect_blocking().unwrap().0, greedy[..10]);
    // A budget of 0: an ended stream.
    let (t, f) = batcher
        .submit(&p, &GenerateOptions::new(0))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert!(t.is_empty());
    assert_eq!(f.unwrap().completion_tokens, 0);
}

#[test]
fn the_async_stream_yields_tokens_then_the_finish() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0]);
    let p = prompt(2);
    let expected = alone(&bundle, std::slice::from_ref(&p), 12).remove(0);
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    let stream = batcher.submit(&p, &GenerateOptions::new(12)).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let items = tokio.block_on(async move {
        let mut stream = std::pin::pin!(stream);
        let mut items = Vec::new();
        while let Some(item) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(stream.as_mut(), cx)).await
        {
            items.push(item.unwrap());
        }
        items
    });
    let tokens: Vec<u32> = items
        .iter()
        .filter_map(|i| match i {
            Generated::Token(t) => Some(*t),
            Generated::Finished(_) => None,
        })
        .collect();
    assert_eq!(tokens, expected);
    assert!(matches!(items.last(), Some(Generated::Finished(f)) if f.completion_tokens == 12));
}

#[test]
fn dropped_and_stalled_streams_free_their_slots_and_10000_cancels_leak_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0, 1]);
    let live = support::control().counters().live_objects();
    {
        let options = BatchingOptions::default()
            .buffer(4)
            .stall_timeout(Duration::from_millis(200))
            .max_waiting(10_000);
        let batcher = Batcher::new(&bundle, options).unwrap();
        // A client that never reads: paused at 4 items, then cancelled with Stalled,
        // while another sequence runs to its end.
        let mut slow = batcher
            .submit(&prompt(1), &GenerateOptions::new(100))
            .unwrap();
        let (fast, _) = batcher
            .submit(&prompt(2), &GenerateOptions::new(50))
            .unwrap()
            .collect_blocking()
            .unwrap();
        assert_eq!(fast.len(), 50);
        std::thread::sleep(Duration::from_millis(400));
        let mut items = Vec::new();
        while let Some(item) = slow.next_blocking() {
            items.push(item);
        }
        assert_eq!(items.len(), 5, "4 buffered tokens, then the error");
        let err = items.pop().unwrap().unwrap_err();
        assert!(
            matches!(err.as_batch(), Some(BatchError::Stalled { buffer: 4, .. })),
            "{err}"
        );
        // 10,000 requests dropped: at once, after one token, or while waiting.
        for i in 0..10_000usize {
            let mut s = batcher
                .submit(&prompt(i % 7), &GenerateOptions::new(8))
                .unwrap();
            if i % 100 == 0 {
                assert!(matches!(s.next_blocking(), Some(Ok(Generated::Token(_)))));
            }
            drop(s);
        }
        wait_idle(&batcher);
        let m = batcher.metrics();
        // Every request ended exactly once: the slow one failed (stalled), the fast one
        // finished, the 10,000 finished or were cancelled (in a slot or waiting).
        let ended: u64 = m.iter().map(|c| c.finished + c.failed + c.cancelled).sum();
        assert_eq!(ended, 10_002, "{m:?}");
        assert_eq!(m.iter().map(|c| c.failed).sum::<u64>(), 1);
        assert!(m.iter().map(|c| c.cancelled).sum::<u64>() >= 9_000, "{m:?}");
        // Every slot is free again: a full batch runs.
        let streams: Vec<_> = (0..8)
            .map(|i| {
                batcher
                    .submit(&prompt(i), &GenerateOptions::new(4))
                    .unwrap()
            })
            .collect();
        for s in streams {
            assert_eq!(s.collect_blocking().unwrap().0.len(), 4);
        }
    }
    assert_eq!(
        support::control().counters().live_objects(),
        live,
        "nothing leaked"
    );
    // The slots went back to the bundle: a generator gets one.
    Generator::new(&bundle, 0)
        .unwrap()
        .generate(&[1], &GenerateOptions::new(1))
        .unwrap();
}

#[test]
fn bad_requests_and_overload_are_refused_with_typed_errors() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0]);
    let held = Generator::new(&bundle, 0)
        .unwrap()
        .generate(&[1], &GenerateOptions::new(1))
        .unwrap();
    let err = Batcher::new(&bundle, BatchingOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cache slots are in use"), "{err}");
    drop(held);
    let batcher = Batcher::new(&bundle, BatchingOptions::default().max_waiting(1)).unwrap();
    let refuse = |p: &[u32], o: GenerateOptions| batcher.submit(p, &o).unwrap_err();
    let e = refuse(&[], GenerateOptions::new(4));
    assert!(matches!(e.as_batch(), Some(BatchError::EmptyPrompt)), "{e}");
    let e = refuse(&[1, 256], GenerateOptions::new(4));
    assert!(
        matches!(
            e.as_batch(),
            Some(BatchError::BadToken {
                index: 1,
                id: 256,
                vocab: 256
            })
        ),
        "{e}"
    );
    let e = refuse(&[1; 100], GenerateOptions::new(29));
    assert!(
        matches!(
            e.as_batch(),
            Some(BatchError::TooLong {
                prompt: 100,
                max_new_tokens: 29,
                context: 128
            })
        ),
        "{e}"
    );
    let e = refuse(
        &[1],
        GenerateOptions::new(4).sampling(SamplingParams::temperature(-1.0, 0)),
    );
    assert!(
        matches!(e.as_batch(), Some(BatchError::BadSampling { .. })),
        "{e}"
    );
    // Four slots and one waiting place: the sixth request is refused, not queued.
    let held: Vec<_> = (0..5)
        .map(|i| {
            batcher
                .submit(&prompt(i), &GenerateOptions::new(60))
                .unwrap()
        })
        .collect();
    let e = refuse(&prompt(9), GenerateOptions::new(4));
    assert!(
        matches!(e.as_batch(), Some(BatchError::Overloaded { limit: 1 })),
        "{e}"
    );
    assert!(matches!(e, Error::Batching(_)));
    drop(held);
}

#[test]
fn a_dying_unit_ends_its_cores_sequences_and_the_other_core_serves_on() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0, 1]);
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    // Core 0's 5th execution fails with a hardware error (fatal): its sequences end
    // with the error and core 0 takes no more; core 1 goes on.
    support::control()
        .inject_faults("exec:vnc=0:nth=5:status=1202")
        .unwrap();
    let streams: Vec<_> = (0..8)
        .map(|i| {
            batcher
                .submit(&prompt(i), &GenerateOptions::new(30))
                .unwrap()
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for s in streams {
        match s.collect_blocking() {
            Ok((t, _)) => {
                assert_eq!(t.len(), 30);
                ok += 1;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.as_batch(),
                        Some(BatchError::Step {
                            core: 0,
                            fatal: true,
                            ..
                        })
                    ),
                    "{e}"
                );
                failed += 1;
            }
        }
    }
    assert!(ok >= 4 && failed >= 1, "ok {ok}, failed {failed}");
    support::control().clear_faults();
    let m = batcher.metrics();
    assert!(m[0].dead.is_some() && m[1].dead.is_none(), "{m:?}");
    // New requests go to the live core.
    let (t, _) = batcher
        .submit(&prompt(3), &GenerateOptions::new(5))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(t.len(), 5);
}

#[test]
fn a_failed_chained_step_fails_its_rows_and_the_core_serves_on() {
    let _g = support::lock();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt, &[0]);
    let expected = alone(&bundle, &[prompt(0)], 30);
    let options = BatchingOptions::default().device_sampling(true);
    let batcher = Batcher::new(&bundle, options).unwrap();
    // The 6th execution after this point fails (status 1003, not fatal): a greedy
    // decode step with the next step already chained behind it on the device.
    support::control()
        .inject_faults("exec:vnc=0:nth=6:status=1003")
        .unwrap();
    let err = batcher
        .submit(&prompt(0), &GenerateOptions::new(30))
        .unwrap()
        .collect_blocking()
        .unwrap_err();
    support::control().clear_faults();
    assert!(
        matches!(
            err.as_batch(),
            Some(BatchError::Step {
                core: 0,
                fatal: false,
                ..
            })
        ),
        "{err}"
    );
    wait_idle(&batcher);
    assert!(batcher.metrics()[0].dead.is_none());
    // The chained step's sets came back: the same request now gives the reference.
    for _ in 0..2 {
        let (tokens, _) = batcher
            .submit(&prompt(0), &GenerateOptions::new(30))
            .unwrap()
            .collect_blocking()
            .unwrap();
        assert_eq!(tokens, expected[0]);
    }
}
