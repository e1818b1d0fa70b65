//! Builds `tests/c/flow.c` with the system C compiler against the libnrt headers and
//! `libnrt_sim.so`, writes a model file with the builder, and runs the program.

mod common;

use nrt_sim::ModelBuilder;
use std::path::{Path, PathBuf};
use std::process::Command;

fn compiler() -> Option<String> {
    ["cc", "gcc"].into_iter().map(String::from).find(|cc| {
        Command::new(cc)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn c_program_runs_the_sync_and_async_flows() {
    let cc = compiler().expect("a C compiler (cc or gcc) on PATH");
    let lib = nrt_sim::cdylib_path().expect("libnrt_sim.so next to the test binary");
    let lib_dir = lib.parent().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_flow");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join("flow");
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg("-I")
        .arg(manifest.join("../nrt-sys/include"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(manifest.join("tests/c/flow.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lnrt_sim")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status()
        .unwrap();
    assert!(status.success(), "compiling flow.c failed");

    let model = ModelBuilder::add_example(&[2, 3])
        .device_time(std::time::Duration::from_millis(2))
        .build()
        .unwrap();
    let model_path = out_dir.join("add.neff");
    std::fs::write(&model_path, model).unwrap();

    let out = Command::new(&exe)
        .arg(&model_path)
        .env_remove("NRT_SIM_FAULTS")
        .env_remove("NRT_SIM_VERSION")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sync, async and events passed"),
        "flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `tests/c/surface.c` like `flow.c`.
fn build_surface(out_dir: &Path) -> PathBuf {
    let cc = compiler().expect("a C compiler (cc or gcc) on PATH");
    let lib = nrt_sim::cdylib_path().expect("libnrt_sim.so next to the test binary");
    let lib_dir = lib.parent().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(out_dir).unwrap();
    let exe = out_dir.join("surface");
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg("-I")
        .arg(manifest.join("../nrt-sys/include"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(manifest.join("tests/c/surface.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lnrt_sim")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status()
        .unwrap();
    assert!(status.success(), "compiling surface.c failed");
    exe
}

fn passed(out: &std::process::Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("surface {what} passed")),
        "surface {what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_program_traces_profiles_streams_and_exports() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_surface");
    let _ = std::fs::remove_dir_all(out_dir.join("captures"));
    let exe = build_surface(&out_dir);
    let model = ModelBuilder::add_example(&[2, 3])
        .device_time(std::time::Duration::from_millis(1))
        .build()
        .unwrap();
    let model_path = out_dir.join("add.neff");
    std::fs::write(&model_path, model).unwrap();
    let out = Command::new(&exe)
        .arg("observe")
        .arg(&model_path)
        .arg(out_dir.join("captures"))
        .env_remove("NRT_SIM_FAULTS")
        .output()
        .unwrap();
    passed(&out, "observe");
}

#[test]
fn c_programs_in_two_processes_send_and_receive_a_tensor() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_surface_sr");
    let exe = build_surface(&out_dir);
    let port = common::free_port_pair().to_string();
    let spawn = |role: &str| {
        Command::new(&exe)
            .arg(role)
            .env("NRT_SIM_SENDRECV_PORT", &port)
            .env_remove("NRT_SIM_FAULTS")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let recv = spawn("recv");
    let send = spawn("send");
    // Both outputs before either is judged: a failure of one often comes from the other.
    let (send, recv) = (
        send.wait_with_output().unwrap(),
        recv.wait_with_output().unwrap(),
    );
    passed(&recv, "recv");
    passed(&send, "send");
}
