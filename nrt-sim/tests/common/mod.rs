//! Helpers for the integration tests: they call the exported C functions of the
//! in-process simulator directly. The runtime is process-global, so every test that
//! initializes it holds [`Session`], which serialises them and closes on drop.

#![allow(dead_code)]

use nrt_sim::ffi::*;
use nrt_sim::{Counters, ModelBuilder, SimControl};
use nrt_sys::*;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// An open runtime for one test; closes it on drop (also when the test panics).
pub struct Session {
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// Also captures the simulator's log until the session drops (so that the expected
    /// failures of a green run print nothing); a test that panics prints it.
    pub fn new() -> Session {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        control().clear_faults();
        control().capture_log(true);
        let _ = control().take_log();
        // SAFETY: the version strings are not read.
        let status =
            unsafe { nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, std::ptr::null(), std::ptr::null()) };
        assert_eq!(status, NRT_SUCCESS, "nrt_init: {}", last_error());
        Session { _serial: serial }
    }

    /// Holds the lock without initializing (for lifecycle tests); captures the log as
    /// [`Session::new`] does, and prints it if the test panics.
    pub fn serial_only() -> Serial {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        control().capture_log(true);
        let _ = control().take_log();
        Serial { _serial: serial }
    }
}

impl Session {
    /// The simulator's log lines since the session started (or since the last call).
    pub fn take_log(&self) -> Vec<String> {
        control().take_log()
    }
}

/// The test lock without a runtime ([`Session::serial_only`]).
pub struct Serial {
    _serial: MutexGuard<'static, ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        print_log_if_panicking();
    }
}

/// Prints the captured log lines through the test harness (shown with the failure) when
/// the test is panicking; drops them otherwise.
fn print_log_if_panicking() {
    let log = control().take_log();
    if std::thread::panicking() {
        for line in log {
            eprintln!("{line}");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        control().clear_faults();
        // SAFETY: no arguments.
        unsafe { nrt_close() };
        print_log_if_panicking();
    }
}

pub fn control() -> SimControl {
    SimControl::new(nrt_sim::library()).expect("in-process nrt-sim has its controls")
}

pub fn counters() -> Counters {
    control().counters()
}

/// The calling thread's last error line.
pub fn last_error() -> String {
    control().last_error().unwrap_or_default()
}

pub fn init_status() -> NRT_STATUS {
    // SAFETY: the version strings are not read.
    unsafe { nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, std::ptr::null(), std::ptr::null()) }
}

pub fn try_alloc(
    placement: nrt_tensor_placement_t,
    vnc: i32,
    size: usize,
    name: &str,
) -> Result<*mut nrt_tensor_t, NRT_STATUS> {
    let name = CString::new(name).unwrap();
    let mut t = std::ptr::null_mut();
    // SAFETY: valid name and out-pointer.
    let status = unsafe { nrt_tensor_allocate(placement, vnc, size, name.as_ptr(), &mut t) };
    if status == NRT_SUCCESS {
        assert!(!t.is_null());
        Ok(t)
    } else {
        Err(status)
    }
}

pub fn alloc(vnc: i32, size: usize, name: &str) -> *mut nrt_tensor_t {
    try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, vnc, size, name)
        .unwrap_or_else(|s| panic!("allocate {name}: {s}: {}", last_error()))
}

pub fn alloc_host(size: usize, name: &str) -> *mut nrt_tensor_t {
    try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, size, name)
        .unwrap_or_else(|s| panic!("allocate {name}: {s}: {}", last_error()))
}

pub fn free(mut t: *mut nrt_tensor_t) {
    // SAFETY: valid pointer to a handle.
    unsafe { nrt_tensor_free(&mut t) };
    assert!(t.is_null(), "nrt_tensor_free did not clear the handle");
}

pub fn write(t: *mut nrt_tensor_t, offset: usize, bytes: &[u8]) -> NRT_STATUS {
    // SAFETY: `bytes` is readable for its length.
    unsafe { nrt_tensor_write(t, bytes.as_ptr().cast(), offset, bytes.len()) }
}

pub fn read(t: *mut nrt_tensor_t, offset: usize, len: usize) -> Result<Vec<u8>, NRT_STATUS> {
    let mut out = vec![0u8; len];
    // SAFETY: `out` is writable for `len` bytes.
    let status = unsafe { nrt_tensor_read(t, out.as_mut_ptr().cast(), offset, len) };
    if status == NRT_SUCCESS {
        Ok(out)
    } else {
        Err(status)
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn write_f32(t: *mut nrt_tensor_t, v: &[f32]) {
    assert_eq!(write(t, 0, &f32_bytes(v)), NRT_SUCCESS, "{}", last_error());
}

pub fn read_f32(t: *mut nrt_tensor_t, n: usize) -> Vec<f32> {
    f32_values(&read(t, 0, n * 4).unwrap_or_else(|s| panic!("read: {s}: {}", last_error())))
}

pub fn new_set() -> *mut nrt_tensor_set_t {
    let mut s = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_allocate_tensor_set(&mut s) }, NRT_SUCCESS);
    s
}

