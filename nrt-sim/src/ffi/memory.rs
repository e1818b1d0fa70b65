//! Device memory export and topology (`nrt.h`), output completion, and the low-level
//! calls of `nrt_experimental.h` the simulator cannot model (no device memory mapping,
//! no EFA, no network plugin, no microcode, no legacy trace): those log why and fail.

use super::args::{guard, not_simulated, put};
use crate::error::fail;
use crate::runtime::with_open;
use nrt_sys::*;
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// A dma-buf-like descriptor over `[va, va + size)` of device memory: a memfd holding a
/// copy of those bytes, taken at the call (the simulator's device memory is ordinary
/// host memory, not shareable in place). `va` is an address inside a device tensor's
/// allocation as `nrt_tensor_get_device_allocation_info` reports it; any other address,
/// or a range past the tensor -> `NRT_INVALID`. The caller closes the descriptor.
///
/// # Safety
///
/// `fd` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_dmabuf_fd(va: u64, size: u64, fd: *mut c_int) -> NRT_STATUS {
    guard("nrt_get_dmabuf_fd", || {
        if fd.is_null() {
            return fail(NRT_INVALID, "fd is NULL");
        }
        if size == 0 {
            return fail(NRT_INVALID, "size is 0");
        }
        let bytes = with_open(|rt| rt.device_bytes(va, size))?;
        // SAFETY: the name is a NUL-terminated literal.
        let raw = unsafe { libc::memfd_create(c"nrt-sim-dmabuf".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return fail(
                NRT_RESOURCE,
                format!("memfd_create: {}", std::io::Error::last_os_error()),
            );
        }
        use std::io::{Seek, Write};
        use std::os::fd::FromRawFd;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(raw) };
        if let Err(e) = file.write_all(&bytes).and_then(|_| file.rewind()) {
            return fail(NRT_RESOURCE, format!("filling the memfd: {e}"));
        }
        use std::os::fd::IntoRawFd;
        // SAFETY: non-null and writable (caller).
        unsafe { put(fd, "fd", file.into_raw_fd()) }
    })
}

/// Not simulated: the simulator's device memory cannot be mapped -> `NRT_INVALID` (what
/// the runtime documents when the interface is not supported).
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_hbm_mmap_va(
    device_id: c_int,
    hbm_idx: c_int,
    addr: *mut *mut c_void,
    size: *mut usize,
) -> NRT_STATUS {
    let _ = (addr, size);
    guard("nrt_get_hbm_mmap_va", || {
        fail(
            NRT_INVALID,
            format!(
                "device {device_id} HBM {hbm_idx}: mapping device memory is not supported by nrt-sim"
            ),
        )
    })
}

/// Not simulated (no EFA adapter): `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_attached_efa_bdf(
    va: *const c_void,
    efa_bdf: *mut c_char,
    len: *mut usize,
) -> NRT_STATUS {
    let _ = (va, efa_bdf, len);
    guard("nrt_get_attached_efa_bdf", || {
        not_simulated("an EFA adapter")
    })
}

/// The simulated machine is one Neuron device, 0, whose host id is 0; another device
/// -> `NRT_INVALID`.
///
/// # Safety
///
/// `host_device_id` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_host_device_id_get(
    neuron_dev: c_int,
    host_device_id: *mut u32,
) -> NRT_STATUS {
    guard("nrt_host_device_id_get", || {
        with_open(|_| Ok(()))?;
        if neuron_dev != 0 {
            return fail(
                NRT_INVALID,
                format!("device {neuron_dev}: the simulated machine has device 0 only"),
            );
        }
        // SAFETY: checked for NULL; writable (caller).
        unsafe { put(host_device_id, "host_device_id", 0) }
    })
}

