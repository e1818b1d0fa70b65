//! Bundles (issue 27, item 2): several NEFFs on the same cores sharing one device copy
//! of the weights and of the state per core (checked with the simulator's memory
//! counters), an in-place update seen by every member, bundles from a directory
//! (`bundle.json`, `metaneff.pb`, `weights.safetensors`), parallel upload with progress,
//! and a typed error naming the tensor for every kind of bad weights.
//!
//! Runs on the dlopen'ed simulator.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use neuron_rt::generate::{
    Bucket, Bundle, BundleError, MemberKind, MemberSpec, MetaNeff, MetaTensor, Sampling,
    TensorRole, WeightFile,
};
use neuron_rt::{Error, Runtime};
use nrt_sim::{DType, ModelBuilder, Op};
use safetensors::tensor::{Dtype, TensorView};

/// `acc.out = acc + x @ w` (x [1,2], w [2,2], acc [1,2]).
fn acc_member(name: &str) -> Vec<u8> {
    ModelBuilder::new(name)
        .input("x", DType::F32, &[1, 2])
        .input("acc", DType::F32, &[1, 2])
        .input("w", DType::F32, &[2, 2])
        .output("acc.out", DType::F32, &[1, 2])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "xw".into(),
        })
        .op(Op::Add {
            a: "acc".into(),
            b: "xw".into(),
            out: "acc.out".into(),
        })
        .build()
        .unwrap()
}

/// `y = x @ w` (no state): shares the weight only.
fn peek_member() -> Vec<u8> {
    ModelBuilder::new("peek")
        .input("x", DType::F32, &[1, 2])
        .input("w", DType::F32, &[2, 2])
        .output("y", DType::F32, &[1, 2])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "y".into(),
        })
        .build()
        .unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `.safetensors` file's bytes from (name, dtype, shape, data).
fn safetensors_bytes(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| ((*n).to_owned(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

/// w = [[1, 0], [0, 2]].
fn good_weights() -> Vec<u8> {
    safetensors_bytes(&[(
        "w",
        Dtype::F32,
        vec![2, 2],
        f32_bytes(&[1.0, 0.0, 0.0, 2.0]),
    )])
}

fn run(bundle: &Bundle, member: &str, core: u32, x: [f32; 2]) -> neuron_rt::TensorSet {
    let m = bundle.member(member).unwrap();
    let (inputs, mut outputs) = m.sets(core, &[]).unwrap();
    inputs.get("x").unwrap().write(&x).unwrap();
    m.model(core)
        .unwrap()
        .execute(&inputs, &mut outputs)
        .unwrap();
    outputs
}

fn device_bytes(core: usize) -> u64 {
    support::control().counters().cores[core].device_bytes
}

#[test]
fn members_share_one_copy_of_weights_and_state_per_core() {
    let _g = support::lock();
    let rt = support::runtime();
    let neffs = [acc_member("a"), acc_member("b"), peek_member()];
    let before = [device_bytes(0), device_bytes(1)];
    let progress = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&progress);
    let bundle = Bundle::builder(&rt)
        .member(MemberSpec::new("a", neffs[0].clone()).alias("acc", "acc.out"))
        .member(MemberSpec::new("b", neffs[1].clone()).alias("acc", "acc.out"))
        .member(MemberSpec::new("peek", neffs[2].clone()))
        .weights(WeightFile::from_bytes("w.safetensors", good_weights()).unwrap())
        .cores([0, 1])
        .progress(move |p| seen.lock().unwrap().push(p))
        .build()
        .unwrap();
    // Per core: the three models, one 16-byte weight, one 8-byte state. Nothing else.
    let models: u64 = neffs.iter().map(|n| n.len() as u64).sum();
    for (core, before) in before.iter().enumerate() {
        assert_eq!(
            device_bytes(core) - before,
            models + 16 + 8,
            "core {core}: one copy of the weight and of the state for 3 members"
        );
    }
    let memory = bundle.memory();
    assert_eq!(
        (
            memory.weights_bytes_per_core,
            memory.state_bytes_per_core,
            memory.members
        ),
        (16, 8, 3)
    );
    let report = bundle.load_report();
    assert_eq!(
        (report.weight_bytes, report.uploaded_bytes, report.cores),
        (16, 32, 2)
    );
    let progress = progress.lock().unwrap();
    assert_eq!(
        progress.last().map(|p| (p.bytes_done, p.bytes_total)),
        Some((32, 32))
    );
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].bytes_done < w[1].bytes_done)
    );
    // Roles as resolved: x by the caller, acc the state, w the weight.
    let a = bundle.member("a").unwrap();
    assert_eq!(a.role("x"), Some(TensorRole::User));
    assert_eq!(a.role("acc"), Some(TensorRole::State));
    assert_eq!(a.role("w"), Some(TensorRole::Weight));
    assert_eq!(a.user_outputs().count(), 0);
    // One state updated in place by whichever member runs, per core.
    run(&bundle, "a", 0, [1.0, 1.0]);
    run(&bundle, "b", 0, [1.0, 1.0]);
    run(&bundle, "a", 1, [3.0, 0.0]);
    assert_eq!(
        bundle.state(0, "acc").unwrap().to_vec::<f32>().unwrap(),
        [2.0, 4.0]
    );
    assert_eq!(
        bundle.state(1, "acc").unwrap().to_vec::<f32>().unwrap(),
        [3.0, 0.0]
    );
    let out = run(&bundle, "peek", 1, [1.0, 1.0]);
    assert_eq!(out.get("y").unwrap().to_vec::<f32>().unwrap(), [1.0, 2.0]);
    // The sets bind the bundle's tensors themselves.
    let (inputs, outputs) = a.sets(0, &[]).unwrap();
    let state = bundle.state(0, "acc").unwrap();
    assert_eq!(inputs.get("acc").unwrap().name(), state.name());
    assert_eq!(outputs.get("acc.out").unwrap().name(), state.name());
    assert_eq!(inputs.get("w").unwrap().name(), "w");
    bundle.clear_states().unwrap();
    assert_eq!(state.to_vec::<f32>().unwrap(), [0.0, 0.0]);
    drop((inputs, outputs, out, bundle));
    assert_eq!(
        [device_bytes(0), device_bytes(1)],
        before,
        "everything freed"
    );
}

