//! State tensors (issue 27, item 1): one tensor bound as an input and as the output
//! that updates it in place, on the sync, async (schedule) and pool paths; aliases from
//! a metaneff, from the `.must_alias_input` suffix and from the caller; mismatches
//! refused; a HOST tensor bound both ways completes on every path (no self-deadlock on
//! its storage lock).
//!
//! Runs on the dlopen'ed simulator.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use neuron_rt::generate::{
    Aliases, BundleError, MUST_ALIAS_SUFFIX, MetaNeff, MetaTensor, TensorRole, bind_state,
};
use neuron_rt::{Error, Model, ModelPool, Placement, Runtime, Tensor};
use nrt_sim::{DType, ModelBuilder, Op};

/// `state.out = state + x` on f32 [4].
fn acc_model(state_in: &str, state_out: &str) -> Vec<u8> {
    ModelBuilder::new("acc")
        .input(state_in, DType::F32, &[4])
        .input("x", DType::F32, &[4])
        .output(state_out, DType::F32, &[4])
        .op(Op::Add {
            a: state_in.into(),
            b: "x".into(),
            out: state_out.into(),
        })
        .build()
        .unwrap()
}

/// The error of binding `tensor` as `state` / `state.out` of `model` in its own sets.
fn refused(model: &Model, tensor: &Tensor) -> Error {
    let mut inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    let err = bind_state(
        model,
        &mut inputs,
        &mut outputs,
        "state",
        "state.out",
        tensor,
    )
    .unwrap_err();
    // Nothing was bound by the refused call: the sets still hold their own tensors.
    assert_eq!(inputs.get("state").unwrap().name(), "state");
    assert_eq!(outputs.get("state.out").unwrap().name(), "state.out");
    err
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// Runs `f` on a thread and fails the test if it has not returned within 20 s (a
/// deadlock on a host lock would hang forever).
fn within_timeout<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not finish within 20 s: deadlock"))
}

#[test]
fn an_in_place_update_is_visible_across_executions() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model(&acc_model("state", "state.out")).unwrap();
    let mut inputs = model.allocate_inputs().unwrap();
    let mut outputs = rt.tensor_set().unwrap();
    let state = rt
        .allocate_for(&model.inputs()[0], Placement::Device, model.core())
        .unwrap();
    state.write(&[10.0f32, 20.0, 30.0, 40.0]).unwrap();
    bind_state(
        &model,
        &mut inputs,
        &mut outputs,
        "state",
        "state.out",
        &state,
    )
    .unwrap();
    inputs
        .get("x")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, 4.0])
        .unwrap();
    for n in 1..=3 {
        model.execute(&inputs, &mut outputs).unwrap();
        assert_eq!(
            f32s(&state),
            [
                10.0 + n as f32,
                20.0 + 2.0 * n as f32,
                30.0 + 3.0 * n as f32,
                40.0 + 4.0 * n as f32
            ]
        );
    }
    assert!(outputs.get("state.out").unwrap().size() == state.size());
}

#[test]
fn aliases_come_from_the_metaneff() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model(&acc_model("input0", "output0")).unwrap();
    let mut meta = MetaNeff::default();
    for info in model.inputs() {
        meta.inputs
            .push(MetaTensor::from_info(info, TensorRole::User));
    }
    for info in model.outputs() {
        meta.outputs
            .push(MetaTensor::from_info(info, TensorRole::Unspecified));
    }
    let state_index = meta.inputs.iter().position(|t| t.name == "input0").unwrap();
    meta.inputs[state_index].role = TensorRole::State;
    meta.output_aliases_to.insert(0, state_index);
    // Through the protobuf bytes, as a compiler writes them.
    let meta = MetaNeff::decode(&meta.encode(), "metaneff.pb").unwrap();
    let aliases = Aliases::from_metaneff(&model, &meta).unwrap();
    assert_eq!(aliases.output_of("input0"), Some("output0"));
    assert_eq!(aliases.input_of("output0"), Some("input0"));
    assert_eq!(aliases.len(), 1);
    aliases.check(&model).unwrap();
    // A metaneff naming a tensor the model lacks is refused, naming it.
    let mut wrong = meta.clone();
    wrong.outputs[0].name = "nope".into();
    let err = Aliases::from_metaneff(&model, &wrong).unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::Metaneff { reason, .. }) if reason.contains("`nope`")),
        "{err}"
    );
}

