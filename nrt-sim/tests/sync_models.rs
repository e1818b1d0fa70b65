//! Models and synchronous execution through the exported C functions of the in-process
//! simulator: loading, tensor descriptions, exact results, binding errors, busy time,
//! faults, unmodelled functions, concurrent traffic.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sim::{DType, ModelBuilder, Op};
use nrt_sys::*;
use std::ffi::CStr;
use std::time::{Duration, Instant};

fn mlp_model() -> Vec<u8> {
    ModelBuilder::new("mlp")
        .input("x", DType::F32, &[2, 3])
        .input("w", DType::F32, &[3, 2])
        .output("y", DType::F32, &[2, 2])
        .output("copy", DType::F32, &[2, 3])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "h".into(),
        })
        .op(Op::ScaleBias {
            input: "h".into(),
            scale: 0.5,
            bias: -1.0,
            out: "s".into(),
        })
        .op(Op::Relu {
            input: "s".into(),
            out: "y".into(),
        })
        .op(Op::Identity {
            input: "x".into(),
            out: "copy".into(),
        })
        .build()
        .unwrap()
}

#[test]
fn models_report_their_tensors_and_placement() {
    let _s = Session::new();
    let m = load(&mlp_model(), 1);
    let mut info = std::ptr::null_mut();
    // SAFETY: valid handle and out-pointers; the array is read within its count.
    unsafe {
        assert_eq!(nrt_get_model_tensor_info(m, &mut info), NRT_SUCCESS);
        let count = (*info).tensor_count as usize;
        assert_eq!(count, 4);
        let entries = (*info).tensor_array.as_slice(count);
        let summary: Vec<(String, u32, usize, u32, Vec<u32>)> = entries
            .iter()
            .map(|e| {
                (
                    CStr::from_ptr(e.name.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                    e.usage,
                    e.size,
                    e.dtype,
                    std::slice::from_raw_parts(e.shape, e.ndim as usize).to_vec(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "x".into(),
                    NRT_TENSOR_USAGE_INPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 3]
                ),
                (
                    "w".into(),
                    NRT_TENSOR_USAGE_INPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![3, 2]
                ),
                (
                    "y".into(),
                    NRT_TENSOR_USAGE_OUTPUT,
                    16,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 2]
                ),
                (
                    "copy".into(),
                    NRT_TENSOR_USAGE_OUTPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 3]
                ),
            ]
        );
        assert_eq!(nrt_free_model_tensor_info(info), NRT_SUCCESS);
        assert_eq!(
            nrt_free_model_tensor_info(info),
            NRT_INVALID,
            "double free is caught"
        );
        assert_eq!(
            nrt_free_model_tensor_info(std::ptr::null_mut()),
            NRT_INVALID
        );

        let mut mi = nrt_model_info_t::default();
        let mut written = 0;
        assert_eq!(nrt_get_model_info(m, &mut mi, 4, &mut written), NRT_SUCCESS);
        assert_eq!((mi.vnc, written), (1, 4));
        let mut n = 0;
        assert_eq!(nrt_get_model_vnc_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(n, 1);
        assert_eq!(nrt_get_model_nc_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(nrt_get_model_instance_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(n, 1);
    }
    let c = counters();
    assert_eq!(c.cores[1].models, 1);
    assert!(
        c.cores[1].device_bytes > 1024,
        "the model occupies its file size"
    );
    unload(m);
    // SAFETY: stale handle checked.
    assert_eq!(unsafe { nrt_unload(m) }, NRT_INVALID_HANDLE);
    assert_eq!(counters().cores[1].device_bytes, 0);
}

#[test]
fn load_picks_a_core_and_rejects_bad_files() {
    let _s = Session::new();
    let file = add_model(4, Duration::ZERO);
    let m = load(&file, -1);
    let mut mi = nrt_model_info_t::default();
    // SAFETY: writable info; NULL size-out allowed.
    unsafe {
        assert_eq!(
            nrt_get_model_info(m, &mut mi, 4, std::ptr::null_mut()),
            NRT_SUCCESS
        )
    };
    assert_eq!(mi.vnc, 0, "-1 picks the first core with room");
    assert_eq!(try_load(&file, 2), Err(NRT_LOAD_NOT_ENOUGH_NC));
    assert!(last_error().contains("only 2 core(s) are visible"));
    assert_eq!(try_load(&file, -5), Err(NRT_INVALID));
    // Corrupted payload (hash), truncated file, other packaging version.
    let mut corrupt = file.clone();
    *corrupt.last_mut().unwrap() ^= 1;
    assert_eq!(try_load(&corrupt, 0), Err(NRT_INVALID));
    assert!(last_error().contains("SHA-256"));
    assert_eq!(try_load(&file[..file.len() - 1], 0), Err(NRT_INVALID));
    assert_eq!(try_load(&file[..100], 0), Err(NRT_INVALID));
    let mut v3 = file.clone();
    v3[0] = 3;
    assert_eq!(try_load(&v3, 0), Err(NRT_UNSUPPORTED_NEFF_VERSION));
    // Packaging version 2 (a real NEFF's, MD5) around a text payload: neither kind.
    let mut v2 = file.clone();
    v2[0] = 2;
    assert_eq!(try_load(&v2, 0), Err(NRT_INVALID));
    assert!(last_error().contains("neither a NEFF"), "{}", last_error());
    // A container with a damaged gzip payload: read as a real NEFF, refused.
    let mut neff = file[..1024].to_vec();
    let payload = [0x1f, 0x8b, 8, 0, 1, 2, 3, 4];
    neff[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    neff[172..204].copy_from_slice(&hmac_sha256::Hash::hash(&payload));
    neff.extend_from_slice(&payload);
    assert_eq!(try_load(&neff, 0), Err(NRT_INVALID));
    assert!(last_error().contains("real NEFF"), "{}", last_error());
    // NULL bytes / NULL out-pointer.
    let mut out = std::ptr::null_mut();
    // SAFETY: NULL inputs are rejected before use.
    unsafe {
        assert_eq!(nrt_load(std::ptr::null(), 10, 0, -1, &mut out), NRT_INVALID);
        assert_eq!(
            nrt_load(
                file.as_ptr().cast(),
                file.len(),
                0,
                -1,
                std::ptr::null_mut()
            ),
            NRT_INVALID
        );
        assert_eq!(
            nrt_load(file.as_ptr().cast(), file.len(), 0, 4, &mut out),
            NRT_INVALID
        );
    }
    unload(m);
}

#[test]
fn execute_computes_outputs_exactly() {
    on_exec_stack(|| {
        let _s = Session::new();
        let m = load(&mlp_model(), 0);
        let x = alloc(0, 24, "x");
        let w = alloc_host(24, "w");
        let y = alloc(0, 16, "y");
        let copy = alloc(0, 24, "copy");
        write_f32(x, &[1., 2., 3., 4., 5., 6.]);
        write_f32(w, &[1., 0., 0., 1., 1., -1.]);
        let ins = set_of(&[("x", x), ("w", w), ("extra", y)]);
        let outs = set_of(&[("y", y), ("copy", copy)]);
        assert_eq!(execute(m, ins, outs), NRT_SUCCESS, "{}", last_error());
        // x@w = [[1+3, 2-3], [4+6, 5-6]] = [[4,-1],[10,-1]]; *0.5-1 = [[1,-1.5],[4,-1.5]]; relu
        assert_eq!(read_f32(y, 4), vec![1., 0., 4., 0.]);
        assert_eq!(read_f32(copy, 6), vec![1., 2., 3., 4., 5., 6.]);
        let before = counters().cores[0].executions;
        // SAFETY: handles checked.
        assert_eq!(unsafe { nrt_execute_repeat(m, ins, outs, 3) }, NRT_SUCCESS);
        assert_eq!(counters().cores[0].executions, before + 3);
        // SAFETY: handles checked.
        assert_eq!(unsafe { nrt_execute_repeat(m, ins, outs, 0) }, NRT_INVALID);
        destroy_set(ins);
        destroy_set(outs);
        for t in [x, w, y, copy] {
            free(t);
        }
        unload(m);
    });
}

#[test]
fn execute_rejects_missing_misplaced_missized_and_freed_tensors() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 4, Duration::ZERO);
        // Missing input.
        let partial = set_of(&[("a", rig.a)]);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(
            last_error().contains("input 'b' is missing"),
            "{}",
            last_error()
        );
        // Missing output.
        let no_out = new_set();
        assert_eq!(execute(rig.model, rig.inputs, no_out), NRT_INVALID);
        assert!(last_error().contains("output 'out' is missing"));
        // Wrong size.
        let small = alloc(0, 12, "small");
        assert_eq!(add(partial, "b", small), NRT_SUCCESS);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(
            last_error().contains("is 12 bytes; model 'add' expects 16 bytes"),
            "{}",
            last_error()
        );
        // On another core.
        let far = alloc(1, 16, "far");
        assert_eq!(add(partial, "b", far), NRT_SUCCESS);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(last_error().contains("is on core 1, but model 'add' is loaded on core 0"));
        // Freed after being added.
        let gone = alloc(0, 16, "gone");
        assert_eq!(add(partial, "b", gone), NRT_SUCCESS);
        free(gone);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID_HANDLE);
        assert!(
            last_error().contains("tensor bound as input 'b'"),
            "{}",
            last_error()
        );
        // Bad model / set handles.
        assert_eq!(
            execute(std::ptr::null_mut(), rig.inputs, rig.outputs),
            NRT_INVALID
        );
        assert_eq!(
            execute(rig.model, std::ptr::null_mut(), rig.outputs),
            NRT_INVALID
        );
        assert_eq!(
            execute(rig.a.cast(), rig.inputs, rig.outputs),
            NRT_INVALID_HANDLE
        );
        assert_eq!(
            counters().cores[0].executions,
            0,
            "rejected runs never execute"
        );
        destroy_set(partial);
        destroy_set(no_out);
        free(small);
        free(far);
        rig.release();
    });
}

