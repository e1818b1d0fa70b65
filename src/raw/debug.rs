//! The debug stream: `nrt_debug_client_connect`, `_connect_close`, `_read_one_event`.

use std::ffi::{c_int, c_void};
use std::ptr;

use nrt_sys::{self as sys, Library};

use super::{check, entry, failed};
use crate::error::Result;

/// Every entry a stream needs from connect to close.
pub(crate) fn can_stream(lib: &Library) -> Result<()> {
    entry!(lib, nrt_debug_client_connect);
    entry!(lib, nrt_debug_client_connect_close);
    entry!(lib, nrt_debug_client_read_one_event);
    Ok(())
}

/// `nrt_debug_client_connect`: the stream descriptor of core `core`.
pub(crate) fn connect(lib: &Library, core: c_int) -> Result<c_int> {
    let f = entry!(lib, nrt_debug_client_connect);
    let mut fd: c_int = -1;
    // SAFETY: valid out-pointer.
    check(lib, "nrt_debug_client_connect", unsafe { f(core, &mut fd) })?;
    Ok(fd)
}

/// `nrt_debug_client_connect_close`.
///
/// # Safety
///
/// `fd` is a descriptor [`connect`] returned, not closed yet; it is invalid afterwards.
pub(crate) unsafe fn close(lib: &Library, fd: c_int) {
    if let Some(f) = lib.fns().nrt_debug_client_connect_close {
        // SAFETY: the caller's guarantee.
        unsafe { f(fd) };
    }
}

/// `nrt_debug_client_read_one_event`: the event's type and payload (copied; the
/// library's copy freed), or `None` when none waits (`NRT_QUEUE_EMPTY`).
///
/// # Safety
///
/// `fd` is a live descriptor [`connect`] returned, used by no other thread meanwhile
/// (the API is not thread-safe per stream).
pub(crate) unsafe fn read_one(lib: &Library, fd: c_int) -> Result<Option<(u32, Vec<u8>)>> {
    let f = entry!(lib, nrt_debug_client_read_one_event);
    let mut header = sys::ndebug_stream_event_header_t::default();
    let mut payload: *mut c_void = ptr::null_mut();
    // SAFETY: valid out-pointers; the caller's guarantee for `fd`.
    let status = unsafe { f(fd, &mut header, &mut payload) };
    if status == sys::NRT_QUEUE_EMPTY {
        return Ok(None);
    }
    if status != sys::NRT_SUCCESS {
        return Err(failed(lib, "nrt_debug_client_read_one_event", status));
    }
    let bytes = if payload.is_null() {
        Vec::new()
    } else {
        // SAFETY: on success the payload holds `data_size` bytes, allocated for the
        // caller to free with free() (documented), which happens right after the copy.
        let v = unsafe {
            std::slice::from_raw_parts(payload.cast::<u8>(), header.data_size as usize).to_vec()
        };
        // SAFETY: see above.
        unsafe { libc::free(payload) };
        v
    };
    Ok(Some((header.type_, bytes)))
}
