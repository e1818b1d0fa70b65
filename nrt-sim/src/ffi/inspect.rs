//! Stubs (replaced family by family).

use super::args::{guard, not_simulated};
use nrt_sys::*;

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_begin() -> NRT_STATUS {
    guard("nrt_inspect_begin", || not_simulated("nrt_inspect_begin"))
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_begin_with_options(
    options: *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_inspect_begin_with_options", || {
        not_simulated("nrt_inspect_begin_with_options")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_allocate(
    options: *mut *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_inspect_config_allocate", || {
        not_simulated("nrt_inspect_config_allocate")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_free(options: *mut nrt_inspect_config_t) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_inspect_config_free", || {
        not_simulated("nrt_inspect_config_free")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_free_activity_types(
    activity_types: *mut *const std::ffi::c_char,
    count: usize,
) {
    let _ = (activity_types, count);
    let _ = guard("nrt_inspect_config_free_activity_types", || {
        not_simulated("nrt_inspect_config_free_activity_types")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_get_all_activity_types(
    activity_types: *mut *mut *const std::ffi::c_char,
    count: *mut usize,
) -> NRT_STATUS {
    let _ = (activity_types, count);
    guard("nrt_inspect_config_get_all_activity_types", || {
        not_simulated("nrt_inspect_config_get_all_activity_types")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_get_enabled_activity_types(
    options: *mut nrt_inspect_config_t,
    activity_types: *mut *mut *const std::ffi::c_char,
    count: *mut usize,
) -> NRT_STATUS {
    let _ = (options, activity_types, count);
    guard("nrt_inspect_config_get_enabled_activity_types", || {
        not_simulated("nrt_inspect_config_get_enabled_activity_types")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_activity(
    options: *mut nrt_inspect_config_t,
    activity_type: *const std::ffi::c_char,
    enabled: bool,
) -> NRT_STATUS {
    let _ = (options, activity_type, enabled);
    guard("nrt_inspect_config_set_activity", || {
        not_simulated("nrt_inspect_config_set_activity")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_capture_enabled_for_event_type_string(
    options: *mut nrt_inspect_config_t,
    event_type: *const std::ffi::c_char,
    enabled: bool,
) -> NRT_STATUS {
    let _ = (options, event_type, enabled);
    guard(
        "nrt_inspect_config_set_capture_enabled_for_event_type_string",
        || not_simulated("nrt_inspect_config_set_capture_enabled_for_event_type_string"),
    )
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_capture_enabled_for_nc(
    options: *mut nrt_inspect_config_t,
    nc_idx: u32,
    enabled: bool,
) -> NRT_STATUS {
    let _ = (options, nc_idx, enabled);
    guard("nrt_inspect_config_set_capture_enabled_for_nc", || {
        not_simulated("nrt_inspect_config_set_capture_enabled_for_nc")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_defaults(
    options: *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_inspect_config_set_defaults", || {
        not_simulated("nrt_inspect_config_set_defaults")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_enable_inspect(
    options: *mut nrt_inspect_config_t,
    enable_inspect: bool,
) -> NRT_STATUS {
    let _ = (options, enable_inspect);
    guard("nrt_inspect_config_set_enable_inspect", || {
        not_simulated("nrt_inspect_config_set_enable_inspect")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_enable_inspect_on_fail(
    options: *mut nrt_inspect_config_t,
    enable_inspect_on_fail: bool,
) -> NRT_STATUS {
    let _ = (options, enable_inspect_on_fail);
    guard("nrt_inspect_config_set_enable_inspect_on_fail", || {
        not_simulated("nrt_inspect_config_set_enable_inspect_on_fail")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_output_dir(
    options: *mut nrt_inspect_config_t,
    output_dir: *const std::ffi::c_char,
) -> NRT_STATUS {
    let _ = (options, output_dir);
    guard("nrt_inspect_config_set_output_dir", || {
        not_simulated("nrt_inspect_config_set_output_dir")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_session_id(
    options: *mut nrt_inspect_config_t,
    session_id: std::ffi::c_int,
) -> NRT_STATUS {
    let _ = (options, session_id);
    guard("nrt_inspect_config_set_session_id", || {
        not_simulated("nrt_inspect_config_set_session_id")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_sys_trace_max_events_per_nc(
    options: *mut nrt_inspect_config_t,
    sys_trace_max_events_per_nc: u64,
) -> NRT_STATUS {
    let _ = (options, sys_trace_max_events_per_nc);
    guard("nrt_inspect_config_set_sys_trace_max_events_per_nc", || {
        not_simulated("nrt_inspect_config_set_sys_trace_max_events_per_nc")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_stop() -> NRT_STATUS {
    guard("nrt_inspect_stop", || not_simulated("nrt_inspect_stop"))
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_allocate(
    options: *mut *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_profile_continuous_options_allocate", || {
        not_simulated("nrt_profile_continuous_options_allocate")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_free(
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_profile_continuous_options_free", || {
        not_simulated("nrt_profile_continuous_options_free")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_set_output_dir(
    options: *mut nrt_profile_continuous_options_t,
    output_dir: *const std::ffi::c_char,
) -> NRT_STATUS {
    let _ = (options, output_dir);
    guard("nrt_profile_continuous_options_set_output_dir", || {
        not_simulated("nrt_profile_continuous_options_set_output_dir")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_save(
    vnc: u32,
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    let _ = (vnc, options);
    guard("nrt_profile_continuous_save", || {
        not_simulated("nrt_profile_continuous_save")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_start(
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    let _ = (options,);
    guard("nrt_profile_continuous_start", || {
        not_simulated("nrt_profile_continuous_start")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_stop() -> NRT_STATUS {
    guard("nrt_profile_continuous_stop", || {
        not_simulated("nrt_profile_continuous_stop")
    })
}
