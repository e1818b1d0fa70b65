//! `neff-inspect` on files made by the writer: the summary, `--json`, and errors.

use neuron_neff::{DType, NeffWriter};
use std::process::Command;

fn inspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neff-inspect"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write_model(dir: &std::path::Path) -> String {
    let bytes = NeffWriter::new("bert.neff")
        .input("input_ids", DType::I64, &[1, 128])
        .input("mask", DType::F16, &[1, 128])
        .output("logits", DType::BF16, &[1, 2])
        .cores(2)
        .target("trn1")
        .tool_version("2.23.6484.0")
        .build()
        .unwrap();
    let path = dir.join("bert.neff");
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn summary_lists_header_compiler_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path());
    let (code, out, err) = inspect(&[&path]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "name:          bert.neff",
        "packaging:     version 2 (MD5 verified)",
        "cores:         2 (requested 2)",
        "compiler:      2.23.6484.0",
        "target:        trn1",
        "inputs (2):",
        "input_ids  int64     [1, 128]          1024 bytes",
        "mask       float16   [1, 128]          256 bytes",
        "outputs (1):",
        "logits  bfloat16  [1, 2]            4 bytes",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (_, out, _) = inspect(&["--no-hash", &path]);
    assert!(out.contains("(MD5 not checked)"), "{out}");
}

#[test]
fn json_output_has_the_same_facts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path());
    let (code, out, err) = inspect(&["--json", &path]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "bert.neff");
    assert_eq!(v["packaging_version"], 2);
    assert_eq!(v["hash"]["algorithm"], "MD5");
    assert_eq!(v["hash"]["checked"], true);
    assert_eq!(v["cores"], 2);
    assert_eq!(v["compiler_version"], "2.23.6484.0");
    assert_eq!(v["target"], "trn1");
    assert_eq!(v["inputs"][0]["name"], "input_ids");
    assert_eq!(v["inputs"][0]["dtype"], "int64");
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 128]));
    assert_eq!(v["inputs"][0]["bytes"], 1024);
    assert_eq!(v["outputs"][0]["dtype"], "bfloat16");
    assert_eq!(v["outputs"][0]["bytes"], 4);
}

#[test]
fn bad_files_exit_1_with_the_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let (code, out, err) = inspect(&[&path]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("truncated NEFF"), "{err}");
    assert!(err.contains(&path), "{err}");
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    let (code, _, err) = inspect(&["--json", &path]);
    assert_eq!(code, 1);
    assert!(err.contains("bad NEFF hash"), "{err}");
    let (code, _, err) = inspect(&[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = inspect(&["--bogus", &path]);
    assert_eq!(code, 2, "{err}");
}