pub fn add(set: *mut nrt_tensor_set_t, name: &str, t: *mut nrt_tensor_t) -> NRT_STATUS {
    let name = CString::new(name).unwrap();
    // SAFETY: valid C string.
    unsafe { nrt_add_tensor_to_tensor_set(set, name.as_ptr(), t) }
}

pub fn set_of(entries: &[(&str, *mut nrt_tensor_t)]) -> *mut nrt_tensor_set_t {
    let s = new_set();
    for (name, t) in entries {
        assert_eq!(add(s, name, *t), NRT_SUCCESS, "{}", last_error());
    }
    s
}

pub fn destroy_set(mut s: *mut nrt_tensor_set_t) {
    // SAFETY: valid pointer to a handle.
    unsafe { nrt_destroy_tensor_set(&mut s) };
    assert!(s.is_null());
}

pub fn try_load(bytes: &[u8], vnc: i32) -> Result<*mut nrt_model_t, NRT_STATUS> {
    let mut m = std::ptr::null_mut();
    // SAFETY: `bytes` is readable; valid out-pointer.
    let status = unsafe { nrt_load(bytes.as_ptr().cast(), bytes.len(), vnc, -1, &mut m) };
    if status == NRT_SUCCESS {
        Ok(m)
    } else {
        Err(status)
    }
}

pub fn load(bytes: &[u8], vnc: i32) -> *mut nrt_model_t {
    try_load(bytes, vnc).unwrap_or_else(|s| panic!("load: {s}: {}", last_error()))
}

pub fn unload(m: *mut nrt_model_t) {
    // SAFETY: handle checked by the simulator.
    assert_eq!(unsafe { nrt_unload(m) }, NRT_SUCCESS, "{}", last_error());
}

/// Stack of the threads that call `nrt_execute`: the simulator uses 4 MiB of its
/// caller's stack there (as the real runtime does), more than the 2 MiB test threads have.
pub const EXEC_STACK: usize = 16 << 20;

/// Runs `f` on a thread with [`EXEC_STACK`] of stack and returns its result; a panic in
/// `f` fails the caller. Tests that execute synchronously wrap their body in it.
pub fn on_exec_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        spawn_with_exec_stack(s, f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// `s.spawn(f)` with a stack of [`EXEC_STACK`].
pub fn spawn_with_exec_stack<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .stack_size(EXEC_STACK)
        .spawn_scoped(s, f)
        .expect("spawn a test thread")
}

/// `nrt_execute`; call it on a thread with [`EXEC_STACK`] (see [`on_exec_stack`]).
pub fn execute(
    m: *mut nrt_model_t,
    i: *mut nrt_tensor_set_t,
    o: *mut nrt_tensor_set_t,
) -> NRT_STATUS {
    // SAFETY: handles checked by the simulator.
    unsafe { nrt_execute(m, i, o) }
}

/// `out = a + b`, f32 of `n` elements, taking `time` per execution.
pub fn add_model(n: u32, time: Duration) -> Vec<u8> {
    ModelBuilder::add_example(&[n])
        .device_time(time)
        .build()
        .unwrap()
}

/// A loaded add model with its bound tensors on `vnc`.
pub struct AddRig {
    pub model: *mut nrt_model_t,
    pub a: *mut nrt_tensor_t,
    pub b: *mut nrt_tensor_t,
    pub out: *mut nrt_tensor_t,
    pub inputs: *mut nrt_tensor_set_t,
    pub outputs: *mut nrt_tensor_set_t,
}

impl AddRig {
    pub fn new(vnc: i32, n: u32, time: Duration) -> AddRig {
        let model = load(&add_model(n, time), vnc);
        let bytes = n as usize * 4;
        let (a, b, out) = (
            alloc(vnc, bytes, "a"),
            alloc(vnc, bytes, "b"),
            alloc(vnc, bytes, "out"),
        );
        AddRig {
            model,
            a,
            b,
            out,
            inputs: set_of(&[("a", a), ("b", b)]),
            outputs: set_of(&[("out", out)]),
        }
    }

    pub fn execute(&self) -> NRT_STATUS {
        execute(self.model, self.inputs, self.outputs)
    }

    pub fn release(self) {
        destroy_set(self.inputs);
        destroy_set(self.outputs);
        for t in [self.a, self.b, self.out] {
            free(t);
        }
        unload(self.model);
    }
}

