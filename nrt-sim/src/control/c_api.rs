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

/// Host transfers of one device tensor, C layout (`nrt_sim_tensor_transfers_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct nrt_sim_tensor_transfers_t {
    /// Bytes read from the tensor's device memory to the host (`nrt_tensor_read`, its
    /// batch and async forms, copies to a HOST or VIRTUAL tensor).
    pub device_to_host_bytes: u64,
    /// Bytes written to it from the host (`nrt_tensor_write` and its forms, copies
    /// from a HOST or VIRTUAL tensor).
    pub host_to_device_bytes: u64,
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

/// Fills `*transfers` (`size` at least `sizeof(nrt_sim_tensor_transfers_t)`) for the
/// live `tensor`: bytes moved between its device memory and the host since it was
/// allocated, counted on its memory (shared with its slices). Executions reading and
/// writing it are device work and count nothing; a HOST or VIRTUAL tensor reports 0.
/// `NRT_INVALID` for NULL pointers or a short size, `NRT_INVALID_HANDLE` for a freed
/// tensor, `NRT_UNINITIALIZED` / `NRT_CLOSED` outside `nrt_init`..`nrt_close`.
///
/// # Safety
///
/// `transfers` must be valid for writes of `size` bytes; `tensor` is a token (any value
/// is checked, never dereferenced).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_get_tensor_transfers(
    tensor: *const nrt_tensor_t,
    transfers: *mut nrt_sim_tensor_transfers_t,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_sim_get_tensor_transfers", || {
        let full = std::mem::size_of::<nrt_sim_tensor_transfers_t>();
        check_out(transfers, size, full, "nrt_sim_tensor_transfers_t")?;
        let t = runtime::with_open(|rt| rt.tensor(tensor, "tensor"))?;
        let (to_host, from_host) = t.host_transfers();
        let value = nrt_sim_tensor_transfers_t {
            device_to_host_bytes: to_host,
            host_to_device_bytes: from_host,
        };
        // SAFETY: non-null, aligned, and writable for `size` >= size_of bytes (caller).
        unsafe { transfers.write(value) };
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

/// Why async request `seq` failed, as `"function: request n on core c TYPE queue q:
/// reason"` (the line the queue's worker logged): copied into `buf` (at most `size - 1`
/// bytes and a NUL; nothing when `buf` is NULL or `size` is 0) like `snprintf`, returning
/// the reason's full length; an empty string and 0 when the request did not fail (or is
/// not among the last 64 failures of its queue, or the runtime is closed). For a caller
/// that saw the request complete with a failure status: the reason is kept before the
/// completion is published.
///
/// # Safety
///
/// `buf` must be NULL or valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_request_error(
    seq: nrta_seq_t,
    buf: *mut c_char,
    size: usize,
) -> usize {
    let reason = std::panic::catch_unwind(|| {
        crate::runtime::with_open(|rt| Ok(rt.request_reason(seq)))
            .ok()
            .flatten()
    })
    .ok()
    .flatten();
    let reason = reason.unwrap_or_default();
    if !buf.is_null() && size > 0 {
        let n = reason.len().min(size - 1);
        // SAFETY: `buf` is valid for `size` > n bytes (caller); `reason` has `n` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(reason.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
        }
    }
    reason.len()
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

/// The simulator's clock, C layout (`nrt_sim_clock_stats_t`): its lag behind the device
/// model over the last 4096 executions, and its settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct nrt_sim_clock_stats_t {
    /// Executions recorded (since the library was loaded or the last reset).
    pub executions: u64,
    /// Start lag (when the simulator's thread reached an execution's modelled start,
    /// minus that start; 0 when early), p50 and p99, in nanoseconds.
    pub start_lag_p50_ns: u64,
    /// See `start_lag_p50_ns`.
    pub start_lag_p99_ns: u64,
    /// End lag (when the wait for the modelled end returned, minus that end): the
    /// simulator's own clock error, p50 and p99, in nanoseconds.
    pub end_lag_p50_ns: u64,
    /// See `end_lag_p50_ns`.
    pub end_lag_p99_ns: u64,
    /// The launch cost every execution pays (`NRT_SIM_LAUNCH_US`), in nanoseconds.
    pub launch_ns: u64,
    /// How long before a deadline the simulator stops sleeping and spins, in nanoseconds.
    pub spin_margin_ns: u64,
}

