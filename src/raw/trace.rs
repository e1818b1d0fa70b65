//! System trace: `nrt_sys_trace_*` (options, start/stop, event type lists, fetch).

use std::ffi::{CStr, CString, c_char};
use std::ptr::{self, NonNull};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::{Error, Result};

/// What a capture records (see [`crate::SysTraceConfig`]).
pub(crate) struct Capture<'a> {
    pub(crate) max_events_per_nc: Option<u64>,
    pub(crate) disabled_cores: &'a [u32],
    pub(crate) disabled_types: &'a [CString],
}

/// Every entry a trace needs from start to stop, checked before anything starts.
pub(crate) fn can_trace(lib: &Library) -> Result<()> {
    entry!(lib, nrt_sys_trace_config_allocate);
    entry!(lib, nrt_sys_trace_config_free);
    entry!(lib, nrt_sys_trace_start);
    entry!(lib, nrt_sys_trace_stop);
    entry!(lib, nrt_sys_trace_fetch_events);
    entry!(lib, nrt_sys_trace_buffer_free);
    Ok(())
}

/// `nrt_sys_trace_config_*` then `nrt_sys_trace_start`: starts recording.
pub(crate) fn start(lib: &Library, capture: &Capture<'_>) -> Result<()> {
    let allocate = entry!(lib, nrt_sys_trace_config_allocate);
    let free = entry!(lib, nrt_sys_trace_config_free);
    let mut cfg = ptr::null_mut();
    // SAFETY: `cfg` is a valid out-pointer.
    check(lib, "nrt_sys_trace_config_allocate", unsafe {
        allocate(&mut cfg)
    })?;
    let Some(cfg) = NonNull::new(cfg) else {
        return Err(Error::UnexpectedResult {
            function: "nrt_sys_trace_config_allocate",
            reason: "returned success and a NULL config".into(),
        });
    };
    let result = configure_and_start(lib, cfg.as_ptr(), capture);
    // SAFETY: `cfg` was allocated above and is freed once; libnrt copied what it needs
    // at start (the options are an input of nrt_sys_trace_start only).
    unsafe { free(cfg.as_ptr()) };
    result
}

fn configure_and_start(
    lib: &Library,
    cfg: *mut sys::nrt_sys_trace_config_t,
    capture: &Capture<'_>,
) -> Result<()> {
    // Every call below gets `cfg`, a live config of `lib`, and plain values or strings
    // that are NUL-terminated and outlive the call.
    if let Some(f) = lib.fns().nrt_sys_trace_config_set_defaults {
        // SAFETY: see above.
        unsafe { f(cfg) };
    }
    if let Some(n) = capture.max_events_per_nc {
        let f = entry!(lib, nrt_sys_trace_config_set_max_events_per_nc);
        // SAFETY: see above.
        unsafe { f(cfg, n) };
    }
    if !capture.disabled_cores.is_empty() {
        let f = entry!(lib, nrt_sys_trace_config_set_capture_enabled_for_nc);
        for &core in capture.disabled_cores {
            // SAFETY: see above.
            unsafe { f(cfg, core, false) };
        }
    }
    if !capture.disabled_types.is_empty() {
        let f = entry!(lib, nrt_sys_trace_config_set_capture_enabled_for_event_type);
        for ty in capture.disabled_types {
            // SAFETY: see above.
            let status = unsafe { f(cfg, ty.as_ptr(), false) };
            check(
                lib,
                "nrt_sys_trace_config_set_capture_enabled_for_event_type",
                status,
            )
            .map_err(|e| e.context(format!("event type `{}`", ty.to_string_lossy())))?;
        }
    }
    let start = entry!(lib, nrt_sys_trace_start);
    // SAFETY: see above.
    check(lib, "nrt_sys_trace_start", unsafe { start(cfg) })
}

