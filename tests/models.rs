//! Models: loading (bytes, file, core), tensor and model info, execution with checked
//! results, binding checks, libnrt failures; on nrt-sim through dlopen.

mod support;

use neuron_rt::{DType, Error, NrtStatus, Placement, TensorUsage};
use support::{
    add_model, assert_no_leaks, control, f32s, lock, matmul_relu_model, runtime,
    scale_bias_i32_model,
};

#[test]
fn tensor_info_describes_inputs_and_outputs() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&matmul_relu_model()).unwrap();
    let names =
        |infos: &[neuron_rt::TensorInfo]| infos.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(model.inputs()), ["x", "w"]);
    assert_eq!(names(model.outputs()), ["y", "r"]);
    let x = &model.inputs()[0];
    assert_eq!(
        (x.usage, x.dtype, x.size),
        (TensorUsage::Input, DType::F32, 24)
    );
    assert_eq!(x.shape, [2, 3]);
    assert_eq!(x.element_count(), Some(6));
    let y = model.tensor_info("y").unwrap();
    assert_eq!(
        (y.usage, y.size, y.shape.as_slice()),
        (TensorUsage::Output, 16, &[2u32, 2][..])
    );
    assert!(model.tensor_info("nope").is_none());
    assert_eq!(model.label(), "mm");
    let i32_model = rt.load_model(&scale_bias_i32_model(1.0, 0.0)).unwrap();
    assert_eq!(i32_model.inputs()[0].dtype, DType::I32);
}

#[test]
fn add_executes_with_exact_results() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    assert_eq!(inputs.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(outputs.names().collect::<Vec<_>>(), ["out"]);
    for (_, t) in inputs.iter() {
        assert_eq!(
            (t.placement(), t.core(), t.size()),
            (Placement::Device, model.core(), 24)
        );
    }
    inputs
        .get("a")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
        .unwrap();
    inputs
        .get("b")
        .unwrap()
        .write(&[0.5f32, -2.0, 10.0, 0.0, 1e6, -6.0])
        .unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(
        f32s(&outputs, "out"),
        [1.5, 0.0, 13.0, 4.0, 1_000_005.0, 0.0]
    );
    let before = control().counters().cores[model.core().unwrap() as usize].executions;
    model.execute_repeat(&inputs, &mut outputs, 3).unwrap();
    let after = control().counters().cores[model.core().unwrap() as usize].executions;
    assert_eq!(after - before, 3);
    assert_eq!(
        f32s(&outputs, "out"),
        [1.5, 0.0, 13.0, 4.0, 1_000_005.0, 0.0]
    );
}

#[test]
fn matmul_relu_and_integer_models_compute_exactly() {
    let _g = lock();
    let rt = runtime();
    let mm = rt.load_model(&matmul_relu_model()).unwrap();
    let inputs = mm.allocate_inputs().unwrap();
    let mut outputs = mm.allocate_outputs().unwrap();
    inputs
        .get("x")
        .unwrap()
        .write(&[1.0f32, 2.0, 3.0, -4.0, 5.0, -6.0])
        .unwrap();
    inputs
        .get("w")
        .unwrap()
        .write(&[1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0])
        .unwrap();
    mm.execute(&inputs, &mut outputs).unwrap();
    // [[1,2,3],[-4,5,-6]] x [[1,0],[0,1],[1,-1]] = [[4,-1],[-10,11]]
    assert_eq!(f32s(&outputs, "y"), [4.0, -1.0, -10.0, 11.0]);
    assert_eq!(f32s(&outputs, "r"), [4.0, 0.0, 0.0, 11.0]);

    let sb = rt.load_model(&scale_bias_i32_model(3.0, -1.0)).unwrap();
    let inputs = sb.allocate_inputs().unwrap();
    let mut outputs = sb.allocate_outputs().unwrap();
    inputs
        .get("x")
        .unwrap()
        .write(&[0i32, 1, -5, 1000])
        .unwrap();
    sb.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(
        outputs.get("y").unwrap().to_vec::<i32>().unwrap(),
        [-1, 2, -16, 2999]
    );
}