#[test]
fn executions_on_one_core_serialize_and_count_busy_time() {
    on_exec_stack(|| {
        let _s = Session::new();
        let d = Duration::from_millis(30);
        let rig0 = AddRig::new(0, 4, d);
        let rig0b = AddRig::new(0, 4, d);
        let start = Instant::now();
        std::thread::scope(|s| {
            let (m, i, o) = (
                rig0b.model as usize,
                rig0b.inputs as usize,
                rig0b.outputs as usize,
            );
            spawn_with_exec_stack(s, move || {
                assert_eq!(execute(m as *mut _, i as *mut _, o as *mut _), NRT_SUCCESS)
            });
            assert_eq!(rig0.execute(), NRT_SUCCESS);
        });
        assert!(
            start.elapsed() >= 2 * d,
            "two runs on one core overlapped: {:?}",
            start.elapsed()
        );
        let c = counters();
        assert_eq!(c.cores[0].executions, 2);
        assert!(c.cores[0].busy >= 2 * d, "busy {:?}", c.cores[0].busy);
        assert_eq!(c.cores[1].busy, Duration::ZERO);
        rig0.release();
        rig0b.release();
    });
}

#[test]
fn exec_faults_fire_on_the_nth_execution_of_a_core() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        let rig1 = AddRig::new(1, 2, Duration::ZERO);
        write_f32(rig.a, &[1., 2.]);
        write_f32(rig.b, &[10., 20.]);
        control()
            .inject_faults("exec:vnc=0:nth=3:status=1003")
            .unwrap();
        assert_eq!(rig1.execute(), NRT_SUCCESS, "core 1 does not count");
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_SUCCESS);
        write_f32(rig.out, &[0., 0.]);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_NUM_ERR);
        assert!(
            last_error().contains("injected execution fault 1003"),
            "{}",
            last_error()
        );
        assert_eq!(
            read_f32(rig.out, 2),
            vec![11., 22.],
            "1003 still writes outputs"
        );
        assert_eq!(rig.execute(), NRT_SUCCESS, "nth faults fire once");
        // A hardware error leaves outputs untouched.
        control()
            .inject_faults("exec:status=NRT_EXEC_HW_ERR_NC_UE")
            .unwrap();
        write_f32(rig.out, &[0., 0.]);
        assert_eq!(rig.execute(), NRT_EXEC_HW_ERR_NC_UE);
        assert_eq!(read_f32(rig.out, 2), vec![0., 0.]);
        // after=N: every run after the first N, until cleared.
        control().inject_faults("exec:after=1").unwrap();
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_ERR);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_ERR);
        control().clear_faults();
        assert_eq!(rig.execute(), NRT_SUCCESS);
        let c = counters();
        assert_eq!(c.cores[0].failed_executions, 4);
        rig.release();
        rig1.release();
    });
}

