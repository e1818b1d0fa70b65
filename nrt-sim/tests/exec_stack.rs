//! `nrt_execute` uses 4 MiB of its caller's stack, as the real runtime does: on a thread
//! with Rust's default 2 MiB it crashes, unless `NRT_SIM_EXEC_STACK=0`. A stack overflow
//! kills the process, so each case runs the test binary again as a child.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::Duration;

const TWO_MIB: usize = 2 << 20;

/// In the child: runs one execution (and one `nrt_execute_repeat`) on a 2 MiB thread.
fn execute_on_a_2_mib_thread() {
    let _s = Session::new();
    let rig = AddRig::new(0, 4, Duration::ZERO);
    let (m, i, o) = (
        rig.model as usize,
        rig.inputs as usize,
        rig.outputs as usize,
    );
    let status = std::thread::Builder::new()
        .stack_size(TWO_MIB)
        .spawn(move || {
            let (m, i, o) = (m as *mut _, i as *const _, o as *mut _);
            // SAFETY: handles checked by the simulator.
            unsafe { [nrt_execute(m, i, o), nrt_execute_repeat(m, i, o, 2)] }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(status, [NRT_SUCCESS; 2], "{}", last_error());
    println!("EXECUTED ON 2 MIB");
    rig.release();
}

/// Runs test `name` of this binary in a child with `env`; returns its exit status and
/// output.
fn run_child(name: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("NRT_SIM_TEST_CHILD", "1")
        .env_remove("NRT_SIM_EXEC_STACK")
        .env_remove("RUST_MIN_STACK")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

#[test]
fn child_execute_on_a_2_mib_thread() {
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        execute_on_a_2_mib_thread();
    }
}

#[test]
fn execute_on_a_2_mib_thread_crashes_like_the_real_runtime() {
    use std::os::unix::process::ExitStatusExt;
    let (status, text) = run_child("child_execute_on_a_2_mib_thread", &[]);
    assert!(!status.success(), "no crash:\n{text}");
    assert!(!text.contains("EXECUTED ON 2 MIB"), "{text}");
    // Rust's handler reports the overflow and aborts; without it, SIGSEGV. Under
    // AddressSanitizer, its own report ("stack-overflow") and a failing exit code.
    assert!(
        matches!(
            status.signal(),
            Some(libc::SIGSEGV | libc::SIGABRT | libc::SIGBUS)
        ) || text.contains("AddressSanitizer: stack-overflow"),
        "not killed by a stack overflow: {status:?}\n{text}"
    );
}

#[test]
fn exec_stack_0_turns_the_probe_off() {
    let (status, text) = run_child(
        "child_execute_on_a_2_mib_thread",
        &[("NRT_SIM_EXEC_STACK", "0")],
    );
    assert!(status.success(), "{status:?}\n{text}");
    assert!(text.contains("EXECUTED ON 2 MIB"), "{text}");
}

#[test]
fn a_smaller_exec_stack_fits_a_2_mib_thread() {
    let (status, text) = run_child(
        "child_execute_on_a_2_mib_thread",
        &[("NRT_SIM_EXEC_STACK", "1M")],
    );
    assert!(status.success(), "{status:?}\n{text}");
    assert!(text.contains("EXECUTED ON 2 MIB"), "{text}");
}

#[test]
fn bad_exec_stack_values_fail_init() {
    for bad in ["-1", "4Q", "2G"] {
        if !in_child(
            "bad_exec_stack_values_fail_init",
            &[("NRT_SIM_EXEC_STACK", bad)],
        ) {
            continue;
        }
        let _serial = Session::serial_only();
        assert_eq!(init_status(), NRT_INVALID);
        assert!(
            last_error().contains("NRT_SIM_EXEC_STACK"),
            "{}",
            last_error()
        );
        return;
    }
}

#[test]
fn async_executions_run_on_workers_with_enough_stack() {
    // The queue workers run executions; the test thread only schedules.
    let _s = Session::new();
    let rig = AddRig::new(0, 4, Duration::ZERO);
    let mut ret = SENTINEL;
    let mut seq = 0;
    // SAFETY: `ret` outlives the request (waited for below).
    let status =
        unsafe { nrta_execute_schedule(rig.model, rig.inputs, rig.outputs, 0, &mut ret, &mut seq) };
    assert_eq!(status, NRT_SUCCESS);
    wait_completed(seq);
    assert_eq!(ret, NRT_SUCCESS);
    rig.release();
}
