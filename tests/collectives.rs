//! Collectives through the safe API on the dlopen'ed simulator: ranks loaded with
//! `nrt_load_collectives`, `RankGroup` (sync and async) giving the single-core model's
//! results, typed errors on every rank when one fails or is missing, rank specs from
//! the environment, and no leaks afterwards.

mod support;

use neuron_rt::{Error, NrtStatus, RankGroup, RankSpec, Runtime, TensorSet};
use nrt_sim::{DType, ModelBuilder, Op};

const B: u32 = 2; // batch
const D: u32 = 4; // model width
const H: u32 = 8; // hidden width

/// `y = relu(x w1) w2` on one core; with `ranks` > 1 the rank's shard: `w1` is
/// `[D, H/ranks]` (columns), `w2` `[H/ranks, D]` (rows), and an all-reduce sums the
/// partial products.
fn mlp(ranks: u32) -> Vec<u8> {
    let h = H / ranks;
    let mut b = ModelBuilder::new(format!("mlp-{ranks}"))
        .input("x", DType::F32, &[B, D])
        .input("w1", DType::F32, &[D, h])
        .input("w2", DType::F32, &[h, D])
        .output("y", DType::F32, &[B, D])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w1".into(),
            out: "h".into(),
        })
        .op(Op::Relu {
            input: "h".into(),
            out: "r".into(),
        });
    let last = if ranks == 1 { "y" } else { "p" };
    b = b.op(Op::MatMul {
        a: "r".into(),
        b: "w2".into(),
        out: last.into(),
    });
    if ranks > 1 {
        b = b.op(Op::AllReduce {
            input: "p".into(),
            out: "y".into(),
        });
    }
    b.build().unwrap()
}

/// Small multiples of 1/4: every product and sum is exact in f32.
fn values(n: u32, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed * 3) % 9) as f32 / 4.0 - 1.0)
        .collect()
}

fn x() -> Vec<f32> {
    values(B * D, 1)
}
fn w1() -> Vec<f32> {
    values(D * H, 2)
}
fn w2() -> Vec<f32> {
    values(H * D, 3)
}

/// Columns `r*h..(r+1)*h` of the `[rows, cols]` matrix `m`.
fn columns(m: &[f32], cols: u32, r: u32, h: u32) -> Vec<f32> {
    m.chunks(cols as usize)
        .flat_map(|row| row[(r * h) as usize..((r + 1) * h) as usize].to_vec())
        .collect()
}

fn single_core(rt: &Runtime) -> Vec<f32> {
    let model = rt.load_model_on(&mlp(1), 0).unwrap();
    let out = model
        .run(&neuron_rt::inputs!["x" => x(), "w1" => w1(), "w2" => w2()])
        .unwrap();
    out["y"].to_vec().unwrap()
}

/// Input sets of `group` (ranks 0..n of n) filled with each rank's shards.
fn sharded_inputs(group: &RankGroup, ranks: u32) -> Vec<TensorSet> {
    let h = H / ranks;
    let sets = group.allocate_inputs().unwrap();
    for (r, set) in sets.iter().enumerate() {
        let r = r as u32;
        set.get("x").unwrap().write(&x()).unwrap();
        set.get("w1")
            .unwrap()
            .write(&columns(&w1(), H, r, h))
            .unwrap();
        let w2_rows = &w2()[(r * h * D) as usize..((r + 1) * h * D) as usize];
        set.get("w2").unwrap().write(w2_rows).unwrap();
    }
    sets
}

fn y(set: &TensorSet) -> Vec<f32> {
    set.get("y").unwrap().to_vec().unwrap()
}

fn collective_status(result: &neuron_rt::Result<()>) -> Option<NrtStatus> {
    result.as_ref().err().and_then(Error::status)
}