#[test]
fn user_tensors_are_bound_by_name_and_checked() {
    let _g = support::lock();
    let rt = support::runtime();
    let bundle = Bundle::builder(&rt)
        .member(MemberSpec::new("a", acc_member("a")).alias("acc", "acc.out"))
        .member(MemberSpec::new("peek", peek_member()))
        .weights(WeightFile::from_bytes("w.safetensors", good_weights()).unwrap())
        .build()
        .unwrap();
    let peek = bundle.member("peek").unwrap();
    let x = rt
        .allocate_for(&peek.inputs()[0], neuron_rt::Placement::Device, Some(0))
        .unwrap();
    let y = rt
        .allocate_for(&peek.outputs()[0], neuron_rt::Placement::Device, Some(0))
        .unwrap();
    x.write(&[2.0f32, 3.0]).unwrap();
    let (inputs, mut outputs) = peek.sets(0, &[("x", &x), ("y", &y)]).unwrap();
    peek.model(0)
        .unwrap()
        .execute(&inputs, &mut outputs)
        .unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), [2.0, 6.0]); // written into the caller's tensor
    let err = peek.sets(0, &[("nope", &x)]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTensor { tensor, .. } if tensor == "nope"),
        "{err}"
    );
    let err = peek.sets(0, &[("w", &x)]).unwrap_err();
    assert!(err.to_string().contains("bound by the bundle"), "{err}");
    // A state's output is the bundle's as well.
    let a = bundle.member("a").unwrap();
    let err = a.sets(0, &[("acc.out", &x)]).unwrap_err();
    assert!(
        err.to_string().contains("`acc.out`") && err.to_string().contains("bound by the bundle"),
        "{err}"
    );
    let err = peek.sets(1, &[]).unwrap_err();
    assert!(err.to_string().contains("core 1"), "{err}");
    let wrong = rt
        .allocate_tensor(neuron_rt::Placement::Device, Some(0), 4, "wrong")
        .unwrap();
    let err = peek.sets(0, &[("x", &wrong)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 8,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
}

/// Writes a bundle directory: members a and peek with metaneffs (roles, checkpoint
/// keys, aliases), `weights` as the weight file's bytes.
fn write_dir(dir: &Path, weights: &[u8], key: &str) {
    let rt_free = [("a", acc_member("a")), ("peek", peek_member())];
    for (name, neff) in &rt_free {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("graph.neff"), neff).unwrap();
    }
    let t = |name: &str, dt: i32, shape: &[i64], role, ck: Option<&str>| MetaTensor {
        name: name.into(),
        shape: shape.to_vec(),
        data_type: dt,
        role,
        checkpoint_key: ck.map(str::to_owned),
    };
    let mut a = MetaNeff {
        name: "a".into(),
        ..MetaNeff::default()
    };
    a.inputs = vec![
        t("x", 1, &[1, 2], TensorRole::User, None),
        t("acc", 1, &[1, 2], TensorRole::State, Some("acc")),
        t("w", 1, &[2, 2], TensorRole::Weight, Some(key)),
    ];
    a.outputs = vec![t("acc.out", 1, &[1, 2], TensorRole::Unspecified, None)];
    a.output_aliases_to.insert(0, 1);
    std::fs::write(dir.join("a/metaneff.pb"), a.encode()).unwrap();
    let peek = MetaNeff {
        inputs: vec![
            t("x", 1, &[1, 2], TensorRole::User, None),
            t("w", 1, &[2, 2], TensorRole::Weight, Some(key)),
        ],
        outputs: vec![t("y", 1, &[1, 2], TensorRole::Unspecified, None)],
        ..MetaNeff::default()
    };
    std::fs::write(dir.join("peek/metaneff.pb"), peek.encode()).unwrap();
    let manifest = r#"{"format": 1,
        "config": {"vocab": 256, "hidden": 64, "layers": 2, "heads": 4, "head_dim": 16, "ctx": 128, "slots": 4},
        "members": [
          {"name": "a", "file": "a/graph.neff", "bucket": {"batch": 1, "seq_len": 1}, "kind": "decode", "sampling": "logits", "extra": 1},
          {"name": "peek", "file": "peek/graph.neff", "kind": "chain"}]}"#;
    std::fs::write(dir.join("bundle.json"), manifest).unwrap();
    std::fs::write(dir.join("weights.safetensors"), weights).unwrap();
}

