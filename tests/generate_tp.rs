//! Tensor-parallel bundles (issue 27, item 2): one bundle per rank from one directory,
//! each loaded with `nrt_load_collectives` and taking its own shard
//! `weights/tp{rank}_sharded_checkpoint.safetensors`; the ranks' all-reduce sums the
//! partial products of their shards.
//!
//! Runs on the dlopen'ed simulator (two cores).

mod support;

use std::collections::HashMap;

use neuron_rt::RankSpec;
use neuron_rt::generate::{Bundle, shard_file_name};
use nrt_sim::{DType, ModelBuilder, Op};
use safetensors::tensor::{Dtype, TensorView};

/// y = all_reduce(x @ w), x [1,2], w [2,2] (the rank's shard).
fn member() -> Vec<u8> {
    ModelBuilder::new("mm")
        .input("x", DType::F32, &[1, 2])
        .input("w", DType::F32, &[2, 2])
        .output("y", DType::F32, &[1, 2])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "p".into(),
        })
        .op(Op::AllReduce {
            input: "p".into(),
            out: "y".into(),
        })
        .build()
        .unwrap()
}

fn shard(scale: f32) -> Vec<u8> {
    let data: Vec<u8> = [scale, 0.0, 0.0, scale]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view = TensorView::new(Dtype::F32, vec![2, 2], &data).unwrap();
    safetensors::serialize([("w".to_owned(), view)], None::<HashMap<String, String>>).unwrap()
}

#[test]
fn each_rank_loads_its_own_shard_and_the_ranks_reduce_together() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mm")).unwrap();
    std::fs::create_dir_all(dir.path().join("weights")).unwrap();
    std::fs::write(dir.path().join("mm/graph.neff"), member()).unwrap();
    std::fs::write(
        dir.path().join("bundle.json"),
        r#"{"members": [{"name": "mm", "file": "mm/graph.neff"}]}"#,
    )
    .unwrap();
    assert_eq!(
        shard_file_name(1),
        "weights/tp1_sharded_checkpoint.safetensors"
    );
    for rank in 0..2u32 {
        std::fs::write(
            dir.path().join(shard_file_name(rank)),
            shard(rank as f32 + 1.0),
        )
        .unwrap();
    }
    let bundles: Vec<Bundle> = (0..2)
        .map(|rank| {
            Bundle::builder(&rt)
                .dir(dir.path())
                .unwrap()
                .rank(RankSpec::new(rank, rank, 2).unwrap())
                .build()
                .unwrap()
        })
        .collect();
    for (rank, b) in bundles.iter().enumerate() {
        assert_eq!(b.cores(), [rank as u32]);
        let w: Vec<f32> = b.weight(rank as u32, "w").unwrap().to_vec().unwrap();
        assert_eq!(w, [rank as f32 + 1.0, 0.0, 0.0, rank as f32 + 1.0]);
        assert_eq!(
            b.member("mm")
                .unwrap()
                .model(rank as u32)
                .unwrap()
                .rank()
                .map(|r| r.rank),
            Some(rank as u32)
        );
    }
    // Both ranks execute at once (their all-reduce waits for each other).
    let ys: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = bundles
            .iter()
            .enumerate()
            .map(|(rank, b)| {
                s.spawn(move || {
                    let core = rank as u32;
                    let m = b.member("mm").unwrap();
                    let (inputs, mut outputs) = m.sets(core, &[]).unwrap();
                    inputs.get("x").unwrap().write(&[1.0f32, 2.0]).unwrap();
                    m.model(core)
                        .unwrap()
                        .execute(&inputs, &mut outputs)
                        .unwrap();
                    outputs.get("y").unwrap().to_vec::<f32>().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // x @ (1 I) + x @ (2 I) = 3 x on both ranks.
    assert_eq!(ys, [[3.0, 6.0], [3.0, 6.0]]);
}
