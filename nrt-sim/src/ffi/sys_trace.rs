//! Stubs (replaced family by family).

use super::args::{guard, not_simulated};
use nrt_sys::*;

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_buffer_free(buffer: *mut std::ffi::c_char) {
    let _ = (buffer,);
    let _ = guard("nrt_sys_trace_buffer_free", || {
        not_simulated("nrt_sys_trace_buffer_free")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_allocate(
    options: *mut *mut nrt_sys_trace_config_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_sys_trace_config_allocate", || {
        not_simulated("nrt_sys_trace_config_allocate")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_free(options: *mut nrt_sys_trace_config_t) {
    let _ = (options,);
    let _ = guard("nrt_sys_trace_config_free", || {
        not_simulated("nrt_sys_trace_config_free")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_get_enabled_event_types(
    options: *mut nrt_sys_trace_config_t,
    event_types: *mut *mut *const std::ffi::c_char,
    count: *mut usize,
) -> NRT_STATUS {
    let _ = (options, event_types, count);
    guard("nrt_sys_trace_config_get_enabled_event_types", || {
        not_simulated("nrt_sys_trace_config_get_enabled_event_types")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_capture_enabled_for_event_type(
    options: *mut nrt_sys_trace_config_t,
    event_type: *const std::ffi::c_char,
    enabled: bool,
) -> NRT_STATUS {
    let _ = (options, event_type, enabled);
    guard(
        "nrt_sys_trace_config_set_capture_enabled_for_event_type",
        || not_simulated("nrt_sys_trace_config_set_capture_enabled_for_event_type"),
    )
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_capture_enabled_for_nc(
    options: *mut nrt_sys_trace_config_t,
    nc_idx: u32,
    enabled: bool,
) {
    let _ = (options, nc_idx, enabled);
    let _ = guard("nrt_sys_trace_config_set_capture_enabled_for_nc", || {
        not_simulated("nrt_sys_trace_config_set_capture_enabled_for_nc")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_defaults(options: *mut nrt_sys_trace_config_t) {
    let _ = (options,);
    let _ = guard("nrt_sys_trace_config_set_defaults", || {
        not_simulated("nrt_sys_trace_config_set_defaults")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_max_events_per_nc(
    options: *mut nrt_sys_trace_config_t,
    max_events_per_nc: u64,
) {
    let _ = (options, max_events_per_nc);
    let _ = guard("nrt_sys_trace_config_set_max_events_per_nc", || {
        not_simulated("nrt_sys_trace_config_set_max_events_per_nc")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_events(
    buffer: *mut *mut std::ffi::c_char,
    written_size: *mut usize,
    options: *const nrt_sys_trace_fetch_options_t,
) -> NRT_STATUS {
    let _ = (buffer, written_size, options);
    guard("nrt_sys_trace_fetch_events", || {
        not_simulated("nrt_sys_trace_fetch_events")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_allocate(
    options: *mut *mut nrt_sys_trace_fetch_options_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_sys_trace_fetch_options_allocate", || {
        not_simulated("nrt_sys_trace_fetch_options_allocate")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_free(
    options: *mut nrt_sys_trace_fetch_options_t,
) {
    let _ = (options,);
    let _ = guard("nrt_sys_trace_fetch_options_free", || {
        not_simulated("nrt_sys_trace_fetch_options_free")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_defaults(
    options: *mut nrt_sys_trace_fetch_options_t,
) {
    let _ = (options,);
    let _ = guard("nrt_sys_trace_fetch_options_set_defaults", || {
        not_simulated("nrt_sys_trace_fetch_options_set_defaults")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_max_events_per_nc(
    options: *mut nrt_sys_trace_fetch_options_t,
    max_events_per_nc: u64,
) {
    let _ = (options, max_events_per_nc);
    let _ = guard("nrt_sys_trace_fetch_options_set_max_events_per_nc", || {
        not_simulated("nrt_sys_trace_fetch_options_set_max_events_per_nc")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_nc_idx(
    options: *mut nrt_sys_trace_fetch_options_t,
    nc_idx: u64,
) {
    let _ = (options, nc_idx);
    let _ = guard("nrt_sys_trace_fetch_options_set_nc_idx", || {
        not_simulated("nrt_sys_trace_fetch_options_set_nc_idx")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_free_event_types(
    event_types: *mut *const std::ffi::c_char,
    count: usize,
) {
    let _ = (event_types, count);
    let _ = guard("nrt_sys_trace_free_event_types", || {
        not_simulated("nrt_sys_trace_free_event_types")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_get_event_types(
    event_types: *mut *mut *const std::ffi::c_char,
    count: *mut usize,
) -> NRT_STATUS {
    let _ = (event_types, count);
    guard("nrt_sys_trace_get_event_types", || {
        not_simulated("nrt_sys_trace_get_event_types")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_start(options: *mut nrt_sys_trace_config_t) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_sys_trace_start", || {
        not_simulated("nrt_sys_trace_start")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_stop() -> NRT_STATUS {
    guard("nrt_sys_trace_stop", || not_simulated("nrt_sys_trace_stop"))
}
