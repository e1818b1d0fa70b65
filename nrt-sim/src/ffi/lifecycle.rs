//! Lifecycle, versions, core counts and memory statistics.

use super::args::{copy_cstr, guard, put, put_prefix};
use crate::runtime::{self, total_cores, visible_cores, with_open};
use crate::status;
use nrt_sys::*;
use std::ffi::c_char;

/// Starts the simulated runtime, reading the environment (see the crate docs).
///
/// Returns `NRT_FAILURE` when already initialized (call `nrt_close` first), `NRT_INVALID`
/// for a bad framework type or environment value (the log names it).
///
/// # Safety
///
/// `fw_version` and `fal_version` are not read (may be anything).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_init(
    framework: nrt_framework_type_t,
    fw_version: *const c_char,
    fal_version: *const c_char,
) -> NRT_STATUS {
    let _ = (fw_version, fal_version);
    guard("nrt_init", || runtime::init(framework))
}

/// Closes the runtime: waits for queued async requests, then frees every model, tensor
/// and tensor set still live (counted in `live_at_last_close`). Init works again after.
///
/// # Safety
///
/// Always safe to call; declared `unsafe` like every libnrt entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_close() {
    let _ = guard("nrt_close", || {
        runtime::close();
        Ok(())
    });
}

/// Writes the emulated library version (`NRT_SIM_VERSION`, default 2.34.10.0); at most
/// `size` bytes of the struct are written.
///
/// # Safety
///
/// `ver` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_version(ver: *mut nrt_version_t, size: usize) -> NRT_STATUS {
    guard("nrt_get_version", || {
        let v = runtime::current_version()?;
        let mut out = nrt_version_t {
            rt_major: v.major,
            rt_minor: v.minor,
            rt_patch: v.patch,
            rt_maintenance: v.maintenance,
            ..Default::default()
        };
        copy_cstr(
            &mut out.rt_detail,
            &format!(
                "nrt-sim {} (simulated libnrt {v}, no hardware)",
                env!("CARGO_PKG_VERSION")
            ),
        );
        copy_cstr(
            &mut out.git_hash,
            concat!("nrt-sim-", env!("CARGO_PKG_VERSION")),
        );
        // SAFETY: `ver` is valid for `size` bytes (caller).
        unsafe { put_prefix(ver, size, "ver", &out) }.map(drop)
    })
}

/// Writes instance information: an inf2.xlarge-like machine whose arch name is `nrt-sim`.
///
/// # Safety
///
/// `info` must be valid for writes of `instance_info_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_instance_info(
    info: *mut nrt_instance_info_t,
    instance_info_len: usize,
) -> NRT_STATUS {
    guard("nrt_get_instance_info", || {
        let mut out = nrt_instance_info_t {
            family: NRT_INSTANCE_INF2,
            size: NRT_INSTANCE_SIZE_1XL,
            ..Default::default()
        };
        copy_cstr(&mut out.arch_name, "nrt-sim");
        copy_cstr(&mut out.device_revision, "sim");
        // SAFETY: `info` is valid for `instance_info_len` bytes (caller).
        unsafe { put_prefix(info, instance_info_len, "info", &out) }.map(drop)
    })
}

/// The description of a status code (a static string; never NULL).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_status_as_str(status: NRT_STATUS) -> *const c_char {
    status::description(status).as_ptr()
}

/// Number of cores of the simulated machine (`NRT_SIM_VNC_COUNT`); works before init.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_total_vnc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_total_vnc_count", || unsafe {
        put(vnc_count, "vnc_count", total_cores()?)
    })
}

/// Same as `nrt_get_total_vnc_count` (one physical core per logical core).
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_total_nc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_total_nc_count", || unsafe {
        put(vnc_count, "vnc_count", total_cores()?)
    })
}

/// Number of cores this process may use (`NEURON_RT_VISIBLE_CORES`); works before init.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_visible_vnc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_visible_vnc_count", || unsafe {
        put(vnc_count, "vnc_count", visible_cores()?)
    })
}

/// Same as `nrt_get_visible_vnc_count`.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_visible_nc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_visible_nc_count", || unsafe {
        put(vnc_count, "vnc_count", visible_cores()?)
    })
}

/// Device memory accounting of core `vnc`: bytes used by tensors and models, and the
/// capacity. At most `stats_size_in` bytes are written; `*stats_size_out` (if not NULL)
/// gets the number written.
///
/// # Safety
///
/// `stats` must be valid for writes of `stats_size_in` bytes; `stats_size_out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_vnc_memory_stats(
    vnc: u32,
    stats: *mut nrt_vnc_memory_stats_t,
    stats_size_in: usize,
    stats_size_out: *mut usize,
) -> NRT_STATUS {
    guard("nrt_get_vnc_memory_stats", || {
        let (used, limit) = with_open(|rt| rt.memory_stats(vnc))?;
        let value = nrt_vnc_memory_stats_t {
            bytes_used: used as usize,
            bytes_limit: limit as usize,
        };
        // SAFETY: `stats` is valid for `stats_size_in` bytes (caller).
        let written = unsafe { put_prefix(stats, stats_size_in, "stats", &value) }?;
        if !stats_size_out.is_null() {
            // SAFETY: non-null and writable (caller).
            unsafe { put(stats_size_out, "stats_size_out", written) }?;
        }
        Ok(())
    })
}