/// Routing ids by host device id: one entry (device 0 -> routing id 0). `*count` is the
/// room on entry (0 -> `NRT_INVALID`) and 1 on return.
///
/// # Safety
///
/// `count` must be NULL or valid for reads and writes; `host_did_to_rid_map` valid for
/// writes of `*count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_host_device_id_rid_map_get(
    count: *mut u32,
    host_did_to_rid_map: *mut u32,
) -> NRT_STATUS {
    guard("nrt_host_device_id_rid_map_get", || {
        with_open(|_| Ok(()))?;
        if count.is_null() || host_did_to_rid_map.is_null() {
            return fail(
                NRT_INVALID,
                format!("count {count:p} / map {host_did_to_rid_map:p} is NULL"),
            );
        }
        // SAFETY: non-null; readable (caller).
        let room = unsafe { count.read() };
        if room < 1 {
            return fail(
                NRT_INVALID,
                "the map has room for 0 entries; the machine has 1 device",
            );
        }
        // SAFETY: non-null; writable for `room >= 1` entries and `count` writable (caller).
        unsafe {
            host_did_to_rid_map.write(0);
            count.write(1);
        }
        Ok(())
    })
}

/// Waits until executions wrote `output_tensor` as an output `expected_completion_count`
/// times since its last reset: `timeout` in microseconds, negative = no limit; not
/// reached in time -> `NRT_TIMEOUT`.
///
/// # Safety
///
/// The handle is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_check_output_completion(
    output_tensor: *const nrt_tensor_t,
    timeout: i64,
    expected_completion_count: u64,
) -> NRT_STATUS {
    guard("nrt_tensor_check_output_completion", || {
        let id = with_open(|rt| rt.sync_tensor(output_tensor))?.tensor.id;
        let limit = u64::try_from(timeout).ok().map(Duration::from_micros);
        let reached = crate::completion::wait(id, expected_completion_count, limit);
        if reached < expected_completion_count {
            return fail(
                NRT_TIMEOUT,
                format!("{reached} of {expected_completion_count} completions after {timeout} us"),
            );
        }
        Ok(())
    })
}

/// Sets the tensor's completion count to 0.
///
/// # Safety
///
/// The handle is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_reset_output_completion(
    output_tensor: *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_reset_output_completion", || {
        let id = with_open(|rt| rt.sync_tensor(output_tensor))?.tensor.id;
        crate::completion::reset(id);
        Ok(())
    })
}

/// Not simulated (no collectives network plugin): NULL, `*err` = 1 and a message.
///
/// # Safety
///
/// `err` must be NULL or writable; `err_msg` NULL or writable for `err_msg_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_libnccl_net(
    err: *mut c_int,
    err_msg: *mut c_char,
    err_msg_size: usize,
) -> *mut c_void {
    let _ = guard("nrt_get_libnccl_net", || {
        not_simulated("the collectives network plugin")
    });
    if !err.is_null() {
        // SAFETY: non-null and writable (caller).
        unsafe { err.write(1) };
    }
    if !err_msg.is_null() && err_msg_size > 0 {
        let msg = b"nrt-sim has no collectives network plugin";
        let n = msg.len().min(err_msg_size - 1);
        // SAFETY: `err_msg` is writable for `err_msg_size > n` bytes (caller).
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), err_msg.cast::<u8>(), n);
            err_msg.add(n).write(0);
        }
    }
    std::ptr::null_mut()
}

/// Not simulated (no device memory mapping): `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_memcpy_to_device(
    dest: *mut c_void,
    src: *const c_void,
    size: usize,
) -> NRT_STATUS {
    let _ = (dest, src, size);
    guard("nrt_memcpy_to_device", || {
        not_simulated("mapped device memory")
    })
}

/// Not simulated (no pooling engine microcode): `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_set_pool_eng_ucode(ucode_info: *const nrt_ucode_info) -> NRT_STATUS {
    let _ = ucode_info;
    guard("nrt_set_pool_eng_ucode", || {
        not_simulated("pooling engine microcode")
    })
}

/// Not simulated (the legacy trace; use the system trace): `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_trace_start(trace_mem: bool) -> NRT_STATUS {
    let _ = trace_mem;
    guard("nrt_trace_start", || {
        not_simulated("the legacy trace (nrt_trace_*)")
    })
}

/// Not simulated (the legacy trace; use the system trace): `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_trace_stop(filename: *const c_char) -> NRT_STATUS {
    let _ = filename;
    guard("nrt_trace_stop", || {
        not_simulated("the legacy trace (nrt_trace_*)")
    })
}
