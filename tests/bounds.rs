//! Every count a builder or constructor takes is bounded before anything is allocated
//! or loaded: `usize::MAX`, `1 << 40` (and `u32::MAX` for `u32` counts) give a typed
//! error naming the argument, the value and the limit; nothing panics (an overflow) or
//! aborts (an allocation failure), and nothing runs for ever. (A unit `Pipeline`'s
//! depth is a bound, not an amount to reserve: `async_waiting.rs` runs one of depth
//! `usize::MAX`.)

mod support;

use std::time::Duration;

use neuron_rt::{Error, ModelPool, Replicas, Result, Runtime, StagedPipeline};
use support::{add_model, identity_model, lock, runtime};

const HUGE: [usize; 2] = [usize::MAX, 1 << 40];

/// The `InvalidArgument` of `result` as `"argument: reason"`, or a panic naming `what`.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T>) -> String {
    match result {
        Err(Error::InvalidArgument { argument, reason }) => format!("{argument}: {reason}"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

/// `message` names `value` and `limit`.
fn names(message: &str, value: impl std::fmt::Display, limit: impl std::fmt::Display) {
    let (value, limit) = (value.to_string(), limit.to_string());
    assert!(
        message.contains(&value) && message.contains(&limit),
        "`{message}` does not name the value {value} and the limit {limit}"
    );
}

fn pool_refusal(
    rt: &Runtime,
    f: impl Fn(neuron_rt::ModelPoolBuilder) -> neuron_rt::ModelPoolBuilder,
) -> String {
    let neff = add_model();
    refused("pool", f(ModelPool::builder(rt, &neff)).build())
}

#[test]
fn pool_copies_per_core_is_bounded() {
    let _g = lock();
    let rt = runtime();
    for n in HUGE {
        let message = pool_refusal(&rt, |b| b.copies_per_core(n));
        assert!(message.starts_with("copies_per_core: "), "{message}");
        names(&message, n, 256);
        // Also on one core (no product to overflow).
        let message = pool_refusal(&rt, |b| b.cores([0]).copies_per_core(n));
        names(&message, n, 256);
    }
    // The limit itself is a count like any other (refused here only for the memory).
    assert!(pool_refusal(&rt, |b| b.copies_per_core(257)).contains("257"));
}

#[test]
fn pool_sets_per_copy_are_bounded() {
    let _g = lock();
    let rt = runtime();
    for n in HUGE {
        for (initial, max) in [(n, n), (0, n), (1, n)] {
            let message = pool_refusal(&rt, |b| b.sets_per_copy(initial, max));
            assert!(message.starts_with("sets_per_copy: "), "{message}");
            names(&message, max, 4096);
        }
        // An initial count above the maximum names both.
        let message = pool_refusal(&rt, |b| b.sets_per_copy(n, 8));
        names(&message, n, 8);
    }
    assert!(pool_refusal(&rt, |b| b.sets_per_copy(1, 4097)).contains("4097"));
}

#[test]
fn staged_pipeline_and_replica_depths_are_bounded() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model_on(&add_model(), 0).unwrap();
    for n in HUGE {
        let message = refused("staged", StagedPipeline::with_depth(&model, n));
        assert!(message.starts_with("depth: "), "{message}");
        names(&message, n, 256);
        let message = refused("replicas", Replicas::from_models(vec![model.clone()], n));
        names(&message, n, 256);
    }
}

#[test]
fn replicas_refuse_more_cores_than_are_visible_before_loading() {
    let _g = lock();
    let rt = runtime();
    let cores: Vec<u32> = (0..100_000).collect();
    let message = refused("replicas", Replicas::load_on(&rt, &add_model(), &cores));
    assert!(message.starts_with("cores: "), "{message}");
    names(&message, 100_000, 2);
}

#[test]
fn rank_groups_refuse_core_ranges_past_the_visible_cores_before_loading() {
    let _g = lock();
    let rt = runtime();
    let message = refused(
        "rank group",
        rt.load_rank_group(&add_model(), 0..u32::MAX, 0, u32::MAX),
    );
    assert!(message.starts_with("cores: "), "{message}");
    names(&message, u32::MAX, "2 visible");
    let c = support::control().counters();
    assert_eq!(c.live_objects(), 0, "nothing was loaded: {c:?}");
}

#[test]
fn benchmark_runs_are_bounded() {
    let _g = lock();
    let rt = runtime();
    let model = rt
        .load_model_on(&identity_model(Duration::ZERO), 0)
        .unwrap();
    for n in [u32::MAX, 1 << 24 | 1] {
        let message = refused("benchmark", model.benchmark(0, n));
        assert!(message.starts_with("iterations: "), "{message}");
        names(&message, n, 1 << 24);
        let message = refused("benchmark_device", model.benchmark_device(0, n));
        names(&message, n, 1 << 24);
        let message = refused("benchmark_device warm-up", model.benchmark_device(n, 1));
        assert!(message.starts_with("warmup: "), "{message}");
        names(&message, n, 1 << 24);
    }
}

#[test]
fn unit_indices_are_bounded() {
    let _g = lock();
    let rt = runtime();
    let message = refused("exec unit core", rt.compute_unit(u32::MAX));
    names(&message, u32::MAX, "2 visible");
    let message = refused("exec unit queue", rt.tensor_op_unit(0, u32::MAX));
    names(&message, u32::MAX, "0..2");
}