#[test]
fn a_bundle_loads_from_a_directory_with_metaneffs() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    // The weight under a checkpoint key that differs from the input's name.
    let weights = safetensors_bytes(&[(
        "layers.0.w",
        Dtype::F32,
        vec![2, 2],
        f32_bytes(&[1.0, 0.0, 0.0, 2.0]),
    )]);
    write_dir(dir.path(), &weights, "layers.0.w");
    for mapped in [false, true] {
        let builder = Bundle::builder(&rt).dir(dir.path()).unwrap();
        let builder = if mapped {
            // SAFETY: the test's own temporary file, not changed while mapped.
            unsafe { builder.map_weights() }
        } else {
            builder
        };
        let bundle = builder.build().unwrap();
        let a = bundle.member("a").unwrap();
        assert_eq!(
            a.bucket(),
            Some(Bucket {
                batch: 1,
                seq_len: 1
            })
        );
        assert_eq!(a.kind(), &MemberKind::Decode);
        assert_eq!(a.sampling(), Some(Sampling::Logits));
        assert_eq!(a.key("w"), Some("layers.0.w"));
        assert_eq!(a.aliases().output_of("acc"), Some("acc.out"));
        assert_eq!(
            bundle.member("peek").unwrap().kind(),
            &MemberKind::ChainStage
        );
        assert_eq!(bundle.config().unwrap().slots, 4);
        run(&bundle, "a", 0, [1.0, 1.0]);
        run(&bundle, "a", 0, [1.0, 1.0]);
        assert_eq!(
            bundle.state(0, "acc").unwrap().to_vec::<f32>().unwrap(),
            [2.0, 4.0]
        );
        assert_eq!(bundle.memory().weights_bytes_per_core, 16);
    }
}

fn build_with(rt: &Runtime, weights: Vec<u8>) -> neuron_rt::Result<Bundle> {
    Bundle::builder(rt)
        .member(MemberSpec::new("a", acc_member("a")).alias("acc", "acc.out"))
        .member(MemberSpec::new("peek", peek_member()).role("w", TensorRole::Weight))
        .weights(WeightFile::from_bytes("bad.safetensors", weights)?)
        .build()
}

