//! Environment variables read at `nrt_init`. Each test re-runs itself in a child process
//! with the variables set (the environment is process-wide).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::{Duration, Instant};

fn counts() -> (u32, u32) {
    let (mut total, mut visible) = (0, 0);
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(nrt_get_total_vnc_count(&mut total), NRT_SUCCESS);
        assert_eq!(nrt_get_visible_vnc_count(&mut visible), NRT_SUCCESS);
    }
    (total, visible)
}

#[test]
fn vnc_count_and_visible_range() {
    if !in_child(
        "vnc_count_and_visible_range",
        &[
            ("NRT_SIM_VNC_COUNT", "4"),
            ("NEURON_RT_VISIBLE_CORES", "1-2"),
        ],
    ) {
        return;
    }
    assert_eq!(counts(), (4, 2), "counts work before init");
    let _s = Session::new();
    assert_eq!(counts(), (4, 2));
    assert_eq!(counters().cores.len(), 2);
    let t = alloc(1, 8, "last visible");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 2, 8, "x"),
        Err(NRT_INVALID)
    );
    free(t);
}

#[test]
fn single_visible_core() {
    if !in_child("single_visible_core", &[("NEURON_RT_VISIBLE_CORES", "1")]) {
        return;
    }
    let _s = Session::new();
    assert_eq!(counts(), (2, 1));
}

#[test]
fn bad_visible_cores_fail_init_with_a_log() {
    if !in_child(
        "bad_visible_cores_fail_init_with_a_log",
        &[("NEURON_RT_VISIBLE_CORES", "1-5")],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    assert!(
        last_error().contains("NEURON_RT_VISIBLE_CORES=\"1-5\""),
        "{}",
        last_error()
    );
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_get_visible_vnc_count(&mut n) }, NRT_INVALID);
}

#[test]
fn visible_cores_take_contiguous_lists() {
    // The runtime documents lists (3,4,5) and list/range mixes (3-5,6) that form one
    // contiguous increasing run.
    if !in_child(
        "visible_cores_take_contiguous_lists",
        &[
            ("NRT_SIM_VNC_COUNT", "4"),
            ("NEURON_RT_VISIBLE_CORES", "1,2-3"),
            ("NEURON_RT_NUM_CORES", "1"),
        ],
    ) {
        return;
    }
    assert_eq!(counts(), (4, 3), "VISIBLE_CORES wins over NUM_CORES");
    let _s = Session::new();
    assert_eq!(counters().cores.len(), 3);
}

#[test]
fn non_contiguous_visible_cores_fail_init() {
    if !in_child(
        "non_contiguous_visible_cores_fail_init",
        &[
            ("NRT_SIM_VNC_COUNT", "4"),
            ("NEURON_RT_VISIBLE_CORES", "0,2"),
        ],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    assert!(last_error().contains("not contiguous"), "{}", last_error());
}

#[test]
fn num_cores_reserves_the_first_cores() {
    if !in_child(
        "num_cores_reserves_the_first_cores",
        &[("NRT_SIM_VNC_COUNT", "4"), ("NEURON_RT_NUM_CORES", "3")],
    ) {
        return;
    }
    assert_eq!(counts(), (4, 3), "counts work before init");
    let _s = Session::new();
    assert_eq!(counts(), (4, 3));
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 3, 8, "x"),
        Err(NRT_INVALID)
    );
}

#[test]
fn num_cores_over_the_machine_fails_init() {
    if !in_child(
        "num_cores_over_the_machine_fails_init",
        &[("NEURON_RT_NUM_CORES", "3")],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_RESOURCE);
    assert!(
        last_error().contains("NEURON_RT_NUM_CORES=3 asks for more cores than the 2"),
        "{}",
        last_error()
    );
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_get_visible_vnc_count(&mut n) }, NRT_RESOURCE);
}

#[test]
fn bad_sim_values_fail_init() {
    if !in_child("bad_sim_values_fail_init", &[("NRT_SIM_QUEUE_DEPTH", "0")]) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    assert!(
        last_error().contains("NRT_SIM_QUEUE_DEPTH=\"0\""),
        "{}",
        last_error()
    );
}