/// Fills `*stats` (`size` at least `sizeof(nrt_sim_clock_stats_t)`); a non-zero `reset`
/// empties the lag samples afterwards. Works at any time.
///
/// # Safety
///
/// `stats` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_get_clock_stats(
    stats: *mut nrt_sim_clock_stats_t,
    size: usize,
    reset: u32,
) -> NRT_STATUS {
    guard("nrt_sim_get_clock_stats", || {
        check_out(
            stats,
            size,
            std::mem::size_of::<nrt_sim_clock_stats_t>(),
            "nrt_sim_clock_stats_t",
        )?;
        let lag = crate::clock::clock_stats(reset != 0);
        let ns = |d: std::time::Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        let value = nrt_sim_clock_stats_t {
            executions: lag.executions,
            start_lag_p50_ns: ns(lag.start_p50),
            start_lag_p99_ns: ns(lag.start_p99),
            end_lag_p50_ns: ns(lag.end_p50),
            end_lag_p99_ns: ns(lag.end_p99),
            launch_ns: ns(crate::clock::launch_cost()),
            spin_margin_ns: ns(crate::clock::margin()),
        };
        // SAFETY: non-null, aligned, and writable for `size` >= size_of bytes (caller).
        unsafe { stats.write(value) };
        Ok(())
    })
}

/// Sets the launch cost every later execution pays before it starts on its core
/// (`start = max(previous end, queued + L)`), until the next `nrt_init` (which reads
/// `NRT_SIM_LAUNCH_US`). `NRT_INVALID` above 10 s.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_set_launch_us(launch_us: u64) -> NRT_STATUS {
    guard("nrt_sim_set_launch_us", || {
        if launch_us > crate::clock::MAX_LAUNCH_US {
            return fail(
                NRT_INVALID,
                format!(
                    "launch cost {launch_us} us is more than {} us",
                    crate::clock::MAX_LAUNCH_US
                ),
            );
        }
        crate::clock::set_launch_cost(std::time::Duration::from_micros(launch_us));
        Ok(())
    })
}

/// `on != 0`: every later log line of the simulator goes to an in-memory buffer (the last
/// 4096 lines) instead of stderr; `on == 0`: to stderr again (the buffer keeps its lines
/// until taken). Returns 1 if capture was on before, else 0. For tests of failure paths
/// that must not print, and that may assert on what was logged (`nrt_sim_take_log`).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_capture_log(on: u32) -> u32 {
    u32::from(log::set_capture(on != 0))
}

/// Moves captured log lines, oldest first, into `buf`: as many whole lines (each ending
/// in `\n`) as fit in `size - 1` bytes, then a NUL; returns the number of bytes written
/// before the NUL, 0 when no line is captured (or `buf` is NULL or `size` is 0; nothing
/// is taken then). A first line longer than the buffer is taken cut to fit. Call until it
/// returns 0 to drain the buffer.
///
/// # Safety
///
/// `buf` must be NULL or valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sim_take_log(buf: *mut c_char, size: usize) -> usize {
    if buf.is_null() || size == 0 {
        return 0;
    }
    let lines = std::panic::catch_unwind(|| log::take_captured(size - 1)).unwrap_or_default();
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    let n = text.len().min(size - 1);
    // SAFETY: `buf` is valid for `size` > n bytes (caller); `text` has at least `n` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
    n
}

/// What [`nrt_sim_identity`] returns: `"nrt-sim"` in ASCII with the version of this
/// control interface (the two counter structs and the `nrt_sim_*` functions) in the low
/// byte (2 since `nrt_sim_faults_injected` was added, 3 since
/// `nrt_sim_get_tensor_transfers`, 4 since `nrt_sim_request_error`, 5 since the clock
/// functions, 7 since `nrt_sim_capture_log` and `nrt_sim_take_log`; 6 is left to
/// another change in flight). Changing any of them changes the version, so a `libnrt_sim.so` built from
/// other sources is not driven with the wrong layouts.
pub const NRT_SIM_IDENTITY: u64 = 0x6e72_742d_7369_6d07;

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
        assert_eq!(std::mem::size_of::<nrt_sim_tensor_transfers_t>(), 16);
        assert_eq!(std::mem::size_of::<nrt_sim_clock_stats_t>(), 56);
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
