//! The async API (v3): scheduling on execution units (`nrta_execute_schedule`,
//! `nrta_tensor_write` / `read` / `copy`), completion queries (`nrta_is_completed`,
//! `nrta_get_sequence`) and completion events (`nrta_event_register_seq_id_completion`).
//!
//! Every function here is `unsafe` for one shared reason: the `nrta_*` signatures
//! changed between runtime versions, and only a library with the v3 API
//! ([`Capabilities::ASYNC_V3`](crate::Capabilities::ASYNC_V3), or `ASYNC_EVENTS` for the
//! event call) may be called through them. Callers check the capability before they
//! create an execution unit, the only place these are called from.
//!
//! Schedule calls return the request's raw sequence id; `ret` is where libnrt stores the
//! request's final status when it completes.

use std::ffi::{c_int, c_void};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::Result;

/// `nrta_execute_schedule` on the compute queue `queue` of the model's core.
///
/// # Safety
///
/// The library has the v3 API. The model and both sets are live handles of `lib`'s
/// runtime and stay alive and unchanged until the request completes, with every model
/// tensor bound with its exact size on the model's core. `ret` is valid for writes until
/// completion has been observed.
#[inline]
pub(crate) unsafe fn execute_schedule(
    lib: &Library,
    model: *mut sys::nrt_model_t,
    inputs: *const c_void,
    outputs: *mut c_void,
    queue: c_int,
    ret: *mut sys::NRT_STATUS,
) -> Result<u64> {
    let f = entry!(lib, nrta_execute_schedule);
    let mut seq = 0u64;
    // SAFETY: the caller's guarantees; `seq` is a valid out-pointer.
    let status = unsafe { f(model, inputs, outputs, queue, ret, &mut seq) };
    check(lib, "nrta_execute_schedule", status)?;
    Ok(seq)
}

/// `nrta_tensor_write` on TENSOR_OP queue `queue` of core `lnc`: `size` bytes from
/// `src` into the tensor at `offset`.
///
/// # Safety
///
/// The library has the v3 API. The tensor is live and stays alive until completion;
/// `src` stays valid for reads of `size` bytes, and is not written by Rust, until
/// completion has been observed; the range is inside the tensor. `ret` as for
/// [`execute_schedule`].
#[inline]
#[allow(clippy::too_many_arguments)] // the C function's own parameter list
pub(crate) unsafe fn tensor_write(
    lib: &Library,
    tensor: *mut sys::nrt_tensor_t,
    src: *const c_void,
    offset: u64,
    size: u64,
    lnc: c_int,
    queue: c_int,
    ret: *mut sys::NRT_STATUS,
) -> Result<u64> {
    let f = entry!(lib, nrta_tensor_write);
    let mut seq = 0u64;
    // SAFETY: the caller's guarantees; `seq` is a valid out-pointer.
    let status = unsafe { f(tensor, src, offset, size, lnc, queue, ret, &mut seq) };
    check(lib, "nrta_tensor_write", status)?;
    Ok(seq)
}

/// `nrta_tensor_read` on TENSOR_OP queue `queue` of core `lnc`: `size` bytes of the
/// tensor at `offset` into `dst`.
///
/// # Safety
///
/// The library has the v3 API. The tensor is live and stays alive until completion;
/// `dst` stays valid for writes of `size` bytes (any bytes a valid value), and is not
/// accessed by Rust, until completion has been observed; the range is inside the
/// tensor. `ret` as for [`execute_schedule`].
#[inline]
#[allow(clippy::too_many_arguments)] // the C function's own parameter list
pub(crate) unsafe fn tensor_read(
    lib: &Library,
    dst: *mut c_void,
    tensor: *mut sys::nrt_tensor_t,
    offset: u64,
    size: u64,
    lnc: c_int,
    queue: c_int,
    ret: *mut sys::NRT_STATUS,
) -> Result<u64> {
    let f = entry!(lib, nrta_tensor_read);
    let mut seq = 0u64;
    // SAFETY: the caller's guarantees; `seq` is a valid out-pointer.
    let status = unsafe { f(dst, tensor, offset, size, lnc, queue, ret, &mut seq) };
    check(lib, "nrta_tensor_read", status)?;
    Ok(seq)
}

/// `nrta_tensor_copy` on TENSOR_OP queue `queue` of core `lnc`.
///
/// # Safety
///
/// The library has the v3 API. Both tensors are live and stay alive until completion;
/// both ranges are inside them. `ret` as for [`execute_schedule`].
#[inline]
#[allow(clippy::too_many_arguments)] // the C function's own parameter list
pub(crate) unsafe fn tensor_copy(
    lib: &Library,
    src: *mut sys::nrt_tensor_t,
    src_offset: u64,
    dst: *mut sys::nrt_tensor_t,
    dst_offset: u64,
    size: u64,
    lnc: c_int,
    queue: c_int,
    ret: *mut sys::NRT_STATUS,
) -> Result<u64> {
    let f = entry!(lib, nrta_tensor_copy);
    let mut seq = 0u64;
    // SAFETY: the caller's guarantees; `seq` is a valid out-pointer.
    let status = unsafe {
        f(
            src, src_offset, dst, dst_offset, size, lnc, queue, ret, &mut seq,
        )
    };
    check(lib, "nrta_tensor_copy", status)?;
    Ok(seq)
}

/// `nrta_is_completed`: whether request `seq` has completed. After `nrt_close` libnrt
/// answers with a failure status, returned as an error.
///
/// # Safety
///
/// The library has the v3 API.
#[inline]
pub(crate) unsafe fn is_completed(lib: &Library, seq: u64) -> Result<bool> {
    let f = entry!(lib, nrta_is_completed);
    let mut done = false;
    // SAFETY: v3 signature (the caller's guarantee); `done` is a valid out-pointer.
    let status = unsafe { f(seq, &mut done) };
    check(lib, "nrta_is_completed", status)?;
    Ok(done)
}

/// `nrta_get_sequence`: the raw id of the last request queue `(lnc, xu, queue)`
/// completed. After `nrt_close` libnrt answers with a failure status.
///
/// # Safety
///
/// The library has the v3 API.
#[inline]
pub(crate) unsafe fn get_sequence(
    lib: &Library,
    lnc: u32,
    xu: sys::nrta_xu_t,
    queue: c_int,
) -> Result<u64> {
    let f = entry!(lib, nrta_get_sequence);
    let mut seq = 0u64;
    // SAFETY: v3 signature (the caller's guarantee); `seq` is a valid out-pointer.
    let status = unsafe { f(lnc, xu, queue, &mut seq) };
    check(lib, "nrta_get_sequence", status)?;
    Ok(seq)
}

/// `nrta_event_register_seq_id_completion`: libnrt writes to the eventfd `fd` once
/// request `seq` has completed (at once if it already has).
///
/// # Safety
///
/// The library has the completion-event API
/// ([`Capabilities::ASYNC_EVENTS`](crate::Capabilities::ASYNC_EVENTS)), and `fd` is an
/// eventfd that stays open until the signal arrived or the runtime closed.
#[inline]
pub(crate) unsafe fn event_register_seq_id_completion(
    lib: &Library,
    seq: u64,
    fd: c_int,
) -> Result<()> {
    let f = entry!(lib, nrta_event_register_seq_id_completion);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(seq, fd) };
    check(lib, "nrta_event_register_seq_id_completion", status)
}
