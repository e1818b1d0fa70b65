//! Shared by the integration tests: the simulator loaded through the real loader (dlopen
//! of `libnrt_sim.so`), a lock that serialises tests (one runtime per library), model
//! files, and leak checks through the simulator's counters.

#![allow(dead_code)] // each test file uses a different part

pub mod add_jobs;
pub mod decoder_ref;
pub mod wakeups;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use neuron_rt::nrt_sys::Library;
use neuron_rt::{Model, Runtime, TensorSet};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

static LOCK: Mutex<()> = Mutex::new(());

/// The dlopen'ed simulator: the same loader path users get for a real libnrt.
///
/// Under Miri (which cannot dlopen), the in-process simulator instead, so that the
/// suite can run there: `cargo +nightly miri test -p neuron-rt --test <name>`.
#[cfg(miri)]
pub fn sim() -> &'static Library {
    nrt_sim::library()
}

/// The dlopen'ed simulator: the same loader path users get for a real libnrt.
#[cfg(not(miri))]
pub fn sim() -> &'static Library {
    let path = nrt_sim::cdylib_path().expect("libnrt_sim.so not found next to the test binary");
    Library::open(&path).unwrap_or_else(|e| panic!("could not open {}: {e}", path.display()))
}

/// Control and counters of the dlopen'ed simulator.
pub fn control() -> SimControl {
    SimControl::new(sim()).expect("the dlopen'ed library is not nrt-sim")
}

/// Held for the whole test: tests of one binary share one simulator. While it is held,
/// the simulator's log is captured ([`SimControl::capture_log`]), so that the expected
/// failures of a green run print nothing; [`Guard::take_log`] reads it, and a test that
/// panics prints it (through the test harness, which shows it with the failure).
pub struct Guard {
    _lock: MutexGuard<'static, ()>,
}

impl Guard {
    /// The simulator's log lines since the lock was taken (or since the last call),
    /// e.g. `nrt-sim: ERROR nrt_execute: injected execution fault ...`.
    pub fn take_log(&self) -> Vec<String> {
        control().take_log()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let control = control();
        control.clear_faults();
        let log = control.take_log();
        if std::thread::panicking() {
            for line in log {
                eprintln!("{line}");
            }
        }
    }
}

/// Serialises the test, clears faults left armed by an earlier (failed) test, and
/// captures the simulator's log until the guard drops.
pub fn lock() -> Guard {
    // A test that failed while holding the lock poisons it; the simulator is still usable.
    let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let control = control();
    control.clear_faults();
    control.capture_log(true);
    // Lines of requests an earlier test left running belong to no test.
    let _ = control.take_log();
    Guard { _lock: lock }
}

/// A runtime on the dlopen'ed simulator.
pub fn runtime() -> Runtime {
    Runtime::builder()
        .library(sim())
        .build()
        .expect("runtime on nrt-sim")
}

/// For the collective tests: four visible cores and a 0.5 s execution timeout (so a
/// missing rank fails fast), set once per test binary before its first runtime; then
/// [`lock`] and [`runtime`].
pub fn collective_runtime() -> (Guard, Runtime) {
    static ENV: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before this binary's first runtime reads the environment (every
    // test of such a binary starts here).
    ENV.call_once(|| unsafe {
        std::env::set_var("NRT_SIM_VNC_COUNT", "4");
        std::env::set_var("NEURON_RT_EXEC_TIMEOUT", "0.5");
    });
    let guard = lock();
    (guard, runtime())
}

/// A new runtime on the simulator once the previous one has closed: requests dropped
/// before completion keep theirs open until they complete. Returns the runtime and
/// whether the first attempt found the previous one still open.
pub fn runtime_after_close(limit: Duration) -> (Runtime, bool) {
    let started = std::time::Instant::now();
    let mut first = true;
    let mut was_open = false;
    loop {
        match Runtime::builder().library(sim()).build() {
            Ok(rt) => return (rt, was_open),
            Err(neuron_rt::Error::AlreadyInitialized) if started.elapsed() < limit => {
                was_open |= first;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("the runtime did not close within {limit:?}: {e}"),
        }
        first = false;
    }
}

/// Asserts that the simulator holds no model, tensor, set or byte.
pub fn assert_no_leaks() {
    let c = control().counters();
    assert_eq!(c.live_objects(), 0, "live objects left: {c:?}");
    assert_eq!(c.host_bytes, 0, "host bytes left: {c:?}");
    for (core, cc) in c.cores.iter().enumerate() {
        assert_eq!(
            cc.device_bytes, 0,
            "device bytes left on core {core}: {c:?}"
        );
    }
}

/// `out = a + b` on two f32 [2, 3] inputs.
pub fn add_model() -> Vec<u8> {
    ModelBuilder::add_example(&[2, 3])
        .build()
        .expect("add model")
}

/// [`add_model`] taking `device_time` per execution.
pub fn add_model_taking(device_time: Duration) -> Vec<u8> {
    ModelBuilder::add_example(&[2, 3])
        .device_time(device_time)
        .build()
        .expect("add model")
}

/// `y = x` on f32 [4], taking `device_time` per execution.
pub fn identity_model(device_time: Duration) -> Vec<u8> {
    ModelBuilder::new("identity")
        .input("x", DType::F32, &[4])
        .output("y", DType::F32, &[4])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .expect("identity model")
}

/// Runs an [`add_model`] once on a = 1, b = 2 with fresh sets and checks out = 3.
pub fn assert_adds(model: &Model) {
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    inputs.get("a").unwrap().write(&[1.0f32; 6]).unwrap();
    inputs.get("b").unwrap().write(&[2.0f32; 6]).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    assert_eq!(f32s(&outputs, "out"), [3.0; 6]);
}

/// `y = x @ w` ([2, 3] x [3, 2]) and `r = relu(y)`, f32.
pub fn matmul_relu_model() -> Vec<u8> {
    ModelBuilder::new("mm")
        .input("x", DType::F32, &[2, 3])
        .input("w", DType::F32, &[3, 2])
        .output("y", DType::F32, &[2, 2])
        .output("r", DType::F32, &[2, 2])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "y".into(),
        })
        .op(Op::Relu {
            input: "y".into(),
            out: "r".into(),
        })
        .build()
        .expect("matmul model")
}

/// `y = x * scale + bias` on i32 [4].
pub fn scale_bias_i32_model(scale: f64, bias: f64) -> Vec<u8> {
    ModelBuilder::new("scale_bias_i32")
        .input("x", DType::I32, &[4])
        .output("y", DType::I32, &[4])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale,
            bias,
            out: "y".into(),
        })
        .build()
        .expect("scale-bias model")
}

/// The f32 contents of `name` in `set`.
pub fn f32s(set: &TensorSet, name: &str) -> Vec<f32> {
    set.get(name)
        .unwrap_or_else(|| panic!("no `{name}` in the set"))
        .to_vec()
        .unwrap()
}
