//! Continuous device profiling (`nrt_profile_continuous_*`): every execution's device
//! profile kept (the latest per core), saved on demand as a capture file
//! (README.md, "Profiling captures"). Statuses: see `inspect.rs`.

use super::args::{dir_arg, guard, put};
use crate::error::fail;
use crate::opaque::Registry;
use crate::profile::{self, DEFAULT_OUTPUT_DIR};
use nrt_sys::*;
use std::ffi::c_char;
use std::path::PathBuf;

static CONTINUOUS: Registry<PathBuf> = Registry::new(0x50, "continuous profiling options");

/// Allocates continuous profiling options (output directory `./output`).
///
/// # Safety
///
/// `options` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_allocate(
    options: *mut *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    guard("nrt_profile_continuous_options_allocate", || {
        if options.is_null() {
            return fail(NRT_INVALID, "options is NULL");
        }
        let token = CONTINUOUS.insert(PathBuf::from(DEFAULT_OUTPUT_DIR))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(options, "options", token) }
    })
}

/// Frees continuous profiling options.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_free(
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    guard("nrt_profile_continuous_options_free", || {
        CONTINUOUS.remove(options, "options").map(drop)
    })
}

/// Sets where saved profiles go.
///
/// # Safety
///
/// `output_dir` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_options_set_output_dir(
    options: *mut nrt_profile_continuous_options_t,
    output_dir: *const c_char,
) -> NRT_STATUS {
    guard("nrt_profile_continuous_options_set_output_dir", || {
        // SAFETY: forwarded from the caller.
        let dir = unsafe { dir_arg(output_dir) }?;
        CONTINUOUS.with(options, "options", |d| {
            *d = dir;
            Ok(())
        })
    })
}

/// Starts continuous profiling: every execution's device profile is kept (the latest
/// per core) until saved. `options` may be NULL.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_start(
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    guard("nrt_profile_continuous_start", || {
        if !options.is_null() {
            CONTINUOUS.with(options, "options", |_| Ok(()))?;
        }
        if profile::inspect()
            .as_ref()
            .is_some_and(|r| r.all || r.on_fail)
        {
            return fail(
                NRT_FAILURE,
                "an inspect session captures device profiles; continuous profiling does not start",
            );
        }
        if !profile::set_continuous(true) {
            return fail(NRT_INVALID, "continuous profiling is already running");
        }
        Ok(())
    })
}

/// Writes the device profile of the latest execution on core `vnc` to
/// `<output_dir>/nrt_sim_continuous_nc<vnc>_<pid>_<n>.json` (`options` NULL: `./output`).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_save(
    vnc: u32,
    options: *mut nrt_profile_continuous_options_t,
) -> NRT_STATUS {
    guard("nrt_profile_continuous_save", || {
        let dir = if options.is_null() {
            PathBuf::from(DEFAULT_OUTPUT_DIR)
        } else {
            CONTINUOUS.with(options, "options", |d| Ok(d.clone()))?
        };
        let exec = match profile::continuous().as_ref() {
            None => return fail(NRT_INVALID, "continuous profiling is not running"),
            Some(last) => match last.get(&vnc) {
                Some(e) => e.clone(),
                None => {
                    return fail(
                        NRT_INVALID,
                        format!("core {vnc} ran no execution since continuous profiling started"),
                    );
                }
            },
        };
        let text = profile::capture_text("continuous", 0, &["device_profile"], None, &[exec]);
        match profile::write_capture(&dir, &format!("nrt_sim_continuous_nc{vnc}"), &text) {
            Ok(_) => Ok(()),
            Err(e) => fail(
                NRT_FAILURE,
                format!("cannot write the profile into {}: {e}", dir.display()),
            ),
        }
    })
}

/// Stops continuous profiling (nothing is saved).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_continuous_stop() -> NRT_STATUS {
    guard("nrt_profile_continuous_stop", || {
        if !profile::set_continuous(false) {
            return fail(NRT_INVALID, "continuous profiling is not running");
        }
        Ok(())
    })
}