pub fn status_str(s: NRT_STATUS) -> String {
    // SAFETY: returns a static C string.
    unsafe { CStr::from_ptr(nrt_get_status_as_str(s)) }
        .to_string_lossy()
        .into_owned()
}

/// Re-runs the current test binary for test `name` with `env` set, and asserts that the
/// child passed. In the child (`NRT_SIM_TEST_CHILD` set) returns `true`: run the body.
pub fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        return true;
    }
    let out = child_command(name, env).output().unwrap();
    assert_child_passed(name, &out);
    false
}

/// The command re-running the current test binary for test `name` alone, with the
/// simulator's variables of this process removed and `env` set.
pub fn child_command(name: &str, env: &[(&str, &str)]) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("NRT_SIM_TEST_CHILD", "1");
    for var in [
        "NRT_SIM_VNC_COUNT",
        "NEURON_RT_VISIBLE_CORES",
        "NEURON_RT_NUM_CORES",
        "NEURON_RT_LOG_LEVEL",
        "NRT_SIM_DEVICE_MEMORY",
        "NRT_SIM_QUEUE_DEPTH",
        "NRT_SIM_EXEC_LATENCY_US",
        "NRT_SIM_LAUNCH_US",
        "NEURON_RT_EXEC_TIMEOUT",
        "NRT_SIM_VERSION",
        "NRT_SIM_FAULTS",
        "NRT_SIM_EXEC_STACK",
        "NRT_SIM_DMA_GBPS",
        "NRT_SIM_CC_GBPS",
        "NEURON_RT_ROOT_COMM_ID",
        "NEURON_RT_VALIDATE_HASH",
        "NRT_SIM_COMM_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Asserts that the child running test `name` passed it.
pub fn assert_child_passed(name: &str, out: &std::process::Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child test {name} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value test status slots hold before the simulator writes them.
pub const SENTINEL: NRT_STATUS = 0xdead;

/// `nrta_is_completed(seq)`, its status as the error.
pub fn is_completed(seq: nrta_seq_t) -> Result<bool, NRT_STATUS> {
    let mut done = false;
    // SAFETY: valid out-pointer.
    let status = unsafe { nrta_is_completed(seq, &mut done) };
    if status == NRT_SUCCESS {
        Ok(done)
    } else {
        Err(status)
    }
}

/// Polls until `seq` completes; fails the test if it has not after 20 s (a hang).
pub fn wait_completed(seq: nrta_seq_t) {
    let start = std::time::Instant::now();
    while !is_completed(seq).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "request {seq:#x} never completed"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// `nrta_tensor_write` of `data` at `offset` on `(lnc, queue)`; the status as the error.
/// A refused schedule must not write the sequence id.
pub fn schedule_write(
    t: *mut nrt_tensor_t,
    data: &[u8],
    offset: u64,
    lnc: i32,
    queue: i32,
    ret: &mut NRT_STATUS,
) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = u64::MAX;
    // SAFETY: `data` and `ret` outlive the request (callers wait for it).
    let status = unsafe {
        nrta_tensor_write(
            t,
            data.as_ptr().cast(),
            offset,
            data.len() as u64,
            lnc,
            queue,
            ret,
            &mut seq,
        )
    };
    accepted(status, seq)
}

/// The sequence id of an accepted schedule call, or its refusal status; a refused call
/// must have left the id (`u64::MAX` before the call) unwritten.
fn accepted(status: NRT_STATUS, seq: nrta_seq_t) -> Result<nrta_seq_t, NRT_STATUS> {
    if status == NRT_SUCCESS {
        Ok(seq)
    } else {
        assert_eq!(seq, u64::MAX, "refused but the sequence id was written");
        Err(status)
    }
}

/// `nrta_tensor_read` into `buf` from `offset` on `(lnc, queue)`; as [`schedule_write`].
pub fn schedule_read(
    t: *mut nrt_tensor_t,
    buf: &mut [u8],
    offset: u64,
    lnc: i32,
    queue: i32,
    ret: &mut NRT_STATUS,
) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = u64::MAX;
    // SAFETY: `buf` and `ret` outlive the request (callers wait for it).
    let status = unsafe {
        nrta_tensor_read(
            buf.as_mut_ptr().cast(),
            t,
            offset,
            buf.len() as u64,
            lnc,
            queue,
            ret,
            &mut seq,
        )
    };
    accepted(status, seq)
}

/// A base port `p` for `NRT_SIM_SENDRECV_PORT` with `p` and `p + 1` (the ports of
/// cores 0 and 1) free now: both bound to 127.0.0.1 by the system's choice, then
/// released. A port derived from the process id can be one the system gave another
/// socket (those ports lie in its ephemeral range), and the receiver's listen fails.
pub fn free_port_pair() -> u16 {
    use std::net::TcpListener;
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let p = first.local_addr().expect("bound").port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", next)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1 in 100 tries");
}
