//! Tensor sets: `nrt_allocate_tensor_set`, `nrt_destroy_tensor_set`,
//! `nrt_add_tensor_to_tensor_set`.

use std::ffi::{CStr, c_void};
use std::ptr::{self, NonNull};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::{Error, Result};

/// [`Error::Unsupported`] unless the library has `nrt_destroy_tensor_set`: checked
/// before creating a set, so that nothing is created that could not be destroyed.
pub(crate) fn can_destroy(lib: &Library) -> Result<()> {
    entry!(lib, nrt_destroy_tensor_set);
    Ok(())
}

/// `nrt_allocate_tensor_set`: a new, empty set.
pub(crate) fn allocate(lib: &Library) -> Result<NonNull<c_void>> {
    let f = entry!(lib, nrt_allocate_tensor_set);
    let mut raw = ptr::null_mut();
    // SAFETY: `raw` is a valid out-pointer.
    let status = unsafe { f(&mut raw) };
    check(lib, "nrt_allocate_tensor_set", status)?;
    NonNull::new(raw).ok_or_else(|| Error::UnexpectedResult {
        function: "nrt_allocate_tensor_set",
        reason: "no set returned".into(),
    })
}

/// `nrt_destroy_tensor_set`; nothing if the library lacks it (checked by
/// [`can_destroy`] before any set was created).
///
/// # Safety
///
/// `set` is a live set of `lib`'s runtime that no execution uses any more; it is
/// destroyed exactly once.
pub(crate) unsafe fn destroy(lib: &Library, set: NonNull<c_void>) {
    if let Some(f) = lib.fns().nrt_destroy_tensor_set {
        let mut raw = set.as_ptr();
        // SAFETY: the caller's guarantees.
        unsafe { f(&mut raw) };
    }
}

/// `nrt_add_tensor_to_tensor_set`: binds `tensor` under `name`.
///
/// # Safety
///
/// `set` and `tensor` are live handles of `lib`'s runtime, the tensor stays alive while
/// it is in the set, and no execution uses the set during the call.
pub(crate) unsafe fn add_tensor(
    lib: &Library,
    set: *mut c_void,
    name: &CStr,
    tensor: *mut sys::nrt_tensor_t,
) -> Result<()> {
    let f = entry!(lib, nrt_add_tensor_to_tensor_set);
    // SAFETY: the caller's guarantees; `name` outlives the call.
    let status = unsafe { f(set, name.as_ptr(), tensor) };
    check(lib, "nrt_add_tensor_to_tensor_set", status)
}
