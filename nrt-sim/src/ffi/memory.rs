//! Stubs (replaced family by family).

use super::args::{guard, not_simulated};
use nrt_sys::*;

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_attached_efa_bdf(
    va: *const std::ffi::c_void,
    efa_bdf: *mut std::ffi::c_char,
    len: *mut usize,
) -> NRT_STATUS {
    let _ = (va, efa_bdf, len);
    guard("nrt_get_attached_efa_bdf", || {
        not_simulated("nrt_get_attached_efa_bdf")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_dmabuf_fd(
    va: u64,
    size: u64,
    fd: *mut std::ffi::c_int,
) -> NRT_STATUS {
    let _ = (va, size, fd);
    guard("nrt_get_dmabuf_fd", || not_simulated("nrt_get_dmabuf_fd"))
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_hbm_mmap_va(
    device_id: std::ffi::c_int,
    hbm_idx: std::ffi::c_int,
    addr: *mut *mut std::ffi::c_void,
    size: *mut usize,
) -> NRT_STATUS {
    let _ = (device_id, hbm_idx, addr, size);
    guard("nrt_get_hbm_mmap_va", || {
        not_simulated("nrt_get_hbm_mmap_va")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_libnccl_net(
    err: *mut std::ffi::c_int,
    err_msg: *mut std::ffi::c_char,
    err_msg_size: usize,
) -> *mut std::ffi::c_void {
    let _ = (err, err_msg, err_msg_size);
    let _ = guard("nrt_get_libnccl_net", || {
        not_simulated("nrt_get_libnccl_net")
    });
    std::ptr::null_mut()
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_host_device_id_get(
    neuron_dev: std::ffi::c_int,
    host_device_id: *mut u32,
) -> NRT_STATUS {
    let _ = (neuron_dev, host_device_id);
    guard("nrt_host_device_id_get", || {
        not_simulated("nrt_host_device_id_get")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_host_device_id_rid_map_get(
    count: *mut u32,
    host_did_to_rid_map: *mut u32,
) -> NRT_STATUS {
    let _ = (count, host_did_to_rid_map);
    guard("nrt_host_device_id_rid_map_get", || {
        not_simulated("nrt_host_device_id_rid_map_get")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_memcpy_to_device(
    dest: *mut std::ffi::c_void,
    src: *const std::ffi::c_void,
    size: usize,
) -> NRT_STATUS {
    let _ = (dest, src, size);
    guard("nrt_memcpy_to_device", || {
        not_simulated("nrt_memcpy_to_device")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_set_pool_eng_ucode(ucode_info: *const nrt_ucode_info) -> NRT_STATUS {
    let _ = (ucode_info,);
    guard("nrt_set_pool_eng_ucode", || {
        not_simulated("nrt_set_pool_eng_ucode")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_check_output_completion(
    output_tensor: *const nrt_tensor_t,
    timeout: i64,
    expected_completion_count: u64,
) -> NRT_STATUS {
    let _ = (output_tensor, timeout, expected_completion_count);
    guard("nrt_tensor_check_output_completion", || {
        not_simulated("nrt_tensor_check_output_completion")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_reset_output_completion(
    output_tensor: *mut nrt_tensor_t,
) -> NRT_STATUS {
    let _ = (output_tensor,);
    guard("nrt_tensor_reset_output_completion", || {
        not_simulated("nrt_tensor_reset_output_completion")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_trace_start(trace_mem: bool) -> NRT_STATUS {
    let _ = (trace_mem,);
    guard("nrt_trace_start", || not_simulated("nrt_trace_start"))
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_trace_stop(filename: *const std::ffi::c_char) -> NRT_STATUS {
    let _ = (filename,);
    guard("nrt_trace_stop", || not_simulated("nrt_trace_stop"))
}
