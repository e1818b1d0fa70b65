//! The global communicator, barrier and all-gather (host-driven collectives), and what
//! the simulator does not model (profiling): documented failure statuses.

use super::args::{guard, not_simulated};
use crate::error::fail;
use crate::runtime;
use nrt_sys::*;
use std::ffi::{c_char, c_void};

/// Registers core `vnc` as member `g_device_id` of the global communicator of
/// `g_device_count` members (see `runtime/global.rs`); `NRT_INVALID` for a core that is
/// not visible, a count of 0, an id not below the count, or a count other than the
/// communicator's.
///
/// # Safety
///
/// No pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_build_global_comm(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    guard("nrt_build_global_comm", || {
        runtime::build_global_comm(vnc.into(), g_device_id, g_device_count)
    })
}

/// As [`nrt_build_global_comm`] (the same communicator; `vnc` unsigned).
///
/// # Safety
///
/// No pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_cc_global_comm_init(
    vnc: u32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    guard("nrt_cc_global_comm_init", || {
        runtime::build_global_comm(vnc.into(), g_device_id, g_device_count)
    })
}

/// Waits until all `g_device_count` members entered the barrier; registers the caller
/// as [`nrt_build_global_comm`] does (no prior setup needed). Arguments as there;
/// `NRT_EXEC_HW_ERR_COLLECTIVES` after `NEURON_RT_EXEC_TIMEOUT`, with a log line naming
/// the members that never came.
///
/// # Safety
///
/// No pointer is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_barrier(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    guard("nrt_barrier", || {
        runtime::barrier(vnc.into(), g_device_id, g_device_count)
    })
}

/// Gathers `rank_input_size` bytes from `input` of each of the `g_device_count` members
/// into `output` (`g_device_count * rank_input_size` bytes, member `i`'s bytes at
/// `i * rank_input_size`); registers the caller as [`nrt_build_global_comm`] does.
/// `NRT_INVALID` for a NULL buffer (with a size above 0), arguments
/// [`nrt_build_global_comm`] refuses, or members giving different sizes;
/// `NRT_EXEC_HW_ERR_COLLECTIVES` after `NEURON_RT_EXEC_TIMEOUT` when a member never
/// came. `input` and `output` may not overlap.
///
/// # Safety
///
/// `input` must be valid for reads of `rank_input_size` bytes and `output` for writes of
/// `g_device_count * rank_input_size` bytes, for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_all_gather(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
    rank_input_size: u32,
    input: *mut c_void,
    output: *mut c_void,
) -> NRT_STATUS {
    guard("nrt_all_gather", || {
        // An absurd world is refused before any slice of `world * size` bytes is formed.
        runtime::check_world(g_device_count, "g_device_count")?;
        let size = rank_input_size as usize;
        let total = size * g_device_count as usize;
        if size > 0 && (input.is_null() || output.is_null()) {
            return fail(
                NRT_INVALID,
                format!(
                    "input {input:p} / output {output:p}: both buffers are needed for rank_input_size {size}"
                ),
            );
        }
        if size == 0 {
            return runtime::all_gather(vnc.into(), g_device_id, g_device_count, &[], &mut []);
        }
        let (start, end) = (output as usize, (output as usize).saturating_add(total));
        if (input as usize) < end && start < (input as usize).saturating_add(size) {
            return fail(
                NRT_INVALID,
                format!(
                    "input {input:p} ({size} bytes) overlaps output {output:p} ({total} bytes)"
                ),
            );
        }
        // SAFETY: non-null; the caller guarantees `size` readable bytes at `input` and
        // `total` writable bytes at `output`, which do not overlap (checked above).
        let (input, output) = unsafe {
            (
                std::slice::from_raw_parts(input.cast::<u8>(), size),
                std::slice::from_raw_parts_mut(output.cast::<u8>(), total),
            )
        };
        runtime::all_gather(vnc.into(), g_device_id, g_device_count, input, output)
    })
}

/// Not simulated (profiling): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_start(
    model: *mut nrt_model_t,
    filename: *const c_char,
) -> NRT_STATUS {
    let _ = (model, filename);
    guard("nrt_profile_start", || not_simulated("profiling"))
}

/// Not simulated (profiling): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_stop(filename: *const c_char) -> NRT_STATUS {
    let _ = filename;
    guard("nrt_profile_stop", || not_simulated("profiling"))
}
