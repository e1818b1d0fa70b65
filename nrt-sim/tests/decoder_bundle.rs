//! The decoder bundle's files (bundle.json, metaneff.pb on the wire, the safetensors
//! weights, the `nrt-sim-model bundle` command) and the per-tensor host transfer
//! counters the generation tests read.

mod common;

use common::*;
use nrt_sim::decoder::metaneff::{MetaNeff, TensorType};
use nrt_sim::decoder::{DecoderBundleOptions, DecoderConfig, write_bundle};
use nrt_sim::ffi::*;
use nrt_sys::*;
use prost::Message;
use std::path::PathBuf;
use std::time::Duration;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_bundle_lists_every_member_with_its_bucket_and_device_time() {
    let dir = tmp("bundle-json");
    let mut o = DecoderBundleOptions::default();
    o.decode_device_time = Duration::from_micros(1000);
    o.chain_device_time = Duration::from_micros(250);
    o.seed = 3;
    let b = write_bundle(&dir, &o).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    let members = json["members"].as_array().unwrap();
    let summary: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "{} {} b{} t{} {} {}",
                m["name"].as_str().unwrap(),
                m["kind"].as_str().unwrap(),
                m["bucket"]["batch"],
                m["bucket"]["seq_len"],
                m["sampling"].as_str().unwrap(),
                m["device_time_us"]
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "prefill_t16 prefill b1 t16 logits 0",
            "prefill_t64 prefill b1 t64 logits 0",
            "decode_b1_logits decode b1 t1 logits 1000",
            "decode_b4_logits decode b4 t1 logits 1000",
            "decode_b1_ids decode b1 t1 ids 1000",
            "decode_b4_ids decode b4 t1 ids 1000",
            "chain_embed chain b1 t1 hidden 250",
            "chain_layer_0 chain b1 t1 hidden 250",
            "chain_layer_1 chain b1 t1 hidden 250",
            "chain_head_ids chain b1 t1 ids 250",
        ]
    );
    assert_eq!(json["model"]["ctx"], 128);
    assert_eq!(json["seed"], 3);
    assert_eq!(b.members.len(), 10);
    for m in members {
        let neff = std::fs::read(dir.join(m["file"].as_str().unwrap())).unwrap();
        let text = nrt_sim::describe_model(&neff).unwrap();
        assert!(
            text.contains(&format!(
                "device_time_ns {}",
                m["device_time_us"].as_u64().unwrap() * 1000
            )),
            "{text}"
        );
    }
}