#[test]
fn user_built_sets_with_host_tensors_and_slices_execute() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let core = model.core().unwrap();
    let a = rt
        .allocate_tensor(Placement::Host, None, 24, "host-a")
        .unwrap();
    let big = rt
        .allocate_tensor(Placement::Device, Some(core), 48, "big")
        .unwrap();
    let b = big.slice(24, 24, "b-slice").unwrap();
    let out = rt
        .allocate_tensor(Placement::Device, Some(core), 24, "result")
        .unwrap();
    a.write(&[1.0f32; 6]).unwrap();
    big.write(&[
        0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
    ])
    .unwrap();
    let mut inputs = rt.tensor_set().unwrap();
    inputs.insert("a", &a).unwrap();
    inputs.insert("b", &b).unwrap();
    let mut outputs = rt.tensor_set().unwrap();
    outputs.insert("out", &out).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(out.to_vec::<f32>().unwrap(), [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
}

#[test]
fn load_from_a_file_and_onto_a_given_core() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("add.neff");
    std::fs::write(&path, add_model()).unwrap();
    let rt = runtime();
    let model = rt.load_model_file(&path).unwrap();
    assert_eq!(model.label(), path.display().to_string());
    assert_eq!(model.info().unwrap().core, model.core().unwrap());
    let last = rt.visible_core_count().unwrap() - 1;
    let on_last = rt.load_model_file_on(&path, last).unwrap();
    assert_eq!(on_last.core(), Some(last));
    assert_eq!(on_last.info().unwrap().core, last);
    assert_eq!(
        control().counters().cores[last as usize].models,
        if last == model.core().unwrap() { 2 } else { 1 }
    );
    let from_bytes = rt.load_model_on(&add_model(), last).unwrap();
    assert_eq!(from_bytes.core(), Some(last));
    // Tensors allocated for it land on its core, and it runs there.
    let inputs = on_last.allocate_inputs().unwrap();
    let mut outputs = on_last.allocate_outputs().unwrap();
    assert_eq!(inputs.get("a").unwrap().core(), Some(last));
    inputs.get("a").unwrap().write(&[2.0f32; 6]).unwrap();
    inputs.get("b").unwrap().write(&[3.0f32; 6]).unwrap();
    on_last.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(f32s(&outputs, "out"), [5.0; 6]);
}

#[test]
fn load_errors_are_typed() {
    let _g = lock();
    let rt = runtime();
    let err = rt.load_model_file("/nonexistent/model.neff").unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.to_str() == Some("/nonexistent/model.neff")),
        "{err}"
    );
    let err = rt.load_model(&[]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "neff",
                ..
            }
        ),
        "{err}"
    );
    let empty = tempfile::NamedTempFile::new().unwrap();
    let err = rt.load_model_file(empty.path()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("0 bytes")),
        "{err}"
    );
    let err = rt.load_model(b"definitely not a NEFF").unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_load",
                ..
            }
        ),
        "{err}"
    );
    let mut corrupt = add_model();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF; // payload no longer matches its hash
    let err = rt.load_model(&corrupt).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    let cores = rt.visible_core_count().unwrap();
    let err = rt.load_model_on(&add_model(), cores + 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_load",
                ..
            }
        ),
        "{err}"
    );
    let err = rt.load_model_on(&add_model(), u32::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "core",
                ..
            }
        ),
        "{err}"
    );
    control().inject_faults("load:nth=1").unwrap();
    let err = rt.load_model(&add_model()).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource), "{err}");
    // Usable afterwards, with nothing left over from the failures.
    assert_eq!(control().counters().live_objects(), 0);
    let model = rt.load_model(&add_model()).unwrap();
    assert_eq!(model.outputs().len(), 1);
}