#[test]
fn aliases_come_from_the_must_alias_suffix() {
    let _g = support::lock();
    let rt = support::runtime();
    let input = format!("cache{MUST_ALIAS_SUFFIX}");
    let model = rt.load_model(&acc_model(&input, "cache")).unwrap();
    let aliases = Aliases::from_suffix(&model);
    assert_eq!(aliases.output_of(&input), Some("cache"));
    assert_eq!(aliases.len(), 1);
    // And a plain model has none.
    let plain = rt.load_model(&acc_model("state", "state.out")).unwrap();
    assert!(Aliases::from_suffix(&plain).is_empty());
}

#[test]
fn aliases_come_from_the_caller_and_are_checked() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model(&acc_model("state", "state.out")).unwrap();
    let aliases = Aliases::new().with("state", "state.out");
    aliases.check(&model).unwrap();
    // Replacing: the same input aliased again keeps one alias.
    assert_eq!(aliases.clone().with("state", "state.out").len(), 1);
    let err = Aliases::new()
        .with("state", "missing")
        .check(&model)
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTensor { role: "output", tensor, .. } if tensor == "missing"),
        "{err}"
    );
}

#[test]
fn a_state_of_another_size_or_dtype_is_refused() {
    let _g = support::lock();
    let rt = support::runtime();
    // state [1,4] in, state.out = state @ w: [1,8] out (32 bytes, not 16).
    let grow = ModelBuilder::new("grow")
        .input("state", DType::F32, &[1, 4])
        .input("w", DType::F32, &[4, 8])
        .output("state.out", DType::F32, &[1, 8])
        .op(Op::MatMul {
            a: "state".into(),
            b: "w".into(),
            out: "state.out".into(),
        })
        .build()
        .unwrap();
    let model = rt.load_model(&grow).unwrap();
    let state = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "state")
        .unwrap();
    let err = refused(&model, &state);
    match err.as_bundle() {
        Some(BundleError::AliasMismatch {
            input,
            output,
            reason,
            ..
        }) => {
            assert_eq!((input.as_str(), output.as_str()), ("state", "state.out"));
            assert!(
                reason.contains("16 bytes") && reason.contains("32"),
                "{reason}"
            );
        }
        _ => panic!("expected AliasMismatch, got {err}"),
    }
    // Same size, other element type: i32 state, f32 output.
    let dtype = ModelBuilder::new("dtype")
        .input("state", DType::I32, &[4])
        .input("x", DType::F32, &[4])
        .output("out", DType::F32, &[4])
        .op(Op::Identity {
            input: "x".into(),
            out: "out".into(),
        })
        .build()
        .unwrap();
    let model = rt.load_model(&dtype).unwrap();
    let err = Aliases::new()
        .with("state", "out")
        .check(&model)
        .unwrap_err();
    assert!(
        matches!(err.as_bundle(), Some(BundleError::AliasMismatch { reason, .. }) if reason.contains("i32") || reason.contains("I32")),
        "{err}"
    );
    // A tensor of the wrong size, or typed for another dtype, for a matching pair.
    let model = rt.load_model(&acc_model("state", "state.out")).unwrap();
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "small")
        .unwrap();
    let err = refused(&model, &small);
    assert!(
        matches!(
            &err,
            Error::SizeMismatch {
                expected: 16,
                actual: 8,
                ..
            }
        ),
        "{err}"
    );
    let int_model = rt
        .load_model(&support::scale_bias_i32_model(1.0, 0.0))
        .unwrap();
    let ints = rt
        .allocate_for(&int_model.inputs()[0], Placement::Device, Some(0))
        .unwrap();
    let err = refused(&model, &ints);
    assert!(
        matches!(err.as_bundle(), Some(BundleError::TensorDType { bound_as, .. }) if bound_as == "state"),
        "{err}"
    );
    // A device tensor on another core.
    let other = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "other")
        .unwrap();
    let err = refused(&model, &other);
    assert!(
        matches!(&err, Error::WrongCore { tensor_core: 1, .. }),
        "{err}"
    );
}

/// A host tensor bound as `state` and `state.out`, x = 1.
fn host_state_sets(
    rt: &Runtime,
    model: &Model,
) -> (neuron_rt::TensorSet, neuron_rt::TensorSet, Tensor) {
    let mut inputs = model.allocate_inputs().unwrap();
    let mut outputs = rt.tensor_set().unwrap();
    let state = rt
        .allocate_tensor(Placement::Host, None, 16, "host_state")
        .unwrap();
    state.write(&[0.0f32; 4]).unwrap();
    bind_state(
        model,
        &mut inputs,
        &mut outputs,
        "state",
        "state.out",
        &state,
    )
    .unwrap();
    inputs.get("x").unwrap().write(&[1.0f32; 4]).unwrap();
    (inputs, outputs, state)
}

