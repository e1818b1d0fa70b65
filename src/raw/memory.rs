//! Device memory export: `nrt_get_dmabuf_fd`, and the addresses it takes.

use std::ffi::c_int;
use std::os::fd::{FromRawFd, OwnedFd};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::{Error, Result};

/// `nrt_tensor_get_va`: the tensor's virtual address, `None` when libnrt has none for it.
///
/// # Safety
///
/// `tensor` is a live tensor of `lib`'s runtime.
pub(crate) unsafe fn tensor_va(
    lib: &Library,
    tensor: *const sys::nrt_tensor_t,
) -> Result<Option<u64>> {
    let f = entry!(lib, nrt_tensor_get_va);
    // SAFETY: the caller's guarantee.
    let va = unsafe { f(tensor) };
    Ok((!va.is_null()).then_some(va as u64))
}

/// `nrt_tensor_get_device_allocation_info`.
///
/// # Safety
///
/// `tensor` is a live tensor of `lib`'s runtime.
pub(crate) unsafe fn allocation_info(
    lib: &Library,
    tensor: *const sys::nrt_tensor_t,
) -> Result<sys::nrt_tensor_device_allocation_info_t> {
    let f = entry!(lib, nrt_tensor_get_device_allocation_info);
    let mut info = sys::nrt_tensor_device_allocation_info_t::default();
    // SAFETY: the caller's guarantee; valid out-pointer.
    check(lib, "nrt_tensor_get_device_allocation_info", unsafe {
        f(tensor, &mut info)
    })?;
    Ok(info)
}

/// `nrt_get_dmabuf_fd`: a descriptor over `[va, va + size)`, owned by the caller.
pub(crate) fn dmabuf_fd(lib: &Library, va: u64, size: u64) -> Result<OwnedFd> {
    let f = entry!(lib, nrt_get_dmabuf_fd);
    let mut fd: c_int = -1;
    // SAFETY: plain values and a valid out-pointer; libnrt checks the range.
    check(lib, "nrt_get_dmabuf_fd", unsafe { f(va, size, &mut fd) })?;
    if fd < 0 {
        return Err(Error::UnexpectedResult {
            function: "nrt_get_dmabuf_fd",
            reason: format!("returned success and descriptor {fd}"),
        });
    }
    // SAFETY: on success the descriptor is new and the caller's (documented).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