#[test]
fn alloc_and_load_faults() {
    let _s = Session::new();
    control().inject_faults("alloc:nth=2").unwrap();
    let first = alloc_host(4, "first");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, 4, "second"),
        Err(NRT_RESOURCE)
    );
    assert!(last_error().contains("injected allocation fault for tensor 'second'"));
    let third = alloc_host(4, "third");
    control()
        .inject_faults("alloc:vnc=1:status=NRT_FAIL_HOST_MEM_ALLOC")
        .unwrap();
    let on0 = alloc(0, 4, "on0");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 1, 4, "on1"),
        Err(NRT_FAIL_HOST_MEM_ALLOC)
    );
    control().inject_faults("load:vnc=1").unwrap();
    let file = add_model(2, Duration::ZERO);
    let m0 = load(&file, 0);
    assert_eq!(try_load(&file, 1), Err(NRT_RESOURCE));
    let m1 = load(&file, 1);
    // Bad specs are refused with the reason, and arm nothing.
    let err = control().inject_faults("exec:nth=2:bogus=1").unwrap_err();
    assert_eq!(err.fault, "exec:nth=2:bogus=1");
    assert!(err.message.contains("unknown field"));
    // SAFETY: valid C string; NULL rejected.
    unsafe {
        assert_eq!(
            nrt_sim::control::nrt_sim_inject_faults(c"nope".as_ptr()),
            NRT_INVALID
        );
        assert_eq!(
            nrt_sim::control::nrt_sim_inject_faults(std::ptr::null()),
            NRT_INVALID
        );
    }
    for t in [first, third, on0] {
        free(t);
    }
    unload(m0);
    unload(m1);
}

