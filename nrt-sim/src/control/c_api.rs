//! The exported `nrt_sim_*` functions (declared in `nrt-sim/include/nrt_sim.h`) and their
//! C structs.

use crate::error::{Res, fail};
use crate::faults;
use crate::ffi::guard;
use crate::log;
use crate::runtime::{self, Core};
use nrt_sys::*;
use std::ffi::{CStr, c_char};
use std::sync::atomic::Ordering;

/// Process-wide counters, C layout (`nrt_sim_counters_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct nrt_sim_counters_t {
    /// Visible cores of the open runtime, or of the last closed one (0 before any).
    pub core_count: u32,
    /// 1 between `nrt_init` and `nrt_close`.
    pub open: u32,
    /// Live tensor sets.
    pub tensor_sets: u64,
    /// Live tensors not on a device (HOST, VIRTUAL, empty).
    pub host_tensors: u64,
    /// Host bytes owned by those tensors.
    pub host_bytes: u64,
    /// Models, tensors and tensor sets that the last `nrt_close` had to free.
    pub live_at_last_close: u64,
}

/// Counters of one core, C layout (`nrt_sim_core_counters_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct nrt_sim_core_counters_t {
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
    /// Time the core spent executing, in nanoseconds.
    pub busy_ns: u64,
    /// Async tensor requests (read, write, copy) processed by the core's queues.
    pub tensor_ops: u64,
    // Appended (the struct only grows; callers pass the size they know, at least
    // `CORE_COUNTERS_V1_SIZE`).
    /// Nanoseconds of work done by TENSOR_OP queues 0 and 1 (transfer time included).
    pub tensor_op_busy_ns: [u64; 2],
    /// Nanoseconds of work done by the COMPUTE queue (async executions).
    pub compute_queue_busy_ns: u64,
    /// Nanoseconds spent in synchronous reads and writes of the core's device tensors.
    pub sync_transfer_ns: u64,
}

/// Size of the first `nrt_sim_core_counters_t` (up to `tensor_ops`): the least a caller
/// may pass; larger sizes get as much of the struct as fits.
pub const CORE_COUNTERS_V1_SIZE: usize = 64;

fn core_counters(core: &Core, live: bool) -> nrt_sim_core_counters_t {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    nrt_sim_core_counters_t {
        models: if live { load(&core.models) } else { 0 },
        tensors: if live { load(&core.tensors) } else { 0 },
        device_bytes: if live { load(&core.bytes) } else { 0 },
        device_bytes_limit: core.capacity,
        executions: load(&core.executions),
        failed_executions: load(&core.failed_executions),
        busy_ns: load(&core.busy_ns),
        tensor_ops: load(&core.tensor_ops),
        tensor_op_busy_ns: [
            load(&core.tensor_op_busy_ns[0]),
            load(&core.tensor_op_busy_ns[1]),
        ],
        compute_queue_busy_ns: load(&core.compute_queue_busy_ns),
        sync_transfer_ns: load(&core.sync_transfer_ns),
    }
}

/// Checks a caller's out-pointer to a `T` and the size the caller says it has room for
/// (at least `min`, the size of the struct's first version).
fn check_out<T>(ptr: *mut T, size: usize, min: usize, type_name: &str) -> Res<()> {
    if ptr.is_null() || !ptr.is_aligned() {
        return fail(NRT_INVALID, "counters is NULL or misaligned");
    }
    if size < min {
        return fail(
            NRT_INVALID,
            format!("size {size} is less than {min}, the smallest sizeof({type_name})"),
        );
    }
    Ok(())
}

/// Writes the first `min(size, size_of::<T>())` bytes of `value` to `dst`.
///
/// # Safety
///
/// `dst` must be valid for writes of `size` bytes.
unsafe fn write_prefix<T: Copy>(dst: *mut T, size: usize, value: &T) {
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `value` has `n` readable bytes; `dst` has `size >= n` writable ones (caller).
    unsafe { std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), dst.cast::<u8>(), n) };
}

/// Fills `*counters` (`size` must be at least `sizeof(nrt_sim_counters_t)`). Works at any
/// time: between init and close it reports live objects; after close, zero live objects
/// and the last session's core count.
///
/// # Safety
///
/// `counters` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_get_counters(
    counters: *mut nrt_sim_counters_t,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_sim_get_counters", || {
        check_out(
            counters,
            size,
            std::mem::size_of::<nrt_sim_counters_t>(),
            "nrt_sim_counters_t",
        )?;
        let s = runtime::summary();
        let value = nrt_sim_counters_t {
            core_count: s.core_count,
            open: s.open.into(),
            tensor_sets: s.tensor_sets,
            host_tensors: s.host_tensors,
            host_bytes: s.host_bytes,
            live_at_last_close: s.live_at_last_close,
        };
        // SAFETY: non-null, aligned, and writable for `size` >= size_of bytes (caller).
        unsafe { counters.write(value) };
        Ok(())
    })
}

