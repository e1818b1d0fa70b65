//! Tensors: `nrt_tensor_allocate*`, `nrt_tensor_free`, synchronous reads, writes,
//! copies and memsets, host buffers attached to tensors, and batched transfers.

use std::ffi::{CStr, c_void};
use std::ptr::{self, NonNull};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::{Error, Result};

/// [`Error::Unsupported`] unless the library has `nrt_tensor_free`: checked before
/// creating a tensor, so that nothing is created that could not be freed.
pub(crate) fn can_free(lib: &Library) -> Result<()> {
    entry!(lib, nrt_tensor_free);
    Ok(())
}

/// `nrt_tensor_allocate`: a new tensor of `size` bytes.
pub(crate) fn allocate(
    lib: &Library,
    placement: sys::nrt_tensor_placement_t,
    vnc: i32,
    size: usize,
    name: &CStr,
) -> Result<NonNull<sys::nrt_tensor_t>> {
    let f = entry!(lib, nrt_tensor_allocate);
    let mut raw = ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and outlives the call; `raw` is a valid
    // out-pointer. libnrt checks the placement, core and size itself.
    let status = unsafe { f(placement, vnc, size, name.as_ptr(), &mut raw) };
    check(lib, "nrt_tensor_allocate", status)?;
    returned(raw, "nrt_tensor_allocate")
}

/// `nrt_tensor_allocate_empty`: a tensor without storage, for [`attach_buffer`].
pub(crate) fn allocate_empty(lib: &Library, name: &CStr) -> Result<NonNull<sys::nrt_tensor_t>> {
    let f = entry!(lib, nrt_tensor_allocate_empty);
    let mut raw = ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and outlives the call; `raw` is a valid out-pointer.
    let status = unsafe { f(name.as_ptr(), &mut raw) };
    check(lib, "nrt_tensor_allocate_empty", status)?;
    returned(raw, "nrt_tensor_allocate_empty")
}

/// `nrt_tensor_allocate_slice`: a tensor viewing `size` bytes of `source` at `offset`.
///
/// # Safety
///
/// `source` is a live tensor of `lib`'s runtime that outlives the slice, and
/// `offset + size` is inside it.
pub(crate) unsafe fn allocate_slice(
    lib: &Library,
    source: *const sys::nrt_tensor_t,
    offset: usize,
    size: usize,
    name: &CStr,
) -> Result<NonNull<sys::nrt_tensor_t>> {
    let f = entry!(lib, nrt_tensor_allocate_slice);
    let mut raw = ptr::null_mut();
    // SAFETY: the caller's guarantees; `name` outlives the call; `raw` is a valid
    // out-pointer.
    let status = unsafe { f(source, offset, size, name.as_ptr(), &mut raw) };
    check(lib, "nrt_tensor_allocate_slice", status)?;
    returned(raw, "nrt_tensor_allocate_slice")
}

/// [`Error::UnexpectedResult`] for a success that returned no tensor.
fn returned(
    raw: *mut sys::nrt_tensor_t,
    function: &'static str,
) -> Result<NonNull<sys::nrt_tensor_t>> {
    NonNull::new(raw).ok_or_else(|| Error::UnexpectedResult {
        function,
        reason: "no tensor returned".into(),
    })
}

/// `nrt_tensor_free`; nothing if the library lacks it (checked by [`can_free`] before
/// any tensor was created).
///
/// # Safety
///
/// `tensor` is a live tensor of `lib`'s runtime that no set, slice or queued request
/// uses any more; it is freed exactly once.
pub(crate) unsafe fn free(lib: &Library, tensor: NonNull<sys::nrt_tensor_t>) {
    if let Some(f) = lib.fns().nrt_tensor_free {
        let mut raw = tensor.as_ptr();
        // SAFETY: the caller's guarantees.
        unsafe { f(&mut raw) };
    }
}

/// `nrt_tensor_attach_buffer`: makes `buffer` (`size` bytes) the tensor's storage.
///
/// # Safety
///
/// `tensor` is a live tensor from [`allocate_empty`]; `buffer` is valid for reads and
/// writes of `size` bytes until the tensor is freed, and Rust does not access those
/// bytes meanwhile except through libnrt.
pub(crate) unsafe fn attach_buffer(
    lib: &Library,
    tensor: *mut sys::nrt_tensor_t,
    buffer: *mut c_void,
    size: usize,
) -> Result<()> {
    let f = entry!(lib, nrt_tensor_attach_buffer);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(tensor, buffer, size) };
    check(lib, "nrt_tensor_attach_buffer", status)
}

