//! [`SimControl`]: the exported `nrt_sim_*` functions of one loaded simulator, for Rust.

use super::c_api::{
    NRT_SIM_IDENTITY, nrt_sim_capture_log, nrt_sim_clear_faults, nrt_sim_clock_stats_t,
    nrt_sim_core_counters_t, nrt_sim_counters_t, nrt_sim_faults_injected, nrt_sim_get_clock_stats,
    nrt_sim_get_core_counters, nrt_sim_get_counters, nrt_sim_get_tensor_transfers,
    nrt_sim_identity, nrt_sim_inject_faults, nrt_sim_last_error, nrt_sim_set_launch_us,
    nrt_sim_take_log, nrt_sim_tensor_transfers_t,
};
use crate::faults::{self, FaultSpecError};
use nrt_sys::*;
use std::ffi::{CStr, CString, c_char, c_void};
use std::time::Duration;

/// Counters of one simulated core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreCounters {
    /// Live models loaded on the core.
    pub models: u64,
    /// Live tensors on the core (slices included).
    pub tensors: u64,
    /// Device bytes in use (tensors and models).
    pub device_bytes: u64,
    /// Device memory of the core.
    pub device_bytes_limit: u64,
    /// Executions run (sync and async, failed ones included).
    pub executions: u64,
    /// Executions that ended with a status other than success.
    pub failed_executions: u64,
    /// Time the core spent executing.
    pub busy: Duration,
    /// Async tensor requests (read, write, copy) processed by the core's queues.
    pub tensor_ops: u64,
    /// Work done by TENSOR_OP queues 0 and 1 (transfers take `size / NRT_SIM_DMA_GBPS`).
    pub tensor_op_busy: [Duration; 2],
    /// Work done by the COMPUTE queue (async executions).
    pub compute_queue_busy: Duration,
    /// Time spent in synchronous reads and writes of the core's device tensors.
    pub sync_transfer: Duration,
}

/// Bytes moved between one device tensor's memory and the host
/// ([`SimControl::tensor_transfers`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorTransfers {
    /// Read from device memory to the host (reads, and copies to HOST/VIRTUAL tensors).
    pub device_to_host_bytes: u64,
    /// Written to device memory from the host.
    pub host_to_device_bytes: u64,
}

/// A snapshot of a simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Per visible core (of the open runtime, or the last closed one).
    pub cores: Vec<CoreCounters>,
    /// Whether the runtime is between `nrt_init` and `nrt_close`.
    pub open: bool,
    /// Live tensor sets.
    pub tensor_sets: u64,
    /// Live tensors not on a device.
    pub host_tensors: u64,
    /// Host bytes owned by those tensors.
    pub host_bytes: u64,
    /// Objects the last `nrt_close` had to free (a leak indicator).
    pub live_at_last_close: u64,
}

impl Counters {
    /// Live models, tensors and tensor sets, on every core and the host.
    pub fn live_objects(&self) -> u64 {
        self.tensor_sets
            + self.host_tensors
            + self.cores.iter().map(|c| c.models + c.tensors).sum::<u64>()
    }
}

/// The simulator's clock: how far its threads lag behind the device model (the trace's
/// timeline), over the last 4096 executions, and its settings (see
/// [`SimControl::clock_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClockStats {
    /// Executions recorded (since the library was loaded or the last reset).
    pub executions: u64,
    /// When the simulator's thread reached an execution's modelled start, minus that
    /// start (0 when it was early): p50 and p99.
    pub start_lag_p50: Duration,
    /// See [`start_lag_p50`](Self::start_lag_p50).
    pub start_lag_p99: Duration,
    /// When its wait for the modelled end returned, minus that end: the simulator's own
    /// clock error, p50 and p99.
    pub end_lag_p50: Duration,
    /// See [`end_lag_p50`](Self::end_lag_p50).
    pub end_lag_p99: Duration,
    /// The launch cost every execution pays (`NRT_SIM_LAUNCH_US`).
    pub launch: Duration,
    /// How long before a deadline the simulator stops sleeping and spins (it follows
    /// how late this machine's sleeps end).
    pub spin_margin: Duration,
}

/// A launch cost the simulator refused (more than 10 s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchCostError {
    /// The refused launch cost.
    pub launch: Duration,
}

