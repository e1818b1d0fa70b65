//! Runtime lifecycle and queries: `nrt_init`, `nrt_close`, `nrt_get_version`, core
//! counts, instance information and memory statistics.

use std::ffi::CStr;

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::Result;

/// `nrt_init`.
///
/// # Safety
///
/// No runtime may be live on `lib` (libnrt allows one `nrt_init` per process until
/// `nrt_close`), and no other thread may call `nrt_init` or `nrt_close` on it meanwhile.
pub(crate) unsafe fn init(
    lib: &Library,
    framework: sys::nrt_framework_type_t,
    fw_version: &CStr,
    fal_version: &CStr,
) -> Result<()> {
    let f = entry!(lib, nrt_init);
    // SAFETY: both strings are NUL-terminated and outlive the call; the caller
    // guarantees this is not a second init.
    let raw = unsafe { f(framework, fw_version.as_ptr(), fal_version.as_ptr()) };
    check(lib, "nrt_init", raw)
}

/// `nrt_close`.
///
/// # Safety
///
/// The runtime was initialised by [`init`], and no handle of it (model, tensor, set,
/// queued request) is used or freed after this call.
pub(crate) unsafe fn close(lib: &Library) -> Result<()> {
    let f = entry!(lib, nrt_close);
    // SAFETY: the caller guarantees nothing uses the runtime afterwards.
    unsafe { f() };
    Ok(())
}

/// `nrt_get_version`: the library's version record.
pub(crate) fn get_version(lib: &Library) -> Result<sys::nrt_version_t> {
    let f = entry!(lib, nrt_get_version);
    let mut v = sys::nrt_version_t::default();
    // SAFETY: `v` is a valid, writable nrt_version_t of the size passed.
    let raw = unsafe { f(&mut v, size_of::<sys::nrt_version_t>()) };
    check(lib, "nrt_get_version", raw)?;
    Ok(v)
}

/// `nrt_get_instance_info`.
pub(crate) fn get_instance_info(lib: &Library) -> Result<sys::nrt_instance_info_t> {
    let f = entry!(lib, nrt_get_instance_info);
    let mut info = sys::nrt_instance_info_t::default();
    // SAFETY: `info` is a valid, writable nrt_instance_info_t of the size passed.
    let raw = unsafe { f(&mut info, size_of::<sys::nrt_instance_info_t>()) };
    check(lib, "nrt_get_instance_info", raw)?;
    Ok(info)
}

/// `nrt_get_total_vnc_count`, or the older `nrt_get_total_nc_count`.
pub(crate) fn get_total_vnc_count(lib: &Library) -> Result<u32> {
    match lib.fns().nrt_get_total_vnc_count {
        Some(f) => count(lib, "nrt_get_total_vnc_count", f),
        None => count(
            lib,
            "nrt_get_total_nc_count",
            entry!(lib, nrt_get_total_nc_count),
        ),
    }
}

/// `nrt_get_visible_vnc_count`, or the older `nrt_get_visible_nc_count`.
pub(crate) fn get_visible_vnc_count(lib: &Library) -> Result<u32> {
    match lib.fns().nrt_get_visible_vnc_count {
        Some(f) => count(lib, "nrt_get_visible_vnc_count", f),
        None => count(
            lib,
            "nrt_get_visible_nc_count",
            entry!(lib, nrt_get_visible_nc_count),
        ),
    }
}

type CountFn = unsafe extern "C" fn(*mut u32) -> sys::NRT_STATUS;

fn count(lib: &Library, function: &'static str, f: CountFn) -> Result<u32> {
    let mut n = 0u32;
    // SAFETY: `n` is a valid, writable u32.
    let raw = unsafe { f(&mut n) };
    check(lib, function, raw)?;
    Ok(n)
}

/// `nrt_get_vnc_memory_stats` for `core`: the statistics and the number of bytes the
/// library wrote.
pub(crate) fn get_vnc_memory_stats(
    lib: &Library,
    core: u32,
) -> Result<(sys::nrt_vnc_memory_stats_t, usize)> {
    let f = entry!(lib, nrt_get_vnc_memory_stats);
    let mut stats = sys::nrt_vnc_memory_stats_t::default();
    let mut written = 0usize;
    let size = size_of::<sys::nrt_vnc_memory_stats_t>();
    // SAFETY: `stats` is valid and writable for `size` bytes; `written` is a valid usize.
    let raw = unsafe { f(core, &mut stats, size, &mut written) };
    check(lib, "nrt_get_vnc_memory_stats", raw)?;
    Ok((stats, written))
}

/// The address of the library's `nrt_init`: identifies one loaded libnrt even when it
/// was opened under two names. [`Error::Unsupported`](crate::Error::Unsupported) if it
/// has none.
pub(crate) fn init_key(lib: &Library) -> Result<usize> {
    Ok(entry!(lib, nrt_init) as usize)
}

/// [`Error::Unsupported`](crate::Error::Unsupported) unless the library has `nrt_close`:
/// checked before `nrt_init`, so that a started runtime can always be closed.
pub(crate) fn can_close(lib: &Library) -> Result<()> {
    entry!(lib, nrt_close);
    Ok(())
}
