//! Synchronous execution: `nrt_execute`, `nrt_execute_repeat`.

use std::ffi::{c_int, c_void};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::Result;

/// `nrt_execute`: runs `model` on the tensors bound in `inputs`, writing `outputs`.
///
/// # Safety
///
/// The model and both sets are live handles of `lib`'s runtime; every tensor bound in
/// the sets stays alive for the call; each model tensor is bound with its exact size;
/// nothing else copies into or out of the bound tensors' host storage meanwhile; and
/// the calling thread has the stack room libnrt needs
/// ([`EXEC_STACK_NEEDED`](crate::EXEC_STACK_NEEDED)).
#[inline]
pub(crate) unsafe fn execute(
    lib: &Library,
    model: *mut sys::nrt_model_t,
    inputs: *const c_void,
    outputs: *mut c_void,
) -> Result<()> {
    let f = entry!(lib, nrt_execute);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(model, inputs, outputs) };
    check(lib, "nrt_execute", status)
}

/// `nrt_execute_repeat`: [`execute`] `repeat` times in a row.
///
/// # Safety
///
/// As for [`execute`]; `repeat` is at least 1.
pub(crate) unsafe fn execute_repeat(
    lib: &Library,
    model: *mut sys::nrt_model_t,
    inputs: *const c_void,
    outputs: *mut c_void,
    repeat: c_int,
) -> Result<()> {
    let f = entry!(lib, nrt_execute_repeat);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(model, inputs, outputs, repeat) };
    check(lib, "nrt_execute_repeat", status)
}