#[test]
fn a_host_state_bound_both_ways_runs_on_the_sync_path() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model(&acc_model("state", "state.out")).unwrap();
    let (inputs, mut outputs, state) = host_state_sets(&rt, &model);
    let state = within_timeout("sync execute", move || {
        for _ in 0..3 {
            model.execute(&inputs, &mut outputs).unwrap();
        }
        state
    });
    assert_eq!(f32s(&state), [3.0; 4]);
}

#[test]
fn a_host_state_bound_both_ways_runs_on_the_schedule_path() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model(&acc_model("state", "state.out")).unwrap();
    let (inputs, outputs, state) = host_state_sets(&rt, &model);
    let unit = rt.compute_unit(0).unwrap();
    let reader = state.clone();
    let state = within_timeout("scheduled executions", move || {
        let (mut inputs, mut outputs) = (inputs, outputs);
        for _ in 0..3 {
            let request = unit
                .execute(&model, inputs, outputs)
                .map_err(|r| r.into_parts().0)
                .unwrap();
            (inputs, outputs) = request.wait().unwrap();
        }
        // Two queued at once on one queue (same storage, same queue: no conflict), and
        // a synchronous read that waits for both.
        let (i2, o2) = (model.allocate_inputs().unwrap(), rt.tensor_set().unwrap());
        let (mut i2, mut o2) = (i2, o2);
        bind_state(&model, &mut i2, &mut o2, "state", "state.out", &reader).unwrap();
        i2.get("x").unwrap().write(&[1.0f32; 4]).unwrap();
        let a = unit
            .execute(&model, inputs, outputs)
            .map_err(|r| r.into_parts().0)
            .unwrap();
        let b = unit
            .execute(&model, i2, o2)
            .map_err(|r| r.into_parts().0)
            .unwrap();
        let seen = f32s(&reader); // waits for both requests (host lock)
        drop((a, b));
        (reader, seen)
    });
    assert_eq!(state.1, [5.0; 4]);
    assert_eq!(f32s(&state.0), [5.0; 4]);
}

#[test]
fn a_host_state_bound_both_ways_runs_on_the_pool_path() {
    let _g = support::lock();
    let rt = support::runtime();
    let pool = ModelPool::builder(&rt, acc_model("state", "state.out"))
        .build()
        .unwrap();
    let state = rt
        .allocate_tensor(Placement::Host, None, 16, "host_state")
        .unwrap();
    state.write(&[0.0f32; 4]).unwrap();
    let device_state = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "dev_state")
        .unwrap();
    let (p, s, d) = (pool.clone(), state.clone(), device_state.clone());
    within_timeout("pool executions", move || {
        for core in [0, 1, 0] {
            let mut lease = p.lease_on_blocking(core).unwrap();
            assert_eq!(lease.core(), core);
            lease.bind_state("state", "state.out", &s).unwrap();
            lease
                .inputs()
                .get("x")
                .unwrap()
                .write(&[1.0f32; 4])
                .unwrap();
            let lease = lease
                .execute_blocking()
                .map_err(|f| f.into_error())
                .unwrap();
            // The output is the state itself, left on the device.
            assert_eq!(
                lease.outputs().get("state.out").unwrap().name(),
                "host_state"
            );
        }
        // A device state on core 1: a lease there accepts it, one on core 0 refuses it.
        let mut lease = p.lease_on_blocking(1).unwrap();
        lease.bind_state("state", "state.out", &d).unwrap();
        lease
            .inputs()
            .get("x")
            .unwrap()
            .write(&[2.0f32; 4])
            .unwrap();
        drop(
            lease
                .execute_blocking()
                .map_err(|f| f.into_error())
                .unwrap(),
        );
        let mut lease = p.lease_on_blocking(0).unwrap();
        let err = lease.bind_state("state", "state.out", &d).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongCore {
                    tensor_core: 1,
                    expected_core: 0,
                    ..
                }
            ),
            "{err}"
        );
    });
    assert_eq!(f32s(&state), [3.0; 4]);
    assert_eq!(f32s(&device_state), [2.0; 4]);
    // The pool's own tensors went back: a plain request writes its own output.
    let out = pool
        .infer_blocking(&neuron_rt::inputs!["state" => &[5.0f32; 4], "x" => &[1.0f32; 4]])
        .unwrap();
    assert_eq!(out["state.out"].to_vec::<f32>().unwrap(), [6.0; 4]);
    assert_eq!(f32s(&state), [3.0; 4]);
    let err = pool.lease_on_blocking(7).unwrap_err();
    assert!(
        matches!(err, Error::PoolUnavailable { ref reason, .. } if reason.contains("core 7")),
        "{err}"
    );
    pool.shutdown_blocking();
}
