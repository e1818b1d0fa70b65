//! Tensor sets.

use super::args::{c_bytes, guard, put};
use crate::error::fail;
use crate::runtime::with_open;
use nrt_sys::*;
use std::ffi::c_char;

/// Allocates an empty tensor set.
///
/// # Safety
///
/// `result` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_allocate_tensor_set(result: *mut *mut nrt_tensor_set_t) -> NRT_STATUS {
    guard("nrt_allocate_tensor_set", || {
        if result.is_null() {
            return fail(NRT_INVALID, "result is NULL");
        }
        let h = with_open(|rt| rt.allocate_set())?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(result, "result", h) }
    })
}

/// Destroys a tensor set (not its tensors) and sets `*tensor_set` to NULL. Errors are
/// logged only.
///
/// # Safety
///
/// `tensor_set` NULL or valid for reads and writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_destroy_tensor_set(tensor_set: *mut *mut nrt_tensor_set_t) {
    let _ = guard("nrt_destroy_tensor_set", || {
        if tensor_set.is_null() {
            return fail(NRT_INVALID, "tensor_set is NULL");
        }
        // SAFETY: non-null and readable (caller).
        let handle = unsafe { tensor_set.read() };
        with_open(|rt| rt.destroy_set(handle))?;
        // SAFETY: non-null and writable (caller).
        unsafe { tensor_set.write(std::ptr::null_mut()) };
        Ok(())
    });
}

/// Adds a tensor under `tensor_name`, replacing any tensor of that name. The set does
/// not own the tensor.
///
/// # Safety
///
/// `tensor_name` must be NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_add_tensor_to_tensor_set(
    tensor_set: *mut nrt_tensor_set_t,
    tensor_name: *const c_char,
    tensor: *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_add_tensor_to_tensor_set", || {
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_bytes(tensor_name, "tensor_name") }?;
        with_open(|rt| rt.add_to_set(tensor_set, name, tensor))
    })
}

/// Looks a tensor up by name: unknown name -> `NRT_FAILURE` (as the runtime documents)
/// and `*tensor` is left alone; a tensor freed since it was added -> `NRT_INVALID_HANDLE`.
///
/// # Safety
///
/// `tensor_name` must be NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_tensor_from_tensor_set(
    tensor_set: *mut nrt_tensor_set_t,
    tensor_name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_get_tensor_from_tensor_set", || {
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_bytes(tensor_name, "tensor_name") }?;
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        let h = with_open(|rt| rt.get_from_set(tensor_set, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}
