//! The small decoder's bundle (nrt-sim's bundle writer: ten members, metaneff.pb beside
//! each NEFF, seeded weights.safetensors) loaded through `generate::Bundle` on two cores:
//! roles and aliases from the metaneffs, one copy of the weights and of the KV cache
//! per core (the simulator's memory counters), and the shared cache carrying a prompt
//! from one member to another (prefill of 4 tokens + decode of the 5th gives the
//! logits of a prefill of all 5).
//!
//! Runs on the dlopen'ed simulator.

mod support;

use neuron_rt::generate::{Bucket, Bundle, MemberKind, Sampling, TensorRole};
use neuron_rt::{Placement, Tensor};

fn device_bytes(core: usize) -> u64 {
    support::control().counters().cores[core].device_bytes
}

/// Runs member `name` on core `core` with the given user inputs (i32), returns `logits`.
fn logits(
    bundle: &Bundle,
    name: &str,
    core: u32,
    ids: &[i32],
    pos: &[i32],
    seq: &[i32],
) -> Vec<f32> {
    let m = bundle.member(name).unwrap();
    let (inputs, mut outputs) = m.sets(core, &[]).unwrap();
    inputs.get("input_ids").unwrap().write(ids).unwrap();
    inputs.get("position_ids").unwrap().write(pos).unwrap();
    inputs.get("seq_ids").unwrap().write(seq).unwrap();
    m.model(core)
        .unwrap()
        .execute(&inputs, &mut outputs)
        .unwrap();
    outputs.get("logits").unwrap().to_vec().unwrap()
}

fn padded(tokens: &[i32], t: usize) -> (Vec<i32>, Vec<i32>) {
    let mut ids = vec![0; t];
    let mut pos = vec![-1; t];
    for (i, &tok) in tokens.iter().enumerate() {
        ids[i] = tok;
        pos[i] = i as i32;
    }
    (ids, pos)
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn the_small_decoder_bundle_loads_with_one_weight_and_cache_copy_per_core() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let written = nrt_sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    let before = [device_bytes(0), device_bytes(1)];
    let bundle = Bundle::builder(&rt)
        .dir(dir.path())
        .unwrap()
        .cores([0, 1])
        .build()
        .unwrap();
    assert_eq!(bundle.members().len(), written.members.len());
    let config = bundle.config().unwrap();
    assert_eq!(
        (config.vocab, config.layers, config.slots, config.ctx),
        (256, 2, 4, 128)
    );
    // Roles and aliases from the metaneffs.
    let decode = bundle.member("decode_b4_ids").unwrap();
    assert_eq!(
        decode.bucket(),
        Some(Bucket {
            batch: 4,
            seq_len: 1
        })
    );
    assert_eq!(decode.kind(), &MemberKind::Decode);
    assert_eq!(decode.sampling(), Some(Sampling::Ids));
    for user in ["input_ids", "position_ids", "seq_ids"] {
        assert_eq!(decode.role(user), Some(TensorRole::User), "{user}");
    }
    for state in ["k_l0", "v_l0", "k_l1", "v_l1"] {
        assert_eq!(decode.role(state), Some(TensorRole::State), "{state}");
        assert_eq!(
            decode.aliases().output_of(state),
            Some(format!("{state}.out").as_str())
        );
    }
    assert_eq!(decode.role("lm_head.weight"), Some(TensorRole::Weight));
    assert_eq!(
        decode
            .user_outputs()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["next_ids"]
    );
    let embed = bundle.member("chain_embed").unwrap();
    assert_eq!(
        (embed.kind(), embed.sampling()),
        (&MemberKind::ChainStage, None)
    );
    // One copy per core: the weights the members take, and four caches.
    let weights =
        neuron_rt::generate::WeightFile::read(dir.path().join("weights.safetensors")).unwrap();
    let memory = bundle.memory();
    assert_eq!(memory.weights_bytes_per_core, weights.data_bytes());
    assert_eq!(memory.state_bytes_per_core, 4 * 4 * 4 * 128 * 16 * 4);
    assert_eq!(memory.members, 10);
    let models: u64 = written
        .members
        .iter()
        .map(|m| {
            std::fs::metadata(dir.path().join(&m.name).join("graph.neff"))
                .unwrap()
                .len()
        })
        .sum();
    for (core, before) in before.iter().enumerate() {
        assert_eq!(
            device_bytes(core) - before,
            models + memory.weights_bytes_per_core + memory.state_bytes_per_core,
            "core {core}: models + one weight copy + one cache copy, for 10 members"
        );
    }
    let report = bundle.load_report();
    assert_eq!(report.uploaded_bytes, 2 * weights.data_bytes());
    println!(
        "memory weights_bytes_per_core={} state_bytes_per_core={} members={}; upload {:.0} MB/s",
        memory.weights_bytes_per_core,
        memory.state_bytes_per_core,
        memory.members,
        report.upload_mb_per_s()
    );

    // The cache carries a prompt across members: prefill 4 tokens then decode the 5th
    // equals prefilling all 5 (slot 2, core 1).
    let prompt = [72, 101, 108, 108, 111];
    let (ids, pos) = padded(&prompt, 16);
    let whole = logits(&bundle, "prefill_t16", 1, &ids, &pos, &[2]);
    bundle.clear_states().unwrap();
    let (ids, pos) = padded(&prompt[..4], 16);
    logits(&bundle, "prefill_t16", 1, &ids, &pos, &[2]);
    let cached = logits(&bundle, "decode_b1_logits", 1, &[prompt[4]], &[4], &[2]);
    let err = rel_err(&cached, &whole);
    assert!(err <= 1e-5, "cached decode vs prefill: rel err {err}");
    // Core 0's cache was never written.
    let k0: Tensor = bundle.state(0, "k_l0").unwrap().clone();
    assert_eq!(k0.placement(), Placement::Device);
    assert!(k0.to_vec::<f32>().unwrap().iter().all(|&x| x == 0.0));
}
