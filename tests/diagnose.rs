//! Hints of failed loads and allocations on the simulator (the environment is left
//! alone here; the `nrt_init` cases that need it are in `diagnose_env.rs`).

mod support;

use neuron_rt::{Error, NrtStatus, Placement, Runtime};
use support::{add_model, control, lock, runtime};

fn lines(err: &Error) -> Vec<&str> {
    err.hint()
        .unwrap_or_else(|| panic!("no hint in {err}"))
        .lines()
        .collect()
}

#[test]
fn a_text_file_loaded_as_a_model_says_what_it_holds() {
    let _g = lock();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Cargo.toml");
    let contents = "[package]\nname = \"demo\"\n";
    std::fs::write(&path, contents).unwrap();
    let n = contents.len();
    let err = rt.load_model_file(&path).unwrap_err();
    let p = path.display();
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_load",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "nrt_load failed for model `{p}`, {n} bytes, any core: "
        )),
        "{text}"
    );
    // The cause leads, then the library's status: one status text, never two.
    let cause = format!(
        "model `{p}` is not a NEFF: it has {n} bytes, fewer than a NEFF's 1024-byte header, and holds text starting `[package]`; load the .neff file the Neuron compiler wrote"
    );
    assert_eq!(err.cause(), Some(cause.as_str()));
    assert!(first.contains(&format!(": {cause} (libnrt: ")), "{text}");
    assert_eq!(first.matches("(status ").count(), 1, "{text}");
    let hint = lines(&err);
    assert!(
        hint[0].starts_with("nrt-sim's reason: nrt_load: "),
        "{text}"
    );
    assert_eq!(hint.len(), 1, "{text}");
    assert!(text.ends_with(&format!("\nhint: {}", hint[0])), "{text}");
}

#[test]
fn out_of_device_memory_at_load_shows_each_cores_memory() {
    let _g = lock();
    let rt = runtime();
    let holder = rt
        .allocate_tensor(Placement::Device, Some(1), 4096, "held")
        .unwrap();
    control().inject_faults("load:status=NRT_RESOURCE").unwrap();
    let neff = add_model();
    let err = rt.load_model(&neff).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource));
    let s0 = rt.memory_stats(0).unwrap();
    let s1 = rt.memory_stats(1).unwrap();
    assert_eq!(s1.bytes_used, s0.bytes_used + 4096);
    let hint = lines(&err);
    let gib = |n: usize| format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64);
    let used = |n: usize| {
        if n == 0 {
            "0 bytes".to_owned()
        } else {
            format!("{:.1} KiB", n as f64 / 1024.0)
        }
    };
    assert_eq!(
        hint[..5],
        [
            format!("core 0 device memory: {} used of {}, {} free", used(s0.bytes_used), gib(s0.bytes_limit), gib(s0.bytes_limit - s0.bytes_used)),
            format!("core 1 device memory: {} used of {}, {} free", used(s1.bytes_used), gib(s1.bytes_limit), gib(s1.bytes_limit - s1.bytes_used)),
            format!("the model file has {} bytes", neff.len()),
            "NEURON_RT_VISIBLE_CORES and NEURON_RT_NUM_CORES are not set: libnrt takes every free NeuronCore".to_owned(),
            "the library is nrt-sim: simulated NeuronCores (NRT_SIM_VNC_COUNT of them, default 2), no device used".to_owned(),
        ]
    );
    assert!(hint[5].starts_with("nrt-sim's reason: nrt_load: "), "{err}");
    assert!(err.to_string().starts_with(&format!(
        "nrt_load failed for model `add`, {} bytes, any core: ",
        neff.len()
    )));
    drop(holder);
}

#[test]
fn allocation_on_a_core_that_does_not_exist_says_which_cores_do() {
    let _g = lock();
    let rt = runtime();
    let err = rt
        .allocate_tensor(Placement::Device, Some(5), 64, "x")
        .unwrap_err();
    let hint = lines(&err);
    assert_eq!(
        err.cause(),
        Some("core 5 does not exist: 2 NeuronCores are visible (cores 0-1)")
    );
    assert!(hint[0].starts_with("nrt-sim's reason: "), "{err}");
    assert!(
        err.to_string().starts_with(
            "nrt_tensor_allocate failed for tensor `x`, 64 bytes, Device on core 5: core 5 does not exist: "
        ),
        "{err}"
    );

    control()
        .inject_faults("alloc:status=NRT_RESOURCE")
        .unwrap();
    let err = rt
        .allocate_tensor(Placement::Device, Some(0), 1 << 20, "big")
        .unwrap_err();
    let hint = lines(&err);
    assert!(hint[0].starts_with("core 0 device memory: "), "{err}");
    assert_eq!(hint[1], "the tensor needs 1048576 bytes");
    // A host tensor without a core: "any core", not -1.
    control()
        .inject_faults("alloc:status=NRT_RESOURCE")
        .unwrap();
    let err = rt
        .allocate_tensor(Placement::Host, None, 8, "h")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("nrt_tensor_allocate failed for tensor `h`, 8 bytes, Host on any core: "),
        "{err}"
    );
}

#[test]
fn a_missing_library_says_what_to_do() {
    let err = Runtime::builder()
        .library_path("/nonexistent/libnrt.so.1")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::LibraryNotFound(_)), "{err}");
    // A path given in code is the only one tried: the hint says to fix that path.
    let hint = err.hint().unwrap();
    assert!(hint.contains("RuntimeBuilder::library_path"), "{hint}");
    assert!(!hint.contains("LIBNRT_PATH=/path/to/libnrt.so.1"), "{hint}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "could not load libnrt; tried:\n  /nonexistent/libnrt.so.1 (explicit path): "
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "\nhint: the path given to RuntimeBuilder::library_path is the only one tried"
        ),
        "{text}"
    );
}