impl std::fmt::Display for LaunchCostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "launch cost {:?} is more than the simulator's limit of 10 s",
            self.launch
        )
    }
}

impl std::error::Error for LaunchCostError {}

type GetCountersFn = unsafe extern "C" fn(*mut nrt_sim_counters_t, usize) -> NRT_STATUS;
type GetCoreCountersFn =
    unsafe extern "C" fn(u32, *mut nrt_sim_core_counters_t, usize) -> NRT_STATUS;
type InjectFn = unsafe extern "C" fn(*const c_char) -> NRT_STATUS;
type ClearFn = unsafe extern "C" fn();
type LastErrorFn = unsafe extern "C" fn() -> *const c_char;
type IdentityFn = unsafe extern "C" fn() -> u64;
type FaultsInjectedFn = unsafe extern "C" fn() -> u64;
type TensorTransfersFn =
    unsafe extern "C" fn(*const nrt_tensor_t, *mut nrt_sim_tensor_transfers_t, usize) -> NRT_STATUS;
type ClockStatsFn = unsafe extern "C" fn(*mut nrt_sim_clock_stats_t, usize, u32) -> NRT_STATUS;
type SetLaunchFn = unsafe extern "C" fn(u64) -> NRT_STATUS;
type CaptureLogFn = unsafe extern "C" fn(u32) -> u32;
type TakeLogFn = unsafe extern "C" fn(*mut c_char, usize) -> usize;

// The exported functions have exactly these types (checked here at compile time).
const _: (
    GetCountersFn,
    GetCoreCountersFn,
    InjectFn,
    ClearFn,
    LastErrorFn,
    IdentityFn,
    FaultsInjectedFn,
    TensorTransfersFn,
    ClockStatsFn,
    SetLaunchFn,
    CaptureLogFn,
    TakeLogFn,
) = (
    nrt_sim_get_counters,
    nrt_sim_get_core_counters,
    nrt_sim_inject_faults,
    nrt_sim_clear_faults,
    nrt_sim_last_error,
    nrt_sim_identity,
    nrt_sim_faults_injected,
    nrt_sim_get_tensor_transfers,
    nrt_sim_get_clock_stats,
    nrt_sim_set_launch_us,
    nrt_sim_capture_log,
    nrt_sim_take_log,
);

/// Counters and fault control of one loaded simulator, through its exported `nrt_sim_*`
/// functions: the in-process one ([`crate::library`]) or a `dlopen`ed `libnrt_sim.so`
/// (each copy has its own state).
///
/// ```
/// let lib = nrt_sim::library();
/// let sim = nrt_sim::SimControl::new(lib).expect("nrt-sim exports its control functions");
/// assert!(sim.inject_faults("exec:nth=0").is_err());
/// let _ = sim.counters().live_objects();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SimControl {
    get_counters: GetCountersFn,
    get_core_counters: GetCoreCountersFn,
    inject: InjectFn,
    clear: ClearFn,
    last_error: LastErrorFn,
    faults_injected: FaultsInjectedFn,
    tensor_transfers: TensorTransfersFn,
    clock_stats: ClockStatsFn,
    set_launch: SetLaunchFn,
    capture_log: CaptureLogFn,
    take_log: TakeLogFn,
}

