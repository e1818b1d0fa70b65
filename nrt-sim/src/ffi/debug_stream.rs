//! Stubs (replaced family by family).

use super::args::{guard, not_simulated};
use nrt_sys::*;

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_connect(
    logical_nc_idx: std::ffi::c_int,
    stream_fd: *mut std::ffi::c_int,
) -> NRT_STATUS {
    let _ = (logical_nc_idx, stream_fd);
    guard("nrt_debug_client_connect", || {
        not_simulated("nrt_debug_client_connect")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_connect_close(stream_fd: std::ffi::c_int) {
    let _ = (stream_fd,);
    let _ = guard("nrt_debug_client_connect_close", || {
        not_simulated("nrt_debug_client_connect_close")
    });
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_read_one_event(
    stream_fd: std::ffi::c_int,
    header: *mut ndebug_stream_event_header_t,
    payload: *mut *mut std::ffi::c_void,
) -> NRT_STATUS {
    let _ = (stream_fd, header, payload);
    guard("nrt_debug_client_read_one_event", || {
        not_simulated("nrt_debug_client_read_one_event")
    })
}