#[test]
fn unmodelled_functions_fail_and_say_so() {
    let _s = Session::new();
    // SAFETY: these functions read none of their arguments.
    unsafe {
        assert_eq!(
            nrt_profile_start(std::ptr::null_mut(), std::ptr::null()),
            NRT_FAILURE
        );
        assert!(last_error().contains("not simulated"));
        assert_eq!(nrt_profile_stop(std::ptr::null()), NRT_FAILURE);
        assert_eq!(nrta_error_tracker_create(), NRT_FAILURE);
    }
}

#[test]
fn concurrent_tensor_traffic_from_many_threads_is_consistent() {
    let _s = Session::new();
    let tensors: Vec<usize> = (0..4).map(|i| alloc(i % 2, 1024, "t") as usize).collect();
    std::thread::scope(|s| {
        for (i, &t) in tensors.iter().enumerate() {
            s.spawn(move || {
                let t = t as *mut nrt_tensor_t;
                for round in 0..200u32 {
                    let v = [(i as u8).wrapping_add(round as u8); 1024];
                    assert_eq!(write(t, 0, &v), NRT_SUCCESS);
                    assert_eq!(read(t, 0, 1024).unwrap(), v.to_vec());
                }
            });
        }
    });
    for t in tensors {
        free(t as *mut _);
    }
}
