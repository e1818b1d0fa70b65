//! Functions the simulator does not model (collectives, profiling): documented failure statuses.

use super::args::{guard, not_simulated};
use nrt_sys::*;
use std::ffi::c_char;

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_build_global_comm(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_build_global_comm", || {
        not_simulated("global communicators")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_cc_global_comm_init(
    vnc: u32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_cc_global_comm_init", || {
        not_simulated("global communicators")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_barrier(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_barrier", || not_simulated("barriers across devices"))
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