#[test]
fn bad_weights_are_refused_naming_the_tensor() {
    let _g = support::lock();
    let rt = support::runtime();
    let before = device_bytes(0);
    // Missing: the file holds another tensor.
    let other = safetensors_bytes(&[("v", Dtype::F32, vec![2, 2], vec![0; 16])]);
    let err = build_with(&rt, other).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::MissingWeight { tensor, member, .. }) if tensor == "w" && member == "peek"),
        "{err}"
    );
    // Wrong shape.
    let shape = safetensors_bytes(&[("w", Dtype::F32, vec![4], vec![0; 16])]);
    let err = build_with(&rt, shape).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::WeightShape { tensor, expected, found, .. })
            if tensor == "w" && expected == &[2, 2] && found == &[4]),
        "{err}"
    );
    // Wrong dtype (same bytes).
    let dtype = safetensors_bytes(&[("w", Dtype::I32, vec![2, 2], vec![0; 16])]);
    let err = build_with(&rt, dtype).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::WeightDType { tensor, found, .. }) if tensor == "w" && found == "I32"),
        "{err}"
    );
    assert!(err.to_string().contains("`w`"), "{err}");
    // Truncated: the last bytes of the data are gone.
    let mut truncated = good_weights();
    truncated.truncate(truncated.len() - 4);
    let err = build_with(&rt, truncated).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::CorruptWeights { file, .. }) if file.ends_with("bad.safetensors")),
        "{err}"
    );
    // Corrupt header: not JSON.
    let mut corrupt = good_weights();
    corrupt[8] = b'#';
    let err = WeightFile::from_bytes("c.safetensors", corrupt).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::CorruptWeights { .. })),
        "{err}"
    );
    // Header length past the end.
    let err = WeightFile::from_bytes("h.safetensors", vec![0xff; 12]).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::CorruptWeights { .. })),
        "{err}"
    );
    // A truncated file on disk, read and mapped.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let mut bytes = good_weights();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).unwrap();
    let err = WeightFile::read(&path).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::CorruptWeights { .. })),
        "{err}"
    );
    // SAFETY: the test's own file, not changed while mapped.
    let mapped = unsafe { WeightFile::map(&path) };
    let err = mapped.unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::CorruptWeights { .. })),
        "{err}"
    );
    assert_eq!(
        device_bytes(0),
        before,
        "nothing stays loaded after a refused build"
    );
}

#[test]
fn an_input_bound_by_nothing_is_refused() {
    let _g = support::lock();
    let rt = support::runtime();
    // `w` is not a weight in the file and not a declared user input.
    let no_w = safetensors_bytes(&[("v", Dtype::F32, vec![2, 2], vec![0; 16])]);
    let err = Bundle::builder(&rt)
        .member(MemberSpec::new("peek", peek_member()))
        .weights(WeightFile::from_bytes("v.safetensors", no_w.clone()).unwrap())
        .user_inputs(&["x"])
        .build()
        .unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::UnboundInput { member, input }) if member == "peek" && input == "w"),
        "{err}"
    );
    // Without declared user inputs, it is the caller's.
    let bundle = Bundle::builder(&rt)
        .member(MemberSpec::new("peek", peek_member()))
        .weights(WeightFile::from_bytes("v.safetensors", no_w).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        bundle.member("peek").unwrap().role("w"),
        Some(TensorRole::User)
    );
}

#[test]
fn members_disagreeing_on_a_state_are_refused() {
    let _g = support::lock();
    let rt = support::runtime();
    // acc as f32 [1,2] in `a`, as f32 [1,4] (via the must-alias suffix) elsewhere.
    let wide = ModelBuilder::new("wide")
        .input("acc.must_alias_input", DType::F32, &[1, 4])
        .output("acc", DType::F32, &[1, 4])
        .op(Op::Identity {
            input: "acc.must_alias_input".into(),
            out: "acc".into(),
        })
        .build()
        .unwrap();
    let err = Bundle::builder(&rt)
        .member(MemberSpec::new("a", acc_member("a")).alias("acc", "acc.out"))
        .member(MemberSpec::new("wide", wide).weight_key("acc.must_alias_input", "acc"))
        .weights(WeightFile::from_bytes("w.safetensors", good_weights()).unwrap())
        .build()
        .unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::StateConflict { state, member, .. }) if state == "acc" && member == "wide"),
        "{err}"
    );
}
