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

#[test]
fn format_neff2_writes_a_real_format_file_that_loads_with_synthetic_outputs() {
    on_exec_stack(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("real2.neff");
        let out = tool()
            .args(["-o", file.to_str().unwrap(), "--format", "neff2"])
            .args([
                "--name",
                "bert",
                "--device-time-us",
                "100",
                "--target",
                "inf2",
            ])
            .args(["--compiler-version", "2.23.6484.0"])
            .args(["--input", "ids:i64:1x4", "--input", "mask:f16:1x4"])
            .args(["--input", "emb:bf16:2", "--input", "scale:f32:"])
            .args(["--output", "logits:f32:1x2", "--output", "pooled:bf16:3"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&file).unwrap();
        let neff = nrt_sim::neff::Neff::parse(&bytes).unwrap();
        assert_eq!(neff.header().packaging, nrt_sim::neff::Packaging::V2);
        assert_eq!(
            (neff.target(), neff.tool_version()),
            (Some("inf2"), Some("2.23.6484.0"))
        );
        let dtypes: Vec<&str> = neff.inputs().iter().map(|t| t.dtype.as_str()).collect();
        assert_eq!(dtypes, ["int64", "float16", "bfloat16", "float32"]);
        let printed = tool()
            .args(["--print", file.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&printed.stdout);
        assert!(
            text.contains("signature-only") && text.contains("# device_time_ns 100000"),
            "{text}"
        );

        let _s = Session::new();
        let m = load(&bytes, 0);
        let ins: Vec<_> = [("ids", 32), ("mask", 8), ("emb", 4), ("scale", 4)]
            .iter()
            .map(|&(n, size)| (n, alloc(0, size, n)))
            .collect();
        let outs: Vec<_> = [("logits", 8), ("pooled", 6)]
            .iter()
            .map(|&(n, size)| (n, alloc(0, size, n)))
            .collect();
        let (i, o) = (set_of(&ins), set_of(&outs));
        for run in 0..2u64 {
            assert_eq!(execute(m, i, o), nrt_sys::NRT_SUCCESS, "{}", last_error());
            assert_eq!(
                read(outs[0].1, 0, 8).unwrap(),
                nrt_sim::synthetic_output("bert", 0, run, 8)
            );
            assert_eq!(
                read(outs[1].1, 0, 6).unwrap(),
                nrt_sim::synthetic_output("bert", 1, run, 6)
            );
        }
        destroy_set(i);
        destroy_set(o);
        for (_, t) in ins.into_iter().chain(outs) {
            free(t);
        }
        unload(m);
    });
    // Ops make no sense in a signature-only file.
    let out = tool()
        .args([
            "-o",
            "/dev/null",
            "--format",
            "neff2",
            "--name",
            "x",
            "--op",
            "relu a b",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature only"));
}
