//! The `nrt-sim-model` command: writes files that load and run, and explains bad input.

mod common;

use common::*;
use std::process::Command;

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nrt-sim-model"))
}

#[test]
fn writes_a_model_from_flags_that_loads_and_runs() {
    on_exec_stack(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relu_scale.neff");
        let out = tool()
            .args([
                "-o",
                file.to_str().unwrap(),
                "--name",
                "relu scale",
                "--device-time-us",
                "250",
            ])
            .args(["--input", "x:f32:2x2", "--output", "y:f32:2,2"])
            .args(["--op", "relu x r", "--op", "scale_bias r 3 0.5 y"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let printed = tool()
            .args(["--print", file.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&printed.stdout);
        assert!(
            text.contains("name relu scale") && text.contains("device_time_ns 250000"),
            "{text}"
        );

        let bytes = std::fs::read(&file).unwrap();
        let _s = Session::new();
        let m = load(&bytes, 0);
        let x = alloc(0, 16, "x");
        let y = alloc(0, 16, "y");
        write_f32(x, &[-1., 2., -3., 4.]);
        let (i, o) = (set_of(&[("x", x)]), set_of(&[("y", y)]));
        assert_eq!(execute(m, i, o), nrt_sys::NRT_SUCCESS, "{}", last_error());
        assert_eq!(read_f32(y, 4), vec![0.5, 6.5, 0.5, 12.5]);
        destroy_set(i);
        destroy_set(o);
        free(x);
        free(y);
        unload(m);
    });
}

#[test]
fn text_input_and_errors() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("ident.txt");
    std::fs::write(
        &text,
        "nrt-sim-model 1\nname ident\ninput a i32 [3]\noutput b i32 [3]\nop identity a b\n",
    )
    .unwrap();
    let file = dir.join("ident.neff");
    let ok = tool()
        .args([
            "-o",
            file.to_str().unwrap(),
            "--from",
            text.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(nrt_sim::describe_model(&std::fs::read(&file).unwrap()).is_ok());

    let bad = tool()
        .args([
            "-o",
            file.to_str().unwrap(),
            "--name",
            "m",
            "--input",
            "a:f32:2",
        ])
        .args(["--output", "b:f32:3", "--op", "identity a b"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("declared f32 [3]"), "{err}");
    let unknown = tool().arg("--frobnicate").output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("usage:"));
}