#[test]
fn device_memory_limit_gives_resource_errors() {
    if !in_child(
        "device_memory_limit_gives_resource_errors",
        &[("NRT_SIM_DEVICE_MEMORY", "4K")],
    ) {
        return;
    }
    let _s = Session::new();
    let a = alloc(0, 3000, "a");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 0, 2000, "b"),
        Err(NRT_RESOURCE)
    );
    assert!(
        last_error().contains("core 0 has 1096 of 4096 device bytes free; tensor 'b' needs 2000"),
        "{}",
        last_error()
    );
    let b = alloc(1, 2000, "b on core 1");
    // A model file is ~1.2 KB: core 0 has no room, so -1 picks core 1.
    let file = add_model(4, Duration::ZERO);
    assert_eq!(try_load(&file, 0), Err(NRT_RESOURCE));
    let m = load(&file, -1);
    let mut mi = nrt_model_info_t::default();
    // SAFETY: writable.
    unsafe { nrt_get_model_info(m, &mut mi, 4, std::ptr::null_mut()) };
    assert_eq!(mi.vnc, 1);
    let m2 = try_load(&file, -1);
    assert_eq!(m2, Err(NRT_RESOURCE), "no core has room");
    unload(m);
    free(a);
    free(b);
}

#[test]
fn exec_timeout_gives_timeout_without_outputs() {
    on_exec_stack(|| {
        if !in_child(
            "exec_timeout_gives_timeout_without_outputs",
            &[("NEURON_RT_EXEC_TIMEOUT", "0.05")],
        ) {
            return;
        }
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::from_millis(500));
        write_f32(rig.a, &[1., 1.]);
        let start = Instant::now();
        assert_eq!(rig.execute(), NRT_TIMEOUT);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_millis(450),
            "{took:?}"
        );
        assert!(last_error().contains("NEURON_RT_EXEC_TIMEOUT"));
        assert_eq!(read_f32(rig.out, 2), vec![0., 0.]);
        rig.release();
    });
}

#[test]
fn exec_latency_overrides_model_time() {
    on_exec_stack(|| {
        if !in_child(
            "exec_latency_overrides_model_time",
            &[("NRT_SIM_EXEC_LATENCY_US", "40000")],
        ) {
            return;
        }
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        let start = Instant::now();
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert!(counters().cores[0].busy >= Duration::from_millis(40));
        rig.release();
    });
}

#[test]
fn the_launch_cost_is_read_at_init() {
    if !in_child(
        "the_launch_cost_is_read_at_init",
        &[("NRT_SIM_LAUNCH_US", "180")],
    ) {
        return;
    }
    let _s = Session::new();
    assert_eq!(
        control().clock_stats(false).launch,
        Duration::from_micros(180)
    );
}

#[test]
fn a_bad_launch_cost_fails_init() {
    if !in_child(
        "a_bad_launch_cost_fails_init",
        &[("NRT_SIM_LAUNCH_US", "180us")],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    assert!(
        last_error().contains("NRT_SIM_LAUNCH_US=\"180us\""),
        "{}",
        last_error()
    );
}

#[test]
fn old_version_refuses_async_v3() {
    if !in_child(
        "old_version_refuses_async_v3",
        &[("NRT_SIM_VERSION", "2.30.0")],
    ) {
        return;
    }
    let _s = Session::new();
    let mut ver = nrt_version_t::default();
    // SAFETY: writable for its size.
    unsafe { nrt_get_version(&mut ver, std::mem::size_of::<nrt_version_t>()) };
    assert_eq!((ver.rt_major, ver.rt_minor, ver.rt_patch), (2, 30, 0));
    let t = alloc(0, 4, "t");
    let mut ret = 0;
    let mut seq = 0;
    let buf = [0u8; 4];
    // SAFETY: refused before any pointer is used.
    unsafe {
        assert_eq!(
            nrta_tensor_write(t, buf.as_ptr().cast(), 0, 4, 0, 0, &mut ret, &mut seq),
            NRT_FAILURE
        );
        assert!(
            last_error().contains("needs runtime 2.31"),
            "{}",
            last_error()
        );
        assert_eq!(
            nrta_get_sequence(0, NRTA_XU_COMPUTE, 0, &mut seq),
            NRT_FAILURE
        );
        let mut done = false;
        assert_eq!(nrta_is_completed(1, &mut done), NRT_FAILURE);
    }
    assert!(nrt_sim::library().has_symbol(c"nrta_error_tracker_create"));
    free(t);
}

#[test]
fn faults_from_the_environment_are_armed_at_init() {
    on_exec_stack(|| {
        if !in_child(
            "faults_from_the_environment_are_armed_at_init",
            &[("NRT_SIM_FAULTS", "exec:nth=2:status=1004; alloc:vnc=1")],
        ) {
            return;
        }
        let _serial = Session::serial_only();
        assert_eq!(init_status(), NRT_SUCCESS);
        let rig = AddRig::new(0, 2, Duration::ZERO);
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_ERR);
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(
            try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 1, 4, "x"),
            Err(NRT_RESOURCE)
        );
        rig.release();
        // SAFETY: no arguments.
        unsafe { nrt_close() };
        // Re-armed at the next init.
        assert_eq!(init_status(), NRT_SUCCESS);
        assert_eq!(
            try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 1, 4, "x"),
            Err(NRT_RESOURCE)
        );
        // SAFETY: no arguments.
        unsafe { nrt_close() };
    });
}