/// `nrt_sys_trace_stop`.
pub(crate) fn stop(lib: &Library) -> Result<()> {
    let f = entry!(lib, nrt_sys_trace_stop);
    // SAFETY: no arguments.
    check(lib, "nrt_sys_trace_stop", unsafe { f() })
}

/// `nrt_sys_trace_fetch_events` (with fetch options when a core or a limit is given):
/// the JSON text, copied; the library's buffer is freed.
pub(crate) fn fetch(lib: &Library, core: Option<u32>, max_per_core: Option<u64>) -> Result<String> {
    let fetch = entry!(lib, nrt_sys_trace_fetch_events);
    let free_buffer = entry!(lib, nrt_sys_trace_buffer_free);
    let mut options = ptr::null_mut();
    let free_options = if core.is_some() || max_per_core.is_some() {
        let allocate = entry!(lib, nrt_sys_trace_fetch_options_allocate);
        let free = entry!(lib, nrt_sys_trace_fetch_options_free);
        // SAFETY: valid out-pointer.
        check(lib, "nrt_sys_trace_fetch_options_allocate", unsafe {
            allocate(&mut options)
        })?;
        if let (Some(c), Some(f)) = (core, lib.fns().nrt_sys_trace_fetch_options_set_nc_idx) {
            // SAFETY: `options` is live; a plain value.
            unsafe { f(options, c.into()) };
        }
        if let (Some(n), Some(f)) = (
            max_per_core,
            lib.fns().nrt_sys_trace_fetch_options_set_max_events_per_nc,
        ) {
            // SAFETY: `options` is live; a plain value.
            unsafe { f(options, n) };
        }
        Some(free)
    } else {
        None
    };
    let mut buffer: *mut c_char = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: valid out-pointers; `options` is NULL or live.
    let status = unsafe { fetch(&mut buffer, &mut len, options) };
    if let Some(free) = free_options {
        // SAFETY: allocated above, freed once.
        unsafe { free(options) };
    }
    check(lib, "nrt_sys_trace_fetch_events", status)?;
    if buffer.is_null() {
        return Err(Error::UnexpectedResult {
            function: "nrt_sys_trace_fetch_events",
            reason: "returned success and a NULL buffer".into(),
        });
    }
    // SAFETY: on success the buffer is a NUL-terminated text owned by us until freed
    // with nrt_sys_trace_buffer_free, which happens right after the copy.
    let text = unsafe { CStr::from_ptr(buffer) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: returned by nrt_sys_trace_fetch_events, freed once.
    unsafe { free_buffer(buffer) };
    Ok(text)
}

/// Copies and frees a list of strings libnrt allocated (`count` entries at `list`).
///
/// # Safety
///
/// `list` is NULL or an array of `count` NUL-terminated strings that `free` releases.
pub(crate) unsafe fn take_strings(
    list: *mut *const c_char,
    count: usize,
    free: unsafe extern "C" fn(*mut *const c_char, usize),
) -> Vec<String> {
    if list.is_null() {
        return Vec::new();
    }
    let names = (0..count)
        // SAFETY: `count` entries, each NUL-terminated (caller).
        .map(|i| {
            unsafe { CStr::from_ptr(*list.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: the list came from libnrt with `count` entries; freed once (caller).
    unsafe { free(list, count) };
    names
}

/// `nrt_sys_trace_get_event_types`: every event type name.
pub(crate) fn event_types(lib: &Library) -> Result<Vec<String>> {
    let get = entry!(lib, nrt_sys_trace_get_event_types);
    let free = entry!(lib, nrt_sys_trace_free_event_types);
    let (mut list, mut count) = (ptr::null_mut(), 0usize);
    // SAFETY: valid out-pointers.
    check(lib, "nrt_sys_trace_get_event_types", unsafe {
        get(&mut list, &mut count)
    })?;
    // SAFETY: on success `list` holds `count` strings that the free function releases.
    Ok(unsafe { take_strings(list, count, free) })
}