/// Fills `*counters` for core `vnc`: the first `min(size, sizeof)` bytes, `size` at least
/// [`CORE_COUNTERS_V1_SIZE`] (callers built against an older, shorter struct keep working).
/// After close, the last session's cores report their execution counters and no live
/// objects. `NRT_INVALID` for a core that does not exist.
///
/// # Safety
///
/// `counters` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_get_core_counters(
    vnc: u32,
    counters: *mut nrt_sim_core_counters_t,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_sim_get_core_counters", || {
        check_out(
            counters,
            size,
            CORE_COUNTERS_V1_SIZE,
            "nrt_sim_core_counters_t",
        )?;
        let (cores, live) = runtime::reported_cores();
        let Some(core) = cores.get(vnc as usize) else {
            return fail(
                NRT_INVALID,
                format!("core {vnc} does not exist ({} core(s))", cores.len()),
            );
        };
        // SAFETY: non-null, aligned, and writable for `size` bytes (caller).
        unsafe { write_prefix(counters, size, &core_counters(core, live)) };
        Ok(())
    })
}

/// Arms the faults of `spec` (the `NRT_SIM_FAULTS` language). A bad spec arms nothing and
/// returns `NRT_INVALID` with the reason logged.
///
/// # Safety
///
/// `spec` must be NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_inject_faults(spec: *const c_char) -> NRT_STATUS {
    guard("nrt_sim_inject_faults", || {
        if spec.is_null() {
            return fail(NRT_INVALID, "spec is NULL");
        }
        // SAFETY: non-null C string (caller).
        let text = unsafe { CStr::from_ptr(spec) }.to_string_lossy();
        let parsed = faults::parse(&text).or_else(|e| fail(NRT_INVALID, e.to_string()))?;
        runtime::arm_faults(parsed)
    })
}

/// Disarms every fault (queues already unrecoverable stay so until the next `nrt_init`).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_clear_faults() {
    let _ = guard("nrt_sim_clear_faults", || {
        faults::clear();
        Ok(())
    });
}

/// The calling thread's last error line (`"function: reason"`), or NULL if none. The
/// string stays valid until the thread's next failing call.
///
/// # Safety
///
/// Always safe to call; do not free the result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_last_error() -> *const c_char {
    log::with_last_error(|e| e.map_or(std::ptr::null(), |c| c.as_ptr()))
}

/// Faults that fired since the library was loaded: every event (execution, allocation,
/// load, async request) that an armed fault made fail, counted once even when several
/// faults matched it. Never reset: read it before and after a run and take the
/// difference. Not counted: requests refused or failed later because an injected fault
/// made their unit unrecoverable, and immediate `xu` faults (no event fails then).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_faults_injected() -> u64 {
    faults::injected()
}

/// What [`nrt_sim_identity`] returns: `"nrt-sim"` in ASCII with the version of this
/// control interface (the two counter structs and the `nrt_sim_*` functions) in the low
/// byte (2 since `nrt_sim_faults_injected` was added). Changing any of them changes the version, so a `libnrt_sim.so` built from other
/// sources is not driven with the wrong layouts.
pub const NRT_SIM_IDENTITY: u64 = 0x6e72_742d_7369_6d02;

/// Returns [`NRT_SIM_IDENTITY`]: tells a loader that this library is nrt-sim, and which
/// version of the control interface it has.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_identity() -> u64 {
    NRT_SIM_IDENTITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_structs_have_the_header_sizes() {
        // tests/c/flow.c checks the same numbers on the C side.
        assert_eq!(std::mem::size_of::<nrt_sim_counters_t>(), 40);
        assert_eq!(std::mem::size_of::<nrt_sim_core_counters_t>(), 96);
    }

    #[test]
    fn counter_queries_refuse_null_and_short_out_pointers() {
        let full = std::mem::size_of::<nrt_sim_counters_t>();
        let mut global = nrt_sim_counters_t::default();
        let mut core = nrt_sim_core_counters_t::default();
        // SAFETY: every pointer is NULL or a live, writable struct of the size passed or more.
        unsafe {
            assert_eq!(
                nrt_sim_get_counters(std::ptr::null_mut(), full),
                NRT_INVALID
            );
            assert_eq!(nrt_sim_get_counters(&mut global, full - 1), NRT_INVALID);
            assert_eq!(
                nrt_sim_get_core_counters(0, std::ptr::null_mut(), 64),
                NRT_INVALID
            );
            assert_eq!(nrt_sim_get_core_counters(0, &mut core, 8), NRT_INVALID);
            assert_eq!(
                nrt_sim_get_core_counters(0, &mut core, CORE_COUNTERS_V1_SIZE - 1),
                NRT_INVALID
            );
            // The global query works at any time, open or not.
            assert_eq!(nrt_sim_get_counters(&mut global, full), NRT_SUCCESS);
        }
    }

    #[test]
    fn a_caller_of_the_first_core_counters_size_gets_only_that_prefix() {
        // Whatever the runtime state (open or not), core 0 of this or the last session,
        // or an unknown core: a 64-byte caller never gets more than 64 bytes.
        let mut words = [u64::MAX; 12];
        // SAFETY: `words` has 96 writable, 8-aligned bytes; 64 are offered.
        let status = unsafe {
            nrt_sim_get_core_counters(0, words.as_mut_ptr().cast(), CORE_COUNTERS_V1_SIZE)
        };
        assert!(status == NRT_SUCCESS || status == NRT_INVALID);
        assert!(
            words[8..].iter().all(|&w| w == u64::MAX),
            "wrote past 64 bytes"
        );
    }
}
