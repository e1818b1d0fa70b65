//! The debug stream (`nrt_debug_client_*`; behaviour in `crate::debug` and README.md,
//! "Debug stream").

use super::args::{guard, put};
use crate::error::fail;
use crate::runtime::{visible_cores, with_open};
use nrt_sys::*;
use std::ffi::{c_int, c_void};

/// Connects the one client of core `logical_nc_idx`; `*stream_fd` polls readable while
/// an event waits. A second client of the same core -> `NRT_INVALID` (as documented);
/// a core that is not visible -> `NRT_INVALID`.
///
/// # Safety
///
/// `stream_fd` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_connect(
    logical_nc_idx: c_int,
    stream_fd: *mut c_int,
) -> NRT_STATUS {
    guard("nrt_debug_client_connect", || {
        with_open(|_| Ok(()))?;
        if stream_fd.is_null() {
            return fail(NRT_INVALID, "stream_fd is NULL");
        }
        let cores = visible_cores()?;
        let core = u32::try_from(logical_nc_idx)
            .ok()
            .filter(|&c| c < cores)
            .ok_or_else(|| crate::error::Fail {
                status: NRT_INVALID,
                message: format!("core {logical_nc_idx} is not one of the {cores} visible cores"),
                level: crate::log::Level::Error,
            })?;
        let fd = crate::debug::connect(core)?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(stream_fd, "stream_fd", fd) }
    })
}

/// Disconnects and closes a stream (an unknown descriptor is logged and left alone).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_connect_close(stream_fd: c_int) {
    let _ = guard("nrt_debug_client_connect_close", || {
        crate::debug::close(stream_fd)
    });
}

/// Takes the oldest event: its header into `*header` and a `malloc`ed copy of its
/// payload into `*payload` (the caller frees it with `free`). No event waiting ->
/// `NRT_QUEUE_EMPTY` (nothing written).
///
/// # Safety
///
/// `header` and `payload` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_debug_client_read_one_event(
    stream_fd: c_int,
    header: *mut ndebug_stream_event_header_t,
    payload: *mut *mut c_void,
) -> NRT_STATUS {
    guard("nrt_debug_client_read_one_event", || {
        if header.is_null() || payload.is_null() {
            return fail(
                NRT_INVALID,
                format!("header {header:p} / payload {payload:p} is NULL"),
            );
        }
        let event = crate::debug::take(stream_fd)?;
        // SAFETY: malloc has no preconditions.
        let copy = unsafe { libc::malloc(event.payload.len().max(1)) }.cast::<u8>();
        if copy.is_null() {
            return fail(NRT_RESOURCE, "out of host memory for the event payload");
        }
        // SAFETY: `copy` holds the payload's length; both out-pointers are writable (caller).
        unsafe {
            std::ptr::copy_nonoverlapping(event.payload.as_ptr(), copy, event.payload.len());
            header.write(ndebug_stream_event_header_t {
                data_size: event.payload.len() as u64,
                type_: event.ty,
                reserved: [0; 52],
            });
            payload.write(copy.cast());
        }
        Ok(())
    })
}
