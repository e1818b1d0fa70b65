//! Inspect and continuous profiling write capture files of the simulator's format
//! (README.md, "Profiling captures") into the configured directory.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use serde_json::Value;
use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

fn files(dir: &Path) -> Vec<Value> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out.iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

#[test]
fn inspect_writes_system_trace_and_device_profiles_of_the_session() {
    on_exec_stack(|| {
        let _s = Session::new();
        let tmp = tempfile_dir("inspect");
        let mut c = std::ptr::null_mut();
        let dir = cstr(&tmp);
        // SAFETY: valid out-pointer, then a live config and valid strings.
        unsafe {
            assert_eq!(nrt_inspect_config_allocate(&mut c), NRT_SUCCESS);
            assert_eq!(
                nrt_inspect_config_set_output_dir(c, dir.as_ptr()),
                NRT_SUCCESS
            );
            assert_eq!(nrt_inspect_config_set_session_id(c, 7), NRT_SUCCESS);
            assert_eq!(nrt_inspect_config_set_enable_inspect(c, true), NRT_SUCCESS);
            assert_eq!(
                nrt_inspect_config_set_capture_enabled_for_nc(c, 1, false),
                NRT_SUCCESS
            );
            let bad = CString::new("gpu_util").unwrap();
            assert_eq!(
                nrt_inspect_config_set_activity(c, bad.as_ptr(), true),
                NRT_INVALID
            );
            assert_eq!(nrt_inspect_begin_with_options(c), NRT_SUCCESS);
            assert_eq!(nrt_inspect_begin_with_options(c), NRT_INVALID);
        }
        let r0 = AddRig::new(0, 4, Duration::from_micros(300));
        let r1 = AddRig::new(1, 4, Duration::from_micros(300));
        for _ in 0..2 {
            assert_eq!(r0.execute(), NRT_SUCCESS);
            assert_eq!(r1.execute(), NRT_SUCCESS);
        }
        // SAFETY: no arguments.
        assert_eq!(unsafe { nrt_inspect_stop() }, NRT_SUCCESS);
        let caps = files(&tmp.join("session_7"));
        assert_eq!(caps.len(), 1);
        let cap = &caps[0];
        assert_eq!(cap["format"], "nrt-sim-capture");
        assert_eq!(cap["kind"], "inspect");
        assert_eq!(cap["session_id"], 7);
        let profiles = cap["device_profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 2, "core 1 turned off: {cap}");
        assert!(
            profiles
                .iter()
                .all(|p| p["lnc_idx"] == 0 && p["duration"] == 300_000)
        );
        let events = cap["system_trace"].as_array().unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e["type"] == "nc_exec_running")
                .count(),
            2
        );
        // SAFETY: no arguments; a live config.
        unsafe {
            assert_eq!(nrt_inspect_stop(), NRT_INVALID);
            assert_eq!(nrt_inspect_config_free(c), NRT_SUCCESS);
            assert_eq!(nrt_inspect_config_free(c), NRT_INVALID_HANDLE);
        }
        r0.release();
        r1.release();
        std::fs::remove_dir_all(&tmp).unwrap();
    });
}

#[test]
fn inspect_on_fail_keeps_only_failing_executions() {
    on_exec_stack(|| {
        let _s = Session::new();
        let tmp = tempfile_dir("onfail");
        let mut c = std::ptr::null_mut();
        let dir = cstr(&tmp);
        // SAFETY: valid out-pointer, then a live config.
        unsafe {
            assert_eq!(nrt_inspect_config_allocate(&mut c), NRT_SUCCESS);
            nrt_inspect_config_set_output_dir(c, dir.as_ptr());
            nrt_inspect_config_set_enable_inspect_on_fail(c, true);
            assert_eq!(nrt_inspect_begin_with_options(c), NRT_SUCCESS);
        }
        let rig = AddRig::new(0, 4, Duration::ZERO);
        assert_eq!(rig.execute(), NRT_SUCCESS);
        control()
            .inject_faults("exec:vnc=0:nth=1:status=1003")
            .unwrap();
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_NUM_ERR);
        // SAFETY: no arguments; a live config.
        unsafe {
            assert_eq!(nrt_inspect_stop(), NRT_SUCCESS);
            nrt_inspect_config_free(c);
        }
        let caps = files(&tmp.join("session_1"));
        let profiles = caps[0]["device_profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0]["status"], 1003);
        assert!(caps[0]["system_trace"].is_null());
        rig.release();
        std::fs::remove_dir_all(&tmp).unwrap();
    });
}

