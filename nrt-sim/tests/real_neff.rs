//! Real-format NEFFs through the exported C functions: core count, device time, and the
//! log lines of signature-only mode (each environment in a child process).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sim::neff::{DType, NeffWriter};
use nrt_sys::*;
use std::time::Duration;

fn two_core(time: Duration) -> Vec<u8> {
    let w = NeffWriter::new("tp.neff")
        .input("x", DType::F32, &[4])
        .output("y", DType::BF16, &[4])
        .cores(2);
    nrt_sim::with_device_time(w, time).build().unwrap()
}

/// Loads the 2-core model, runs it twice; returns core 0's busy time.
fn run_twice() -> Duration {
    on_exec_stack(|| {
        let _s = Session::new();
        let file = two_core(Duration::from_micros(700));
        let m = load(&file, -1);
        let mut n = 0u32;
        // SAFETY: valid model handle and out-pointer.
        assert_eq!(unsafe { nrt_get_model_vnc_count(m, &mut n) }, NRT_SUCCESS);
        assert_eq!(n, 2);
        let c = counters();
        assert_eq!((c.cores[0].models, c.cores[1].models), (1, 1));
        // Both cores taken from core 0: core 1 has one left.
        assert_eq!(try_load(&file, 1), Err(NRT_LOAD_NOT_ENOUGH_NC));
        assert!(
            last_error().contains("outputs are synthetic"),
            "{}",
            last_error()
        );
        let x = alloc(0, 16, "x");
        let y = alloc(0, 8, "y");
        let i = set_of(&[("x", x)]);
        let empty = new_set();
        assert_eq!(execute(m, i, empty), NRT_INVALID);
        assert!(
            last_error().contains("'y' is missing")
                && last_error().contains("outputs are synthetic"),
            "{}",
            last_error()
        );
        let o = set_of(&[("y", y)]);
        for run in 0..2 {
            assert_eq!(execute(m, i, o), NRT_SUCCESS, "{}", last_error());
            assert_eq!(
                read(y, 0, 8).unwrap(),
                nrt_sim::synthetic_output("tp.neff", 0, run, 8)
            );
        }
        let busy = counters().cores[0].busy;
        for s in [i, o, empty] {
            destroy_set(s);
        }
        free(x);
        free(y);
        unload(m);
        let c = counters();
        assert_eq!((c.cores[0].models, c.cores[1].models), (0, 0));
        busy
    })
}

#[test]
fn two_core_model_runs_with_its_device_time_and_says_it_is_synthetic() {
    if !in_child(
        "two_core_model_runs_with_its_device_time_and_says_it_is_synthetic",
        &[],
    ) {
        return;
    }
    // The device time of the file's nrt-sim.txt entry, per execution (simulator
    // accounting, not a wall-clock measurement).
    assert_eq!(run_twice(), Duration::from_micros(1400));
}

#[test]
fn exec_latency_variable_overrides_the_file() {
    if !in_child(
        "exec_latency_variable_overrides_the_file",
        &[("NRT_SIM_EXEC_LATENCY_US", "300")],
    ) {
        return;
    }
    assert_eq!(run_twice(), Duration::from_micros(600));
}

#[test]
fn load_is_logged_at_info_with_the_mode() {
    const NAME: &str = "load_is_logged_at_info_with_the_mode";
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        let _s = Session::new();
        // This test reads the child's stderr: the log is not captured.
        control().capture_log(false);
        let m = load(&two_core(Duration::ZERO), 0);
        unload(m);
        return;
    }
    let out = child_command(NAME, &[("NEURON_RT_LOG_LEVEL", "INFO")])
        .output()
        .unwrap();
    assert_child_passed(NAME, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("nrt_load"))
        .unwrap_or_else(|| panic!("no nrt_load line in:\n{stderr}"));
    assert!(
        line.contains("'tp.neff' (real NEFF, signature-only mode: outputs are synthetic")
            && line.contains("loaded on 2 core(s)"),
        "{line}"
    );
}
