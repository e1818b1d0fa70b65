//! Real-format NEFFs (made by the writer, no vendor file) on the simulator through the
//! safe API: the signature as `Model::inputs` / `outputs`, synthetic outputs, core
//! counts, and refused files.

mod support;

use neuron_rt::neff::{self, Neff, NeffWriter};
use neuron_rt::{DType, Error, NrtStatus, TensorUsage};

fn mixed() -> NeffWriter {
    NeffWriter::new("mixed.neff")
        .input("x_f16", neff::DType::F16, &[2, 3])
        .input("x_bf16", neff::DType::BF16, &[4])
        .input("x_f32", neff::DType::F32, &[1, 2, 2])
        .input("ids", neff::DType::I64, &[3])
        .output("logits", neff::DType::F32, &[2, 5])
        .output("mask", neff::DType::U8, &[7])
        .output("state", neff::DType::BF16, &[3, 3])
        .tool_version("2.23.6484.0")
}

/// The documented recipe (nrt-sim MODEL_FORMAT.md), written out again here so that a
/// change of the simulator's bytes or of the documentation fails this test.
fn documented_bytes(model: &str, output: u64, execution: u64, len: usize) -> Vec<u8> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed_bytes = model
        .bytes()
        .chain([0xff])
        .chain(output.to_le_bytes())
        .chain(execution.to_le_bytes());
    for b in seed_bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::new();
    let mut state = h;
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn signature_is_reported_exactly_and_outputs_are_the_documented_bytes() {
    let _g = support::lock();
    let bytes = mixed().build().unwrap();
    let rt = support::runtime();
    let model = rt.load_model(&bytes).unwrap();
    let ins: Vec<_> = model
        .inputs()
        .iter()
        .map(|t| (t.name.as_str(), t.usage, t.dtype, t.shape.clone(), t.size))
        .collect();
    assert_eq!(
        ins,
        [
            ("x_f16", TensorUsage::Input, DType::F16, vec![2, 3], 12),
            ("x_bf16", TensorUsage::Input, DType::BF16, vec![4], 8),
            ("x_f32", TensorUsage::Input, DType::F32, vec![1, 2, 2], 16),
            ("ids", TensorUsage::Input, DType::I64, vec![3], 24),
        ]
    );
    let outs: Vec<_> = model
        .outputs()
        .iter()
        .map(|t| (t.name.as_str(), t.usage, t.dtype, t.shape.clone(), t.size))
        .collect();
    assert_eq!(
        outs,
        [
            ("logits", TensorUsage::Output, DType::F32, vec![2, 5], 40),
            ("mask", TensorUsage::Output, DType::U8, vec![7], 7),
            ("state", TensorUsage::Output, DType::BF16, vec![3, 3], 18),
        ]
    );
    // The reader agrees with what the runtime reports.
    let neff = Neff::parse(&bytes).unwrap();
    for (spec, info) in neff.inputs().iter().zip(model.inputs()) {
        assert_eq!(
            (spec.name.as_str(), spec.dtype, spec.byte_size),
            (info.name.as_str(), info.dtype, info.size as u64)
        );
    }

    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    for execution in 0..3u64 {
        model.execute(&inputs, &mut outputs).unwrap();
        for (i, info) in model.outputs().iter().enumerate() {
            let mut got = vec![0u8; info.size];
            outputs
                .get(&info.name)
                .unwrap()
                .read_at(0, &mut got)
                .unwrap();
            assert_eq!(
                got,
                documented_bytes("mixed.neff", i as u64, execution, info.size),
                "output {} at execution {execution}",
                info.name
            );
        }
    }
    // A missing input is refused as for any model, and the message says the mode.
    let partial = rt.tensor_set().unwrap();
    let err = model.execute(&partial, &mut outputs).unwrap_err();
    assert!(err.to_string().contains("x_f16"), "{err}");
    drop((inputs, outputs, partial, model));
    support::assert_no_leaks();
}

#[test]
fn a_two_core_model_takes_two_cores_and_more_than_visible_is_refused() {
    let _g = support::lock();
    let rt = support::runtime();
    let visible = rt.visible_core_count().unwrap();
    assert_eq!(visible, 2, "the simulator's default machine");
    let two = NeffWriter::new("two.neff")
        .input("x", neff::DType::F32, &[4])
        .output("y", neff::DType::F32, &[4])
        .cores(2)
        .target("trn1")
        .build()
        .unwrap();
    let m = rt.load_model(&two).unwrap();
    assert_eq!(m.core(), Some(0));
    let ctl = support::control();
    assert_eq!(ctl.counters().cores[0].models, 1);
    assert_eq!(ctl.counters().cores[1].models, 1);
    // From core 1 there is one core left: not enough.
    let err = rt.load_model_on(&two, 1).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::LoadNotEnoughNc), "{err}");
    let three = NeffWriter::new("three.neff")
        .input("x", neff::DType::F32, &[4])
        .output("y", neff::DType::F32, &[4])
        .cores(3)
        .target("trn2")
        .tool_version("2.24.1")
        .build()
        .unwrap();
    let err = rt.load_model(&three).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::LoadNotEnoughNc), "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(
        hint.contains("needs 3 NeuronCore(s), target trn2, compiled by 2.24.1")
            && hint.contains("the runtime offers 2 visible NeuronCore(s)"),
        "{hint}"
    );
    drop(m);
    assert_eq!(ctl.counters().cores[1].models, 0);
    support::assert_no_leaks();
}

#[test]
fn truncated_and_damaged_files_are_invalid_with_the_reason() {
    let _g = support::lock();
    let rt = support::runtime();
    let bytes = mixed().build().unwrap();
    let err = rt.load_model(&bytes[..bytes.len() - 1]).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    let text = format!("{err} {}", err.hint().unwrap_or_default());
    assert!(text.contains("truncated"), "{text}");
    // A payload that is not a gzip'd tar (its own hash is right): the reader's error.
    let junk = neff::Header::new(neff::Packaging::V2, "junk");
    let mut file = junk.to_bytes();
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3];
    let mut h = junk.clone();
    h.seal(&gz);
    file.copy_from_slice(&h.to_bytes());
    file.extend_from_slice(&gz);
    let err = rt.load_model(&file).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    // What the reader found leads the message.
    let cause = err.cause().unwrap_or_default();
    assert!(cause.contains("is a damaged NEFF"), "{err}");
    assert!(err.to_string().contains(cause), "{err}");
    assert!(matches!(err, Error::Nrt { .. }));
    support::assert_no_leaks();
}