#[test]
fn rank_groups_give_the_single_core_models_results_sync_and_async() {
    let (_g, rt) = support::collective_runtime();
    let expected = single_core(&rt);
    for ranks in [2, 4] {
        let group = rt.load_rank_group(&mlp(ranks), 0..ranks, 0, ranks).unwrap();
        assert_eq!(group.len(), ranks as usize);
        let inputs = sharded_inputs(&group, ranks);
        let mut outputs = group.allocate_outputs().unwrap();
        for result in group.execute(&inputs, &mut outputs) {
            result.unwrap();
        }
        for set in &outputs {
            assert_eq!(y(set), expected, "sync, {ranks} ranks");
        }
        let sets = inputs.into_iter().zip(outputs).collect();
        for result in group.execute_async(sets) {
            let (_, out) = result.unwrap();
            assert_eq!(y(&out), expected, "async, {ranks} ranks");
        }
    }
    drop(rt);
    support::assert_no_leaks();
}

#[test]
fn models_know_their_rank() {
    let (_g, rt) = support::collective_runtime();
    let group = rt.load_rank_group(&mlp(2), 2..4, 0, 2).unwrap();
    let ranks: Vec<RankSpec> = group.models().iter().filter_map(|m| m.rank()).collect();
    assert_eq!(
        ranks,
        [
            RankSpec::new(2, 0, 2).unwrap(),
            RankSpec::new(3, 1, 2).unwrap()
        ]
    );
    assert_eq!(rt.load_model_on(&mlp(1), 0).unwrap().rank(), None);
}

#[test]
fn a_missing_rank_gives_every_present_rank_a_collective_error() {
    let (_g, rt) = support::collective_runtime();
    // Ranks 0 and 1 of a world of 3: rank 2 never executes.
    let group = rt.load_rank_group(&mlp(1), 0..2, 0, 3);
    assert!(
        group.is_ok(),
        "an all_reduce-free model loads into any world"
    );
    let sum = ModelBuilder::new("sum")
        .input("x", DType::F32, &[2])
        .output("y", DType::F32, &[2])
        .op(Op::AllReduce {
            input: "x".into(),
            out: "y".into(),
        })
        .build()
        .unwrap();
    let group = rt.load_rank_group(&sum, 0..2, 0, 3).unwrap();
    let inputs = group.allocate_inputs().unwrap();
    let mut outputs = group.allocate_outputs().unwrap();
    let results = group.execute(&inputs, &mut outputs);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(
            collective_status(r),
            Some(NrtStatus::ExecHwErrCollectives),
            "{r:?}"
        );
    }
    let sets = inputs.into_iter().zip(outputs).collect();
    for r in group.execute_async(sets) {
        let status = r.err().and_then(|e| e.status());
        assert_eq!(status, Some(NrtStatus::ExecHwErrCollectives));
    }
}

#[test]
fn a_failing_rank_fails_with_its_status_and_the_others_with_the_collective_error() {
    let (_g, rt) = support::collective_runtime();
    let group = rt.load_rank_group(&mlp(2), 0..2, 0, 2).unwrap();
    let inputs = sharded_inputs(&group, 2);
    let mut outputs = group.allocate_outputs().unwrap();
    support::control()
        .inject_faults("exec:vnc=1:nth=1:status=NRT_HW_ERROR")
        .unwrap();
    let results = group.execute(&inputs, &mut outputs);
    assert_eq!(
        collective_status(&results[0]),
        Some(NrtStatus::ExecHwErrCollectives)
    );
    assert_eq!(collective_status(&results[1]), Some(NrtStatus::HwError));
}

#[test]
fn bad_sets_on_one_rank_fail_every_rank_before_anything_runs() {
    let (_g, rt) = support::collective_runtime();
    let before = support::control().counters().cores[0].executions;
    let group = rt.load_rank_group(&mlp(2), 0..2, 0, 2).unwrap();
    let mut inputs = sharded_inputs(&group, 2);
    let mut outputs = group.allocate_outputs().unwrap();
    inputs[1] = rt.tensor_set().unwrap(); // rank 1 has no inputs bound
    let results = group.execute(&inputs, &mut outputs);
    assert!(
        matches!(results[1], Err(Error::MissingTensor { .. })),
        "{results:?}"
    );
    assert!(
        matches!(&results[0], Err(Error::InvalidArgument { reason, .. }) if reason.contains("rank 1 failed")),
        "{results:?}"
    );
    let few = group.execute(&inputs[..1], &mut outputs[..1]);
    assert_eq!(few.len(), 2);
    assert!(
        few.iter()
            .all(|r| matches!(r, Err(Error::InvalidArgument { .. })))
    );
    assert_eq!(support::control().counters().cores[0].executions, before);
}