#[test]
fn metaneff_records_roles_checkpoint_keys_and_aliases_on_the_wire() {
    let dir = tmp("bundle-metaneff");
    write_bundle(&dir, &DecoderBundleOptions::default()).unwrap();
    let bytes = std::fs::read(dir.join("decode_b4_ids/metaneff.pb")).unwrap();
    let m = MetaNeff::decode(bytes.as_slice()).unwrap();
    let names: Vec<String> = m
        .input_tensors
        .iter()
        .map(|t| String::from_utf8(t.name.clone()).unwrap())
        .collect();
    assert_eq!(
        names[..7],
        [
            "input_ids",
            "position_ids",
            "seq_ids",
            "k_l0",
            "v_l0",
            "k_l1",
            "v_l1"
        ]
    );
    assert_eq!(names[7], "embed_tokens.weight");
    assert_eq!(names.len(), 7 + 1 + 2 * 9 + 2);
    let roles: Vec<i32> = m.input_tensors.iter().map(|t| t.r#type).collect();
    assert_eq!(roles[..3], [TensorType::UserInput as i32; 3]);
    assert_eq!(roles[3..7], [TensorType::InputState as i32; 4]);
    assert!(
        roles[7..]
            .iter()
            .all(|&r| r == TensorType::InputWeight as i32)
    );
    for t in &m.input_tensors[3..] {
        assert_eq!(t.checkpoint_key.as_ref(), Some(&t.name));
    }
    assert_eq!(m.input_tensors[0].checkpoint_key, None);
    assert_eq!(m.input_tensors[0].shape, [4, 1]);
    assert_eq!(m.input_tensors[0].data_type, 2, "INT32");
    assert_eq!(m.input_tensors[3].shape, [4, 4, 128, 16]);
    assert_eq!(m.input_tensors[3].data_type, 1, "FLOAT");
    let outs: Vec<String> = m
        .output_tensors
        .iter()
        .map(|t| String::from_utf8(t.name.clone()).unwrap())
        .collect();
    assert_eq!(
        outs,
        ["next_ids", "k_l0.out", "v_l0.out", "k_l1.out", "v_l1.out"]
    );
    let aliases: Vec<(i64, i64)> = m.output_aliases_to.into_iter().collect();
    assert_eq!(aliases, [(1, 3), (2, 4), (3, 5), (4, 6)]);
    assert_eq!((m.num_user_inputs, m.num_states, m.num_weights), (3, 4, 21));
    // On the wire, as a protobuf reader expects: field 1 (input_tensors, length-
    // delimited) first; the first MetaTensor's field 1 (name) is "input_ids"; the map
    // entry of field 6 is `32 04 08 01 10 03` (key 1, value 3).
    assert_eq!(bytes[0], 0x0a);
    assert_eq!(&bytes[2..4], [0x0a, 9]);
    assert_eq!(&bytes[4..13], b"input_ids");
    assert!(
        bytes
            .windows(6)
            .any(|w| w == [0x32, 0x04, 0x08, 0x01, 0x10, 0x03])
    );

    let chain = MetaNeff::decode(
        std::fs::read(dir.join("chain_layer_1/metaneff.pb"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let names: Vec<String> = chain
        .input_tensors
        .iter()
        .map(|t| String::from_utf8(t.name.clone()).unwrap())
        .collect();
    assert_eq!(
        names[..5],
        ["hidden", "position_ids", "seq_ids", "k_l1", "v_l1"]
    );
    assert_eq!(names[5], "layers.1.input_layernorm.weight");
    let aliases: Vec<(i64, i64)> = chain.output_aliases_to.into_iter().collect();
    assert_eq!(aliases, [(1, 3), (2, 4)]);
}

#[test]
fn weights_are_seeded_and_read_back_with_the_safetensors_crate() {
    let dir = tmp("bundle-weights");
    let mut o = DecoderBundleOptions::default();
    o.seed = 11;
    write_bundle(&dir, &o).unwrap();
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected = nrt_sim::decoder::weights(&DecoderConfig::default(), 11);
    assert_eq!(st.len(), expected.len());
    assert_eq!(expected.len(), 1 + 2 * 9 + 2);
    for w in &expected {
        let t = st.tensor(&w.name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(
            t.shape(),
            w.shape.iter().map(|&d| d as usize).collect::<Vec<_>>()
        );
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, w.values, "{}", w.name);
    }
    let q = &expected
        .iter()
        .find(|w| w.name == "layers.0.self_attn.q_proj.weight")
        .unwrap()
        .values;
    assert!(q.iter().all(|v| v.abs() <= 0.125), "uniform in [-1/8, 1/8)");
    let g = &expected
        .iter()
        .find(|w| w.name == "norm.weight")
        .unwrap()
        .values;
    assert!(g.iter().all(|v| (0.9..1.1).contains(v)));
    assert_ne!(
        nrt_sim::decoder::weights(&DecoderConfig::default(), 12)[0].values,
        expected[0].values
    );
}

#[test]
fn a_tensor_parallel_bundle_writes_each_ranks_shard_and_cache_of_its_heads() {
    let dir = tmp("bundle-tp");
    let mut o = DecoderBundleOptions::default();
    o.world = 2;
    o.seed = 4;
    let b = write_bundle(&dir, &o).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(json["tensor_parallel"]["world"], 2);
    assert_eq!(
        json["tensor_parallel"]["shards"][1],
        "weights/tp1_sharded_checkpoint.safetensors"
    );
    assert_eq!(
        json["state"][0]["shape"],
        serde_json::json!([4, 2, 128, 16])
    );
    assert_eq!(b.shards.len(), 2);
    let full = nrt_sim::decoder::weights(&DecoderConfig::default(), 4);
    let read = |rank: usize| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let bytes = std::fs::read(&b.shards[rank]).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        full.iter()
            .map(|w| {
                let t = st.tensor(&w.name).unwrap();
                let values = t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                (w.name.clone(), t.shape().to_vec(), values)
            })
            .collect()
    };
    let (r0, r1) = (read(0), read(1));
    for ((w, a), c) in full.iter().zip(&r0).zip(&r1) {
        let (rows, cols) = (w.shape[0] as usize, *w.shape.get(1).unwrap_or(&1) as usize);
        let name = w.name.as_str();
        let joined: Vec<f32> =
            if name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") {
                // Row-split: rank 0's rows, then rank 1's.
                assert_eq!(a.1, [rows / 2, cols], "{name}");
                [a.2.clone(), c.2.clone()].concat()
            } else if name.starts_with("layers.") && w.shape.len() == 2 {
                // Column-split: each row is rank 0's columns, then rank 1's.
                assert_eq!(a.1, [rows, cols / 2], "{name}");
                a.2.chunks(cols / 2)
                    .zip(c.2.chunks(cols / 2))
                    .flat_map(|(x, y)| [x, y].concat())
                    .collect()
            } else {
                assert_eq!(a.2, c.2, "{name} is replicated");
                a.2.clone()
            };
        assert_eq!(joined, w.values, "{name}");
    }
    // Each member's weight inputs are the shard's shapes; the NEFFs have all-reduces.
    let meta =
        MetaNeff::decode(&*std::fs::read(dir.join("prefill_t16/metaneff.pb")).unwrap()).unwrap();
    let q = meta
        .input_tensors
        .iter()
        .find(|t| t.name == b"layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q.shape, [64, 32]);
    let text =
        nrt_sim::describe_model(&std::fs::read(dir.join("decode_b1_ids/graph.neff")).unwrap())
            .unwrap();
    assert_eq!(text.matches("all_reduce").count(), 4, "{text}");
}

#[test]
fn the_bundle_command_writes_a_loadable_bundle() {
    let dir = tmp("bundle-cli");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nrt-sim-model"))
        .args([
            "bundle",
            "--out",
            dir.to_str().unwrap(),
            "--seed",
            "5",
            "--decode-device-time-us",
            "700",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 5);
    assert_eq!(json["members"][2]["device_time_us"], 700);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_nrt-sim-model"))
        .args(["bundle", "--out", dir.to_str().unwrap(), "--seed", "x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--seed \"x\" is not a whole number"));
    let tp = tmp("bundle-cli-tp");
    let run = |world: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nrt-sim-model"))
            .args(["bundle", "--out", tp.to_str().unwrap(), "--world", world])
            .output()
            .unwrap()
    };
    let out = run("2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 rank shards"));
    assert!(
        tp.join("weights/tp1_sharded_checkpoint.safetensors")
            .is_file()
    );
    let out = run("3");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("world of 3 ranks") && err.contains("heads 4"),
        "{err}"
    );
}

#[test]
fn host_transfers_count_reads_writes_and_host_copies_but_not_executions() {
    on_exec_stack(|| {
        let _s = Session::new();
        let sim = control();
        let rig = AddRig::new(0, 4, Duration::ZERO);
        let bytes = |t| sim.tensor_transfers(t).unwrap();
        write_f32(rig.a, &[1.0; 4]);
        write_f32(rig.b, &[2.0; 4]);
        // The output doubles as input `b`: an in-place update, device work only.
        let ins = set_of(&[("a", rig.a), ("b", rig.out)]);
        for _ in 0..3 {
            assert_eq!(
                execute(rig.model, ins, rig.outputs),
                NRT_SUCCESS,
                "{}",
                last_error()
            );
        }
        assert_eq!(bytes(rig.out).device_to_host_bytes, 0);
        assert_eq!(bytes(rig.a).host_to_device_bytes, 16);
        assert_eq!(
            read_f32(rig.out, 4),
            [3.0; 4],
            "out = a + out, three times from 0"
        );
        assert_eq!(bytes(rig.out).device_to_host_bytes, 16);
        // A slice shares its parent's memory and counts.
        let mut slice = std::ptr::null_mut();
        // SAFETY: a live tensor, valid name and out-pointer.
        let status = unsafe { nrt_tensor_allocate_slice(rig.a, 4, 8, c"a1".as_ptr(), &mut slice) };
        assert_eq!(status, NRT_SUCCESS, "{}", last_error());
        assert_eq!(read(slice, 0, 8).unwrap().len(), 8);
        assert_eq!(bytes(rig.a).device_to_host_bytes, 8);
        // A copy to a host tensor is a transfer; device to device is not.
        let host = alloc_host(16, "host");
        // SAFETY: live handles, ranges inside both.
        assert_eq!(
            unsafe { nrt_tensor_copy(rig.b, 0, host, 0, 16) },
            NRT_SUCCESS
        );
        // SAFETY: as above.
        assert_eq!(
            unsafe { nrt_tensor_copy(rig.b, 0, rig.a, 0, 16) },
            NRT_SUCCESS
        );
        assert_eq!(bytes(rig.b).device_to_host_bytes, 16);
        assert_eq!(bytes(rig.a).host_to_device_bytes, 16);
        assert_eq!(
            bytes(host),
            Default::default(),
            "host memory is not counted"
        );
        free(slice);
        free(host);
        destroy_set(ins);
        let a = rig.a;
        rig.release();
        assert_eq!(sim.tensor_transfers(a), None, "freed");
    });
}