#[test]
fn bad_fault_spec_in_the_environment_fails_init() {
    if !in_child(
        "bad_fault_spec_in_the_environment_fails_init",
        &[("NRT_SIM_FAULTS", "exec:nth=zero")],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    assert!(last_error().contains("NRT_SIM_FAULTS"), "{}", last_error());
}

/// Runs `log_child` with `NEURON_RT_LOG_LEVEL=level`; returns its stderr.
fn log_output(level: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["log_child", "--exact", "--nocapture", "--include-ignored"])
        .env("NRT_SIM_TEST_CHILD", "1")
        .env("NEURON_RT_LOG_LEVEL", level)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// In the child: one init (logged at INFO) and one failing call (logged at ERROR).
#[test]
#[ignore = "run by log_level_filters_stderr in a child process"]
fn log_child() {
    // The lock captures the log, and this test reads stderr: back to stderr.
    let _serial = Session::serial_only();
    control().capture_log(false);
    assert_eq!(init_status(), NRT_SUCCESS);
    assert_eq!(write(std::ptr::null_mut(), 0, &[1]), NRT_INVALID);
    // SAFETY: no arguments.
    unsafe { nrt_close() };
}

#[test]
fn log_level_filters_stderr() {
    let info = log_output("info");
    assert!(
        info.contains("nrt-sim: INFO nrt_init: simulated runtime"),
        "{info}"
    );
    assert!(
        info.contains("nrt-sim: ERROR nrt_tensor_write: tensor is NULL"),
        "{info}"
    );
    let error = log_output("ERROR");
    assert!(!error.contains("INFO"), "{error}");
    assert!(error.contains("nrt-sim: ERROR nrt_tensor_write"), "{error}");
    let off = log_output("OFF");
    assert!(!off.contains("nrt-sim:"), "{off}");
    // The runtime's documented way to silence the console.
    let quiet = log_output("QUIET");
    assert!(!quiet.contains("nrt-sim:"), "{quiet}");
}

#[test]
fn a_fault_naming_a_core_that_does_not_exist_fails_init_naming_it() {
    if !in_child(
        "a_fault_naming_a_core_that_does_not_exist_fails_init_naming_it",
        &[
            ("NRT_SIM_VNC_COUNT", "2"),
            ("NRT_SIM_FAULTS", "exec:every=5; exec:vnc=7:nth=1"),
        ],
    ) {
        return;
    }
    let _serial = Session::serial_only();
    assert_eq!(init_status(), NRT_INVALID);
    let message = last_error();
    assert!(
        message.contains("NRT_SIM_FAULTS")
            && message.contains("exec:vnc=7:nth=1")
            && message.contains("core 7")
            && message.contains("2 visible"),
        "{message}"
    );
}

#[test]
fn faults_injected_through_the_api_for_a_missing_core_are_refused() {
    if !in_child(
        "faults_injected_through_the_api_for_a_missing_core_are_refused",
        &[("NRT_SIM_VNC_COUNT", "2")],
    ) {
        return;
    }
    let _s = Session::new();
    for spec in ["alloc:vnc=2", "load:vnc=9", "xu:vnc=5:type=compute:queue=0"] {
        let e = control().inject_faults(spec).unwrap_err();
        assert!(
            e.message.contains(spec) && e.message.contains("2 visible"),
            "{e}"
        );
    }
    control().inject_faults("alloc:vnc=1").unwrap();
    control().clear_faults();
}
