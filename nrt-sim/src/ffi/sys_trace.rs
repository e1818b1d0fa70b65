//! The system trace (`nrt_sys_trace_*`): capture options, start/stop, event type
//! lists, and fetching the recorded events as JSON (see `crate::trace` and README.md,
//! "System trace").
//!
//! Choices where the runtime does not document a status: a NULL or dead options object
//! -> `NRT_INVALID` / `NRT_INVALID_HANDLE` (void setters log it and change nothing);
//! `nrt_sys_trace_start` while a trace runs, `nrt_sys_trace_stop` or
//! `nrt_sys_trace_fetch_events` without one -> `NRT_INVALID`; an unknown event type name
//! -> `NRT_INVALID`. The trace does not need `nrt_init` and outlives `nrt_close`.

use super::args::{c_bytes, free_strings, guard, put, put_strings};
use crate::error::{Res, fail};
use crate::opaque::Registry;
use crate::trace::{self, Capture, EVENT_TYPES, Recorder};
use nrt_sys::*;
use std::ffi::c_char;

static CONFIGS: Registry<Capture> = Registry::new(0x43, "system trace config");

/// What to fetch: one core or all, and at most how many events of each (0: all).
#[derive(Clone, Copy)]
struct Fetch {
    nc_idx: Option<u32>,
    max_events_per_nc: u64,
}

const FETCH_DEFAULTS: Fetch = Fetch {
    nc_idx: None,
    max_events_per_nc: 0,
};

static FETCH: Registry<Fetch> = Registry::new(0x46, "system trace fetch options");

fn with_config(
    options: *const nrt_sys_trace_config_t,
    f: impl FnOnce(&mut Capture) -> Res<()>,
) -> Res<()> {
    CONFIGS.with(options, "options", f)
}

/// Allocates capture options with the defaults (every event type and core on,
/// 65,536 events per core).
///
/// # Safety
///
/// `options` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_allocate(
    options: *mut *mut nrt_sys_trace_config_t,
) -> NRT_STATUS {
    guard("nrt_sys_trace_config_allocate", || {
        if options.is_null() {
            return fail(NRT_INVALID, "options is NULL");
        }
        let token = CONFIGS.insert(Capture::default())?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(options, "options", token) }
    })
}

/// Resets the options to the defaults.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_defaults(options: *mut nrt_sys_trace_config_t) {
    let _ = guard("nrt_sys_trace_config_set_defaults", || {
        with_config(options, |c| {
            *c = Capture::default();
            Ok(())
        })
    });
}

/// Frees capture options.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_free(options: *mut nrt_sys_trace_config_t) {
    let _ = guard("nrt_sys_trace_config_free", || {
        CONFIGS.remove(options, "options").map(drop)
    });
}

/// Sets each core's ring buffer capacity, in events.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_max_events_per_nc(
    options: *mut nrt_sys_trace_config_t,
    max_events_per_nc: u64,
) {
    let _ = guard("nrt_sys_trace_config_set_max_events_per_nc", || {
        with_config(options, |c| {
            c.max_events_per_nc = max_events_per_nc;
            Ok(())
        })
    });
}

/// Turns capture on or off for core `nc_idx`.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_capture_enabled_for_nc(
    options: *mut nrt_sys_trace_config_t,
    nc_idx: u32,
    enabled: bool,
) {
    let _ = guard("nrt_sys_trace_config_set_capture_enabled_for_nc", || {
        with_config(options, |c| {
            if enabled {
                c.off_cores.remove(&nc_idx);
            } else {
                c.off_cores.insert(nc_idx);
            }
            Ok(())
        })
    });
}

/// Parses an event type name argument.
///
/// # Safety
///
/// A non-null `name` must be a NUL-terminated string.
pub(crate) unsafe fn event_type_arg(name: *const c_char) -> Res<&'static str> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { c_bytes(name, "event_type") }?;
    trace::event_type(bytes).ok_or_else(|| crate::error::Fail {
        status: NRT_INVALID,
        message: format!(
            "event type '{}' is not one of {}",
            String::from_utf8_lossy(bytes),
            EVENT_TYPES.join(", ")
        ),
        level: crate::log::Level::Error,
    })
}

/// Turns capture on or off for one event type (a name of
/// `nrt_sys_trace_get_event_types`; any other -> `NRT_INVALID`).
///
/// # Safety
///
/// `event_type` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_set_capture_enabled_for_event_type(
    options: *mut nrt_sys_trace_config_t,
    event_type: *const c_char,
    enabled: bool,
) -> NRT_STATUS {
    guard(
        "nrt_sys_trace_config_set_capture_enabled_for_event_type",
        || {
            // SAFETY: forwarded from the caller.
            let ty = unsafe { event_type_arg(event_type) }?;
            with_config(options, |c| {
                if enabled {
                    c.off_types.remove(ty);
                } else {
                    c.off_types.insert(ty);
                }
                Ok(())
            })
        },
    )
}

/// Every event type name, in `malloc`ed memory.
///
/// # Safety
///
/// `event_types` and `count` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_get_event_types(
    event_types: *mut *mut *const c_char,
    count: *mut usize,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_sys_trace_get_event_types", || unsafe {
        put_strings(EVENT_TYPES, event_types, count)
    })
}

/// Frees a list of [`nrt_sys_trace_get_event_types`] (or of the enabled types).
///
/// # Safety
///
/// `event_types` must be NULL or a list this library returned with `count` entries,
/// not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_free_event_types(
    event_types: *mut *const c_char,
    count: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { free_strings(event_types, count) }
}