impl SimControl {
    /// The controls of `lib`, or `None` when `lib` is not nrt-sim. Two kinds of library
    /// are nrt-sim:
    ///
    /// * [`crate::library()`] itself: driven through this crate's own functions;
    /// * a library opened from a path (`nrt_sys::Library::open*`, e.g. `libnrt_sim.so`)
    ///   whose `nrt_sim_identity()` returns [`NRT_SIM_IDENTITY`] (same control interface).
    ///
    /// Any other in-process table gives `None`, even one named `"nrt-sim"` or one whose
    /// lookup answers the `nrt_sim_*` names: its name and lookup are its builder's choice.
    pub fn new(lib: &'static nrt_sys::Library) -> Option<SimControl> {
        if std::ptr::eq(lib, crate::exports::library()) {
            return Some(SimControl {
                get_counters: nrt_sim_get_counters,
                get_core_counters: nrt_sim_get_core_counters,
                inject: nrt_sim_inject_faults,
                clear: nrt_sim_clear_faults,
                last_error: nrt_sim_last_error,
                faults_injected: nrt_sim_faults_injected,
                tensor_transfers: nrt_sim_get_tensor_transfers,
                clock_stats: nrt_sim_get_clock_stats,
                set_launch: nrt_sim_set_launch_us,
                capture_log: nrt_sim_capture_log,
                take_log: nrt_sim_take_log,
            });
        }
        if !matches!(lib.origin(), nrt_sys::Origin::Path(_)) {
            return None;
        }
        let get = |name: &CStr| lib.symbol(name);
        let identity = get(c"nrt_sim_identity")?;
        // Why the cast below is sound: `lib` was opened from a path, and loading a library
        // trusts it (see nrt_sys::Library): its exports are what their names say.
        // `nrt_sim_*` is this crate's namespace, so `nrt_sim_identity` is nrt-sim's
        // `uint64_t (void)` function; the library stays loaded for the process.
        // SAFETY: the conditions just above hold for this cast.
        let identity = unsafe { std::mem::transmute::<*mut c_void, IdentityFn>(identity) };
        // SAFETY: takes no arguments and only returns a constant.
        if unsafe { identity() } != NRT_SIM_IDENTITY {
            return None;
        }
        let (a, b, c, d, e, f, g) = (
            get(c"nrt_sim_get_counters")?,
            get(c"nrt_sim_get_core_counters")?,
            get(c"nrt_sim_inject_faults")?,
            get(c"nrt_sim_clear_faults")?,
            get(c"nrt_sim_last_error")?,
            get(c"nrt_sim_faults_injected")?,
            get(c"nrt_sim_get_tensor_transfers")?,
        );
        let (h, i, j, k) = (
            get(c"nrt_sim_get_clock_stats")?,
            get(c"nrt_sim_set_launch_us")?,
            get(c"nrt_sim_capture_log")?,
            get(c"nrt_sim_take_log")?,
        );
        // SAFETY: a trusted library (as above) whose identity says it is nrt-sim with this
        // very control interface: these symbols are its functions of exactly these types
        // (checked above), loaded for the life of the process (`&'static Library`).
        unsafe {
            Some(SimControl {
                get_counters: std::mem::transmute::<*mut c_void, GetCountersFn>(a),
                get_core_counters: std::mem::transmute::<*mut c_void, GetCoreCountersFn>(b),
                inject: std::mem::transmute::<*mut c_void, InjectFn>(c),
                clear: std::mem::transmute::<*mut c_void, ClearFn>(d),
                last_error: std::mem::transmute::<*mut c_void, LastErrorFn>(e),
                faults_injected: std::mem::transmute::<*mut c_void, FaultsInjectedFn>(f),
                tensor_transfers: std::mem::transmute::<*mut c_void, TensorTransfersFn>(g),
                clock_stats: std::mem::transmute::<*mut c_void, ClockStatsFn>(h),
                set_launch: std::mem::transmute::<*mut c_void, SetLaunchFn>(i),
                capture_log: std::mem::transmute::<*mut c_void, CaptureLogFn>(j),
                take_log: std::mem::transmute::<*mut c_void, TakeLogFn>(k),
            })
        }
    }

    /// A snapshot of the counters (see [`Counters`]).
    pub fn counters(&self) -> Counters {
        let mut global = nrt_sim_counters_t::default();
        // SAFETY: `global` is a writable nrt_sim_counters_t of the size passed.
        let status =
            unsafe { (self.get_counters)(&mut global, std::mem::size_of::<nrt_sim_counters_t>()) };
        if status != NRT_SUCCESS {
            return Counters::default();
        }
        let cores = (0..global.core_count)
            .map_while(|vnc| {
                let mut c = nrt_sim_core_counters_t::default();
                // SAFETY: `c` is a writable nrt_sim_core_counters_t of the size passed.
                let status = unsafe {
                    (self.get_core_counters)(
                        vnc,
                        &mut c,
                        std::mem::size_of::<nrt_sim_core_counters_t>(),
                    )
                };
                (status == NRT_SUCCESS).then(|| CoreCounters {
                    models: c.models,
                    tensors: c.tensors,
                    device_bytes: c.device_bytes,
                    device_bytes_limit: c.device_bytes_limit,
                    executions: c.executions,
                    failed_executions: c.failed_executions,
                    busy: Duration::from_nanos(c.busy_ns),
                    tensor_ops: c.tensor_ops,
                    tensor_op_busy: c.tensor_op_busy_ns.map(Duration::from_nanos),
                    compute_queue_busy: Duration::from_nanos(c.compute_queue_busy_ns),
                    sync_transfer: Duration::from_nanos(c.sync_transfer_ns),
                })
            })
            .collect();
        Counters {
            cores,
            open: global.open != 0,
            tensor_sets: global.tensor_sets,
            host_tensors: global.host_tensors,
            host_bytes: global.host_bytes,
            live_at_last_close: global.live_at_last_close,
        }
    }