#[test]
fn missing_and_mis_sized_bindings_are_named_before_libnrt_runs() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let core = model.core().unwrap();
    let executions = || control().counters().cores[core as usize].executions;
    let start = executions();

    let mut inputs = rt.tensor_set().unwrap();
    let a = rt
        .allocate_tensor(Placement::Device, Some(core), 24, "a")
        .unwrap();
    inputs.insert("a", &a).unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    let err = model.execute(&inputs, &mut outputs).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { model, role: "input", tensor } if model == "add" && tensor == "b"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "model `add` input `b` is not bound in the input tensor set"
    );

    let short = rt
        .allocate_tensor(Placement::Device, Some(core), 20, "short-b")
        .unwrap();
    inputs.insert("b", &short).unwrap();
    let err = model.execute(&inputs, &mut outputs).unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { tensor, what: "model input", expected: 24, actual: 20 } if tensor == "b"),
        "{err}"
    );

    inputs.insert("b", &a).unwrap();
    let empty_out = rt.tensor_set().unwrap();
    let mut empty_out = empty_out;
    let err = model
        .execute_repeat(&inputs, &mut empty_out, 2)
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { role: "output", tensor, .. } if tensor == "out"),
        "{err}"
    );
    let big_out = rt
        .allocate_tensor(Placement::Device, Some(core), 32, "big-out")
        .unwrap();
    empty_out.insert("out", &big_out).unwrap();
    let err = model.execute(&inputs, &mut empty_out).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::SizeMismatch {
                what: "model output",
                expected: 24,
                actual: 32,
                ..
            }
        ),
        "{err}"
    );

    if rt.visible_core_count().unwrap() > 1 {
        let other_core = if core == 0 { 1 } else { 0 };
        let elsewhere = rt
            .allocate_tensor(Placement::Device, Some(other_core), 24, "elsewhere")
            .unwrap();
        inputs.insert("b", &elsewhere).unwrap();
        let err = model.execute(&inputs, &mut outputs).unwrap_err();
        assert!(
            matches!(&err, Error::WrongCore { tensor, tensor_core, expected_core, .. }
                if tensor == "elsewhere" && *tensor_core == other_core && *expected_core == core),
            "{err}"
        );
        inputs.insert("b", &a).unwrap();
    }

    let err = model.execute_repeat(&inputs, &mut outputs, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "repeat",
                ..
            }
        ),
        "{err}"
    );
    let err = model
        .execute_repeat(&inputs, &mut outputs, u32::MAX)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "repeat",
                ..
            }
        ),
        "{err}"
    );

    // None of that reached the device; a correct binding runs.
    assert_eq!(executions(), start);
    a.write(&[1.5f32; 6]).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(f32s(&outputs, "out"), [3.0; 6]);
    assert_eq!(executions(), start + 1);
}

#[test]
fn execution_failures_carry_status_function_and_model() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let core = model.core().unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    inputs.get("a").unwrap().write(&[1.0f32; 6]).unwrap();
    inputs.get("b").unwrap().write(&[1.0f32; 6]).unwrap();
    control()
        .inject_faults(&format!("exec:vnc={core}:nth=1:status=1003"))
        .unwrap();
    let err = model.execute(&inputs, &mut outputs).unwrap_err();
    match &err {
        Error::Nrt {
            function,
            status,
            message,
            context,
            ..
        } => {
            assert_eq!(*function, "nrt_execute");
            assert_eq!(*status, NrtStatus::ExecCompletedWithNumErr);
            assert_eq!(context.as_deref(), Some("model `add`"));
            // The library's own text for the status (nrt_get_status_as_str).
            assert!(message.as_deref().is_some_and(|m| !m.is_empty()), "{err}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!err.is_fatal());
    control()
        .inject_faults(&format!("exec:vnc={core}:nth=1:status=NRT_HW_ERROR"))
        .unwrap();
    let err = model.execute(&inputs, &mut outputs).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::HwError));
    assert!(err.is_fatal());
    // The next execution succeeds.
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(f32s(&outputs, "out"), [2.0; 6]);
}

#[test]
fn models_unload_when_the_last_handle_drops() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let core = model.core().unwrap() as usize;
    let clone = model.clone();
    drop(model);
    assert_eq!(control().counters().cores[core].models, 1);
    assert!(format!("{clone:?}").contains("add"));
    drop(clone);
    assert_eq!(control().counters().cores[core].models, 0);
    drop(rt);
    assert_no_leaks();
}

#[test]
fn everything_dropped_leaves_no_live_object_or_byte() {
    let _g = lock();
    {
        let rt = runtime();
        let model = rt.load_model(&matmul_relu_model()).unwrap();
        let inputs = model.allocate_inputs().unwrap();
        let mut outputs = model.allocate_outputs().unwrap();
        model.execute_repeat(&inputs, &mut outputs, 2).unwrap();
        let host = rt.allocate_tensor(Placement::Host, None, 100, "h").unwrap();
        let slice = host.slice(10, 10, "hs").unwrap();
        let buf = rt.tensor_from_buffer(vec![0; 10], "buf").unwrap();
        let mut set = rt.tensor_set().unwrap();
        set.insert("s", &slice).unwrap();
        set.insert("b", &buf).unwrap();
        let c = control().counters();
        assert!(c.live_objects() >= 10, "{c:?}");
        assert!(c.host_bytes >= 100, "{c:?}");
    }
    assert_no_leaks();
}
