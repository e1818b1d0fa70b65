//! Builds `tests/c/flow.c` with the system C compiler against the libnrt headers and
//! `libnrt_sim.so`, writes a model file with the builder, and runs the program.

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