#[test]
fn continuous_profiling_saves_the_latest_execution_of_a_core_on_demand() {
    on_exec_stack(|| {
        let _s = Session::new();
        let tmp = tempfile_dir("continuous");
        let dir = cstr(&tmp);
        let mut o = std::ptr::null_mut();
        // SAFETY: valid out-pointer, then live options.
        unsafe {
            assert_eq!(nrt_profile_continuous_options_allocate(&mut o), NRT_SUCCESS);
            assert_eq!(
                nrt_profile_continuous_options_set_output_dir(o, dir.as_ptr()),
                NRT_SUCCESS
            );
            assert_eq!(
                nrt_profile_continuous_save(0, o),
                NRT_INVALID,
                "not running"
            );
            assert_eq!(nrt_profile_continuous_start(o), NRT_SUCCESS);
            assert_eq!(
                nrt_profile_continuous_save(0, o),
                NRT_INVALID,
                "nothing ran"
            );
        }
        let rig = AddRig::new(0, 4, Duration::from_micros(150));
        assert_eq!(rig.execute(), NRT_SUCCESS);
        // SAFETY: live options.
        unsafe {
            assert_eq!(nrt_profile_continuous_save(0, o), NRT_SUCCESS);
            assert_eq!(nrt_profile_continuous_save(0, o), NRT_SUCCESS);
            assert_eq!(nrt_profile_continuous_stop(), NRT_SUCCESS);
            assert_eq!(nrt_profile_continuous_stop(), NRT_INVALID);
            assert_eq!(nrt_profile_continuous_options_free(o), NRT_SUCCESS);
        }
        let caps = files(&tmp);
        assert_eq!(caps.len(), 2, "one file per save");
        for cap in &caps {
            assert_eq!(cap["kind"], "continuous");
            assert_eq!(cap["device_profiles"][0]["duration"], 150_000);
            assert_eq!(cap["device_profiles"][0]["model"], "add");
        }
        rig.release();
        std::fs::remove_dir_all(&tmp).unwrap();
    });
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nrt-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn inspect_begin_reads_the_environment() {
    let dir = std::env::temp_dir().join(format!("nrt-sim-inspect-env-{}", std::process::id()));
    let text = dir.to_str().unwrap().to_owned();
    if !in_child(
        "inspect_begin_reads_the_environment",
        &[
            ("NEURON_RT_INSPECT_ENABLE", "1"),
            ("NEURON_RT_INSPECT_OUTPUT_DIR", &text),
            ("NEURON_RT_INSPECT_SYSTEM_PROFILE", "0"),
        ],
    ) {
        let caps = files(&dir.join("session_1"));
        assert_eq!(caps.len(), 1);
        assert!(
            caps[0]["system_trace"].is_null(),
            "system profile turned off"
        );
        assert_eq!(caps[0]["device_profiles"].as_array().unwrap().len(), 1);
        assert!(
            !caps[0]["activities"]
                .as_array()
                .unwrap()
                .contains(&"system_profile".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    // In the child (its own pid, so the parent passes its directory by name).
    on_exec_stack(|| {
        let _s = Session::new();
        // SAFETY: no arguments.
        assert_eq!(unsafe { nrt_inspect_begin() }, NRT_SUCCESS);
        let rig = AddRig::new(0, 4, Duration::from_micros(100));
        assert_eq!(rig.execute(), NRT_SUCCESS);
        // SAFETY: no arguments.
        assert_eq!(unsafe { nrt_inspect_stop() }, NRT_SUCCESS);
        rig.release();
    });
}