/// `nrt_tensor_write`: copies `size` bytes from `data` into the tensor at `offset`.
///
/// # Safety
///
/// `tensor` is live; `data` is valid for reads of `size` bytes; `offset + size` is
/// inside the tensor; no other copy touches the tensor's host storage (if any) meanwhile.
#[inline]
pub(crate) unsafe fn write(
    lib: &Library,
    tensor: *mut sys::nrt_tensor_t,
    data: *const c_void,
    offset: usize,
    size: usize,
) -> Result<()> {
    let f = entry!(lib, nrt_tensor_write);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(tensor, data, offset, size) };
    check(lib, "nrt_tensor_write", status)
}

/// `nrt_tensor_read`: copies `size` bytes of the tensor at `offset` into `out`.
///
/// # Safety
///
/// `tensor` is live; `out` is valid for writes of `size` bytes, and any bytes are a
/// valid value of what it points to; `offset + size` is inside the tensor; nothing
/// writes the tensor's host storage (if any) meanwhile.
#[inline]
pub(crate) unsafe fn read(
    lib: &Library,
    tensor: *const sys::nrt_tensor_t,
    out: *mut c_void,
    offset: usize,
    size: usize,
) -> Result<()> {
    let f = entry!(lib, nrt_tensor_read);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(tensor, out, offset, size) };
    check(lib, "nrt_tensor_read", status)
}

/// `nrt_tensor_copy`: `size` bytes from `src` at `src_offset` to `dst` at `dst_offset`.
///
/// # Safety
///
/// Both tensors are live handles of `lib`'s runtime, both ranges are inside them, and
/// no other copy touches their host storage (if any) meanwhile.
pub(crate) unsafe fn copy(
    lib: &Library,
    src: *const sys::nrt_tensor_t,
    src_offset: usize,
    dst: *mut sys::nrt_tensor_t,
    dst_offset: usize,
    size: usize,
) -> Result<()> {
    let f = entry!(lib, nrt_tensor_copy);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(src, src_offset, dst, dst_offset, size) };
    check(lib, "nrt_tensor_copy", status)
}

/// `nrt_tensor_memset`: sets `size` bytes at `offset` to `value`.
///
/// # Safety
///
/// `tensor` is live, the range is inside it, and no other copy touches its host storage
/// (if any) meanwhile.
pub(crate) unsafe fn memset(
    lib: &Library,
    tensor: *mut sys::nrt_tensor_t,
    offset: u64,
    value: u8,
    size: usize,
) -> Result<()> {
    let f = entry!(lib, nrt_tensor_memset);
    // SAFETY: the caller's guarantees.
    let status = unsafe { f(tensor, offset, i32::from(value), size) };
    check(lib, "nrt_tensor_memset", status)
}

/// `nrt_tensor_read_batch` (`read` true) or `nrt_tensor_write_batch`, with libnrt's
/// `unsafe` flag off (its effect is not publicly documented, so this crate never sets it).
///
/// # Safety
///
/// `batches` name live tensors of `lib`'s runtime; each points to its `num_ops` ops,
/// every op's range lies inside its tensor and its buffer is valid for `size` bytes:
/// for writes (and any bytes valid) in a read batch, for reads in a write batch. Nothing
/// else touches the tensors' host storage meanwhile.
pub(crate) unsafe fn transfer_batch(
    lib: &Library,
    read: bool,
    batches: &[sys::nrt_tensor_batch_t],
) -> Result<()> {
    let (f, function) = if read {
        (entry!(lib, nrt_tensor_read_batch), "nrt_tensor_read_batch")
    } else {
        (
            entry!(lib, nrt_tensor_write_batch),
            "nrt_tensor_write_batch",
        )
    };
    let count = u64::try_from(batches.len()).map_err(|_| {
        Error::invalid(
            "batch",
            format!("{} tensors do not fit in 64 bits", batches.len()),
        )
    })?;
    // SAFETY: `batches` holds `count` entries; the rest is the caller's guarantee.
    let status = unsafe { f(batches.as_ptr(), count, false) };
    check(lib, function, status)
}
