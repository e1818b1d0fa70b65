//! The global communicator and barrier (host-driven collectives), and what the simulator
//! does not model (profiling): documented failure statuses.

use super::args::{guard, not_simulated};
use crate::runtime;
use nrt_sys::*;
use std::ffi::c_char;

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