/// The event types the options have on, in `malloc`ed memory.
///
/// # Safety
///
/// `event_types` and `count` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_config_get_enabled_event_types(
    options: *mut nrt_sys_trace_config_t,
    event_types: *mut *mut *const c_char,
    count: *mut usize,
) -> NRT_STATUS {
    guard("nrt_sys_trace_config_get_enabled_event_types", || {
        let mut enabled = Vec::new();
        with_config(options, |c| {
            enabled = c.enabled_types();
            Ok(())
        })?;
        // SAFETY: forwarded from the caller.
        unsafe { put_strings(&enabled, event_types, count) }
    })
}

/// Starts recording with a copy of `options` (later changes to them do not apply).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_start(options: *mut nrt_sys_trace_config_t) -> NRT_STATUS {
    guard("nrt_sys_trace_start", || {
        let mut capture = Capture::default();
        with_config(options, |c| {
            capture = c.clone();
            Ok(())
        })?;
        if !trace::install(false, Recorder::new(capture)) {
            return fail(
                NRT_INVALID,
                "a system trace is already running (nrt_sys_trace_stop first)",
            );
        }
        Ok(())
    })
}

/// Stops recording and frees the ring buffers (events not fetched are lost).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_stop() -> NRT_STATUS {
    guard("nrt_sys_trace_stop", || match trace::remove(false) {
        Some(_) => Ok(()),
        None => fail(NRT_INVALID, "no system trace is running"),
    })
}

/// Allocates fetch options with the defaults (every core, every event).
///
/// # Safety
///
/// `options` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_allocate(
    options: *mut *mut nrt_sys_trace_fetch_options_t,
) -> NRT_STATUS {
    guard("nrt_sys_trace_fetch_options_allocate", || {
        if options.is_null() {
            return fail(NRT_INVALID, "options is NULL");
        }
        let token = FETCH.insert(FETCH_DEFAULTS)?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(options, "options", token) }
    })
}

/// Resets fetch options to the defaults.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_defaults(
    options: *mut nrt_sys_trace_fetch_options_t,
) {
    let _ = guard("nrt_sys_trace_fetch_options_set_defaults", || {
        FETCH.with(options, "options", |f| {
            *f = FETCH_DEFAULTS;
            Ok(())
        })
    });
}

/// Frees fetch options.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_free(
    options: *mut nrt_sys_trace_fetch_options_t,
) {
    let _ = guard("nrt_sys_trace_fetch_options_free", || {
        FETCH.remove(options, "options").map(drop)
    });
}

/// Fetches at most `max_events_per_nc` events of each core (0: all).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_max_events_per_nc(
    options: *mut nrt_sys_trace_fetch_options_t,
    max_events_per_nc: u64,
) {
    let _ = guard("nrt_sys_trace_fetch_options_set_max_events_per_nc", || {
        FETCH.with(options, "options", |f| {
            f.max_events_per_nc = max_events_per_nc;
            Ok(())
        })
    });
}

/// Fetches core `nc_idx`'s events only (a value past `u32::MAX` is logged and ignored).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_options_set_nc_idx(
    options: *mut nrt_sys_trace_fetch_options_t,
    nc_idx: u64,
) {
    let _ = guard("nrt_sys_trace_fetch_options_set_nc_idx", || {
        let core = u32::try_from(nc_idx)
            .or_else(|_| fail(NRT_INVALID, format!("nc_idx {nc_idx} is not a core index")))?;
        FETCH.with(options, "options", |f| {
            f.nc_idx = Some(core);
            Ok(())
        })
    });
}

/// Takes the recorded events out of the ring buffers and returns them as one
/// NUL-terminated JSON text in `malloc`ed memory (`*written_size`: its length without
/// the NUL). `options` NULL: every event of every core.
///
/// # Safety
///
/// `buffer` and `written_size` must be NULL or valid for writes; `options` is checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_fetch_events(
    buffer: *mut *mut c_char,
    written_size: *mut usize,
    options: *const nrt_sys_trace_fetch_options_t,
) -> NRT_STATUS {
    guard("nrt_sys_trace_fetch_events", || {
        if buffer.is_null() || written_size.is_null() {
            return fail(
                NRT_INVALID,
                format!("buffer {buffer:p} / written_size {written_size:p} is NULL"),
            );
        }
        let fetch = if options.is_null() {
            FETCH_DEFAULTS
        } else {
            FETCH.with(options, "options", |f| Ok(*f))?
        };
        let (events, dropped) = match trace::sys_trace().as_mut() {
            Some(r) => (r.take(fetch.nc_idx, fetch.max_events_per_nc), r.dropped),
            None => return fail(NRT_INVALID, "no system trace is running"),
        };
        let text = trace::document(&events, dropped);
        // SAFETY: malloc has no preconditions.
        let out = unsafe { libc::malloc(text.len() + 1) }.cast::<u8>();
        if out.is_null() {
            return fail(NRT_RESOURCE, "out of host memory for the trace text");
        }
        // SAFETY: `out` holds text.len() + 1 bytes; both pointers are writable (caller).
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), out, text.len());
            *out.add(text.len()) = 0;
            *buffer = out.cast();
            *written_size = text.len();
        }
        Ok(())
    })
}

/// Frees a text of [`nrt_sys_trace_fetch_events`] (NULL: nothing).
///
/// # Safety
///
/// `buffer` must be NULL or a text this library returned, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_sys_trace_buffer_free(buffer: *mut c_char) {
    // SAFETY: the text was malloc'ed by nrt_sys_trace_fetch_events (caller).
    unsafe { libc::free(buffer.cast()) }
}
