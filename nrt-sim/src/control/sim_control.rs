//! [`SimControl`]: the exported `nrt_sim_*` functions of one loaded simulator, for Rust.

use super::c_api::{
    NRT_SIM_IDENTITY, nrt_sim_clear_faults, nrt_sim_core_counters_t, nrt_sim_counters_t,
    nrt_sim_faults_injected, nrt_sim_get_core_counters, nrt_sim_get_counters, nrt_sim_identity,
    nrt_sim_inject_faults, nrt_sim_last_error,
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

type GetCountersFn = unsafe extern "C" fn(*mut nrt_sim_counters_t, usize) -> NRT_STATUS;
type GetCoreCountersFn =
    unsafe extern "C" fn(u32, *mut nrt_sim_core_counters_t, usize) -> NRT_STATUS;
type InjectFn = unsafe extern "C" fn(*const c_char) -> NRT_STATUS;
type ClearFn = unsafe extern "C" fn();
type LastErrorFn = unsafe extern "C" fn() -> *const c_char;
type IdentityFn = unsafe extern "C" fn() -> u64;
type FaultsInjectedFn = unsafe extern "C" fn() -> u64;

// The exported functions have exactly these types (checked here at compile time).
const _: (
    GetCountersFn,
    GetCoreCountersFn,
    InjectFn,
    ClearFn,
    LastErrorFn,
    IdentityFn,
    FaultsInjectedFn,
) = (
    nrt_sim_get_counters,
    nrt_sim_get_core_counters,
    nrt_sim_inject_faults,
    nrt_sim_clear_faults,
    nrt_sim_last_error,
    nrt_sim_identity,
    nrt_sim_faults_injected,
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
        let (a, b, c, d, e, f) = (
            get(c"nrt_sim_get_counters")?,
            get(c"nrt_sim_get_core_counters")?,
            get(c"nrt_sim_inject_faults")?,
            get(c"nrt_sim_clear_faults")?,
            get(c"nrt_sim_last_error")?,
            get(c"nrt_sim_faults_injected")?,
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
