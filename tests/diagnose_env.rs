//! Hints of a failed `nrt_init` for bad `NEURON_RT_VISIBLE_CORES` / `NEURON_RT_NUM_CORES`
//! values, on the simulator, with fake device and process trees. One test: it changes
//! the environment.

mod support;

use std::path::Path;

use neuron_rt::diagnose::Probe;
use neuron_rt::{Error, NrtStatus, Runtime};

fn set(name: &str, value: Option<&str>) {
    // SAFETY: this binary has one test, and no other thread touches the environment
    // while it runs (the simulator reads it inside nrt_init, called from this thread).
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn init_failures_name_the_variable_and_its_value() {
    let _g = support::lock();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let probe = Probe::system()
        .dev_dir(dir.path().join("dev"))
        .proc_dir(Path::new("/nonexistent"));
    let build = || {
        Runtime::builder()
            .library(support::sim())
            .probe(probe.clone())
            .build()
    };
    let sim_line = "the library is nrt-sim: simulated NeuronCores (NRT_SIM_VNC_COUNT of them, default 2), no device used";

    for (value, status, first) in [
        (
            "4-5",
            NrtStatus::Invalid,
            "NEURON_RT_VISIBLE_CORES=\"4-5\" asks for cores 4 to 5: they must exist on this instance (indices start at 0) and not be held by another process; name cores that exist, or unset it; this process numbers them 0 to 1",
        ),
        (
            "abc",
            NrtStatus::Invalid,
            "NEURON_RT_VISIBLE_CORES=\"abc\" is not a core list (`abc` is not an index or a range): use indices or inclusive ranges forming one contiguous run, such as 0, 0-1 or 2,3, or unset it to use every core",
        ),
    ] {
        set("NEURON_RT_VISIBLE_CORES", Some(value));
        let err = build().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Nrt {
                    function: "nrt_init",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.status(), Some(status));
        // What is known leads: a core list that does not parse (found here), else the
        // library's own reason; the other findings follow in the hint.
        let hint: Vec<&str> = err.hint().unwrap().lines().collect();
        let cause = err.cause().unwrap();
        if value == "abc" {
            assert_eq!(cause, first, "{err}");
            assert!(hint[0].starts_with("nrt-sim's reason: nrt_init: "), "{err}");
            assert_eq!(
                hint[1..3],
                ["NEURON_RT_NUM_CORES is not set", sim_line],
                "{err}"
            );
        } else {
            assert!(
                cause.starts_with("nrt-sim's reason: nrt_init: NEURON_RT_VISIBLE_CORES="),
                "{err}"
            );
            assert_eq!(
                hint[..3],
                [first, "NEURON_RT_NUM_CORES is not set", sim_line],
                "{err}"
            );
        }
        let text = err.to_string();
        assert_eq!(text.matches("(status 2)").count(), 1, "{text}");
        assert!(
            text.starts_with(&format!("nrt_init failed: {cause} (libnrt: ")),
            "{text}"
        );
    }
    set("NEURON_RT_VISIBLE_CORES", None);

    set("NEURON_RT_NUM_CORES", Some("4"));
    let err = build().unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource), "{err}");
    let hint: Vec<&str> = err.hint().unwrap().lines().collect();
    assert_eq!(
        hint[..2],
        [
            "NEURON_RT_NUM_CORES=\"4\" asks for 4 NeuronCores: that many must exist on this instance and be free; lower it or unset it",
            sim_line,
        ],
        "{err}"
    );
    assert!(
        err.cause()
            .unwrap()
            .starts_with("nrt-sim's reason: nrt_init: NEURON_RT_NUM_CORES=4"),
        "{err}"
    );
    set("NEURON_RT_NUM_CORES", None);

    // A model larger than every core's free device memory: that is the cause.
    set("NRT_SIM_DEVICE_MEMORY", Some("100"));
    let rt = build().unwrap();
    let neff = support::add_model();
    let err = rt.load_model(&neff).unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource), "{err}");
    assert_eq!(
        err.cause(),
        Some(
            format!(
                "model `add` ({:.1} KiB) does not fit: the most free device memory on any core is 100 bytes",
                neff.len() as f64 / 1024.0
            )
            .as_str()
        ),
        "{err}"
    );
    drop(rt);
    set("NRT_SIM_DEVICE_MEMORY", None);

    // With good settings the same builder starts.
    let rt = build().unwrap();
    drop(rt);
    support::assert_no_leaks();
}