    /// Arms the faults of `spec` (the `NRT_SIM_FAULTS` language, see the crate docs).
    ///
    /// # Errors
    ///
    /// [`FaultSpecError`] naming the bad fault and what is wrong; nothing is armed then.
    pub fn inject_faults(&self, spec: &str) -> Result<(), FaultSpecError> {
        faults::parse(spec)?;
        let c_spec = CString::new(spec).map_err(|_| FaultSpecError {
            fault: spec.to_string(),
            message: "the spec contains a NUL byte".into(),
        })?;
        // SAFETY: `c_spec` is a valid C string for the duration of the call.
        let status = unsafe { (self.inject)(c_spec.as_ptr()) };
        if status == NRT_SUCCESS {
            Ok(())
        } else {
            Err(FaultSpecError {
                fault: spec.to_string(),
                message: format!(
                    "the simulator refused the spec (status {status}): {}",
                    self.last_error().unwrap_or_default()
                ),
            })
        }
    }

    /// Faults that fired in this simulator since it was loaded: events (executions,
    /// allocations, loads, async requests) an armed fault made fail, each counted once.
    /// Never reset (clearing faults or `nrt_init` keep it): take the difference of two
    /// reads. Requests that fail later because an injected fault made their unit
    /// unrecoverable (`NRT_EXEC_UNIT_UNRECOVERABLE`) are not counted.
    ///
    /// ```
    /// let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    /// let before = sim.faults_injected();
    /// assert!(sim.faults_injected() >= before);
    /// ```
    pub fn faults_injected(&self) -> u64 {
        // SAFETY: takes no arguments and only reads a counter.
        unsafe { (self.faults_injected)() }
    }

    /// Bytes moved between the device memory of `tensor` (a live tensor of this
    /// simulator, as `nrt_tensor_allocate` returned it) and the host since it was
    /// allocated: reads to the host (`nrt_tensor_read`, its batch and async forms,
    /// copies to a HOST or VIRTUAL tensor) and writes from it. Counted on the tensor's
    /// memory, which its slices share; executions reading or writing it count nothing,
    /// so a KV cache updated in place by the device reads `0` to the host. `None` when
    /// `tensor` is not a live tensor (freed, or no runtime open); the handle is checked,
    /// never dereferenced.
    ///
    /// ```
    /// let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    /// assert_eq!(sim.tensor_transfers(std::ptr::null()), None);
    /// ```
    // The handle is passed on, not dereferenced: nrt-sim's handles are tokens that it
    // looks up in its registry (any value is refused or resolved, never followed).
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn tensor_transfers(&self, tensor: *const nrt_tensor_t) -> Option<TensorTransfers> {
        let mut t = nrt_sim_tensor_transfers_t::default();
        let size = std::mem::size_of::<nrt_sim_tensor_transfers_t>();
        // SAFETY: `t` is a writable struct of `size` bytes; the handle is only a token.
        let status = unsafe { (self.tensor_transfers)(tensor, &mut t, size) };
        (status == NRT_SUCCESS).then_some(TensorTransfers {
            device_to_host_bytes: t.device_to_host_bytes,
            host_to_device_bytes: t.host_to_device_bytes,
        })
    }

