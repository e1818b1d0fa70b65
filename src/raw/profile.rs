//! Profiling: `nrt_profile_start`, `nrt_profile_stop`.

use std::ffi::CStr;

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::Result;

/// [`Error::Unsupported`](crate::Error::Unsupported) unless the library has
/// `nrt_profile_stop`: checked before starting, so that every profile can be stopped.
pub(crate) fn can_stop(lib: &Library) -> Result<()> {
    entry!(lib, nrt_profile_stop);
    Ok(())
}

/// `nrt_profile_start`: profiles `model`'s executions into the file `path`.
///
/// # Safety
///
/// `model` is a loaded model of `lib`'s runtime that stays loaded, and `path` stays
/// alive, until [`stop`] (libnrt may keep the pointer meanwhile).
pub(crate) unsafe fn start(lib: &Library, model: *mut sys::nrt_model_t, path: &CStr) -> Result<()> {
    let f = entry!(lib, nrt_profile_start);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(model, path.as_ptr()) };
    check(lib, "nrt_profile_start", status)
}

/// `nrt_profile_stop`: ends the profile started for `path` and writes it.
///
/// # Safety
///
/// `path` is the path a [`start`] on `lib`'s open runtime was given.
pub(crate) unsafe fn stop(lib: &Library, path: &CStr) -> Result<()> {
    let f = entry!(lib, nrt_profile_stop);
    // SAFETY: the caller's guarantees; `path` is NUL-terminated and outlives the call.
    let status = unsafe { f(path.as_ptr()) };
    check(lib, "nrt_profile_stop", status)
}