#[test]
fn bad_ranks_and_worlds_are_refused() {
    let (_g, rt) = support::collective_runtime();
    assert!(matches!(
        rt.load_rank_group(&mlp(2), 0..2, 1, 2),
        Err(Error::InvalidArgument {
            argument: "first_rank",
            ..
        })
    ));
    assert!(matches!(
        rt.load_rank_group(&mlp(2), 1..1, 0, 2),
        Err(Error::InvalidArgument {
            argument: "cores",
            ..
        })
    ));
    assert!(matches!(
        RankSpec::new(0, 0, 0),
        Err(Error::InvalidArgument {
            argument: "world",
            ..
        })
    ));
    // A model compiled for 2 ranks (its all-reduce is world-free, but the gather is not).
    let gather = ModelBuilder::new("g")
        .input("x", DType::F32, &[2])
        .output("y", DType::F32, &[4])
        .op(Op::AllGather {
            input: "x".into(),
            ranks: 2,
            out: "y".into(),
        })
        .build()
        .unwrap();
    let err = rt
        .load_model_rank(&gather, RankSpec::new(0, 0, 3).unwrap())
        .unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    assert!(err.to_string().contains("nrt_load_collectives"), "{err}");
}

fn env(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let vars = vars.to_vec();
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn env_error(vars: &[(&'static str, &'static str)]) -> (&'static str, Option<String>, String) {
    match RankSpec::from_env_with(env(vars)) {
        Err(Error::Env {
            variable,
            value,
            reason,
        }) => (variable, value, reason),
        other => panic!("{vars:?}: expected an Env error, got {other:?}"),
    }
}

#[test]
fn rank_specs_from_the_environment_name_the_bad_variable() {
    const ROOT: (&str, &str) = ("NEURON_RT_ROOT_COMM_ID", "127.0.0.1:62182");
    let ok = RankSpec::from_env_with(env(&[
        ("RANK", "3"),
        ("WORLD_SIZE", "4"),
        ("LOCAL_RANK", "1"),
        ROOT,
    ]));
    assert_eq!(ok.unwrap(), RankSpec::new(1, 3, 4).unwrap());
    let visible = env(&[
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("NEURON_RT_VISIBLE_CORES", "1"),
        ROOT,
    ]);
    assert_eq!(RankSpec::from_env_with(visible).unwrap().core, 0);
    let single = RankSpec::from_env_with(env(&[("RANK", "0"), ("WORLD_SIZE", "1")]));
    assert_eq!(single.unwrap(), RankSpec::new(0, 0, 1).unwrap());

    assert_eq!(env_error(&[("WORLD_SIZE", "2"), ROOT]).0, "RANK");
    assert_eq!(env_error(&[("RANK", "0"), ROOT]).0, "WORLD_SIZE");
    let (var, value, _) = env_error(&[("RANK", "0"), ("WORLD_SIZE", "0")]);
    assert_eq!((var, value.as_deref()), ("WORLD_SIZE", Some("0")));
    let (var, value, reason) = env_error(&[("RANK", "2"), ("WORLD_SIZE", "2"), ROOT]);
    assert_eq!((var, value.as_deref()), ("RANK", Some("2")));
    assert!(reason.contains("WORLD_SIZE=2"), "{reason}");
    let (var, value, _) = env_error(&[("RANK", "x"), ("WORLD_SIZE", "2"), ROOT]);
    assert_eq!((var, value.as_deref()), ("RANK", Some("x")));
    let (var, _, reason) = env_error(&[("RANK", "1"), ("WORLD_SIZE", "2")]);
    assert_eq!(var, "NEURON_RT_ROOT_COMM_ID");
    assert!(reason.contains("world of 2 ranks"), "{reason}");
    let bad_root = env_error(&[
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("NEURON_RT_ROOT_COMM_ID", "localhost"),
    ]);
    assert_eq!(
        (bad_root.0, bad_root.1.as_deref()),
        ("NEURON_RT_ROOT_COMM_ID", Some("localhost"))
    );
    let (var, value, _) = env_error(&[
        ("RANK", "0"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ROOT,
    ]);
    assert_eq!((var, value.as_deref()), ("LOCAL_RANK", Some("1")));
}