    /// The simulator's clock: its lag behind the device model over the last 4096
    /// executions (p50 / p99 of start and end lag), its launch cost and spin margin;
    /// `reset` empties the lag samples afterwards (to measure one phase of a run).
    ///
    /// ```
    /// let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    /// let stats = sim.clock_stats(false);
    /// assert!(stats.end_lag_p50 <= stats.end_lag_p99);
    /// ```
    pub fn clock_stats(&self, reset: bool) -> ClockStats {
        let mut c = nrt_sim_clock_stats_t::default();
        // SAFETY: `c` is a writable nrt_sim_clock_stats_t of the size passed.
        let status = unsafe {
            (self.clock_stats)(
                &mut c,
                std::mem::size_of::<nrt_sim_clock_stats_t>(),
                reset.into(),
            )
        };
        if status != NRT_SUCCESS {
            return ClockStats::default();
        }
        ClockStats {
            executions: c.executions,
            start_lag_p50: Duration::from_nanos(c.start_lag_p50_ns),
            start_lag_p99: Duration::from_nanos(c.start_lag_p99_ns),
            end_lag_p50: Duration::from_nanos(c.end_lag_p50_ns),
            end_lag_p99: Duration::from_nanos(c.end_lag_p99_ns),
            launch: Duration::from_nanos(c.launch_ns),
            spin_margin: Duration::from_nanos(c.spin_margin_ns),
        }
    }

    /// Sets the launch cost `L` every later execution pays before it starts on its core:
    /// `start = max(previous end, queued + L)` on the device timeline (the system trace's
    /// `nc_exec_running` spans), until the next `nrt_init` (which reads
    /// `NRT_SIM_LAUNCH_US`). Whole microseconds (finer parts are dropped).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    /// assert!(sim.set_launch_cost(Duration::from_secs(11)).is_err());
    /// sim.set_launch_cost(Duration::ZERO).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`LaunchCostError`] above 10 s; the launch cost is unchanged then.
    pub fn set_launch_cost(&self, launch: Duration) -> Result<(), LaunchCostError> {
        let us = u64::try_from(launch.as_micros()).unwrap_or(u64::MAX);
        // SAFETY: takes an integer.
        match unsafe { (self.set_launch)(us) } {
            NRT_SUCCESS => Ok(()),
            _ => Err(LaunchCostError { launch }),
        }
    }

    /// Sends the simulator's log lines (`nrt-sim: ERROR nrt_execute: ...`) to an
    /// in-memory buffer of the last 4096 lines (`on`), or to stderr again (`!on`; the
    /// buffer keeps its lines until [`take_log`](SimControl::take_log)). Returns whether
    /// capture was on. Process-wide for this copy of the simulator: for tests of failure
    /// paths, which then print nothing and may assert on what was logged.
    ///
    /// ```
    /// let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    /// let was = sim.capture_log(true);
    /// // A failing call logs its reason: into the buffer, not to stderr.
    /// // SAFETY: NULL is refused (and logged), never dereferenced.
    /// unsafe { nrt_sim::ffi::nrt_tensor_free(std::ptr::null_mut()) };
    /// sim.capture_log(was);
    /// let log = sim.take_log();
    /// let line = "nrt-sim: ERROR nrt_tensor_free: tensor is NULL";
    /// assert!(log.iter().any(|l| l == line), "{log:?}");
    /// ```
    pub fn capture_log(&self, on: bool) -> bool {
        // SAFETY: takes an integer.
        unsafe { (self.capture_log)(on.into()) != 0 }
    }

    /// Removes and returns the captured log lines, oldest first (each without its
    /// newline); empty when none was captured.
    pub fn take_log(&self) -> Vec<String> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = Vec::new();
        loop {
            // SAFETY: `buf` is writable for its length; the function writes at most that
            // many bytes, a NUL included.
            let n = unsafe { (self.take_log)(buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
            if n == 0 {
                return lines;
            }
            let text = String::from_utf8_lossy(&buf[..n.min(buf.len())]);
            lines.extend(text.lines().map(str::to_owned));
        }
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        // SAFETY: takes no arguments.
        unsafe { (self.clear)() }
    }

    /// The calling thread's last error line in this simulator, if any.
    pub fn last_error(&self) -> Option<String> {
        // SAFETY: takes no arguments; returns NULL or a C string valid until this
        // thread's next failing call, copied out at once.
        unsafe {
            let p = (self.last_error)();
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_objects_sums_every_kind() {
        let c = Counters {
            cores: vec![
                CoreCounters {
                    models: 1,
                    tensors: 2,
                    ..Default::default()
                },
                CoreCounters {
                    tensors: 3,
                    ..Default::default()
                },
            ],
            tensor_sets: 4,
            host_tensors: 5,
            ..Default::default()
        };
        assert_eq!(c.live_objects(), 15);
    }
}
