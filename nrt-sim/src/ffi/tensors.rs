//! Tensors: allocation, data movement (also batched), slices, attached buffers.

use super::args::{c_text, guard, put};
use crate::error::{Res, fail};
use crate::runtime::{self, SyncTensor, with_open};
use nrt_sys::*;
use std::ffi::{c_char, c_int, c_void};

/// Allocates a zeroed tensor: DEVICE on core `vnc` (counted against its memory), HOST
/// (pinned host memory, at most 4 MiB; `vnc` ignored) or VIRTUAL (pageable host memory;
/// `vnc` ignored; emulated runtime below 2.32 only, else `NRT_INVALID`). `name` may be NULL. Size 0 -> `NRT_INVALID`; not enough device
/// memory, or a HOST tensor over 4 MiB -> `NRT_RESOURCE`.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate(
    tensor_placement: nrt_tensor_placement_t,
    vnc: c_int,
    size: usize,
    name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_tensor(tensor_placement, vnc, size, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}

/// Allocates a tensor without storage (size 0) to attach a buffer to.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate_empty(
    name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate_empty", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_empty(name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}

/// Gives a tensor caller-owned storage of `size` bytes: its previous storage (if any) is
/// detached, and freed once no slice uses it; the tensor's size becomes `size` and its
/// placement VIRTUAL.
///
/// # Safety
///
/// `buffer` must be valid for reads and writes of `size` bytes until the tensor is freed
/// and no request uses it any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_attach_buffer(
    tensor: *mut nrt_tensor_t,
    buffer: *mut c_void,
    size: usize,
) -> NRT_STATUS {
    // SAFETY: the buffer's validity is the caller's promise, passed on.
    guard("nrt_tensor_attach_buffer", || {
        with_open(|rt| unsafe { rt.attach_buffer(tensor, buffer.cast(), size) })
    })
}

/// A view of `size` bytes at `offset` of another tensor (no copy). The storage is shared:
/// it stays allocated (and counted) until the last tensor using it is freed.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor_slice` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate_slice(
    tensor_source: *const nrt_tensor_t,
    offset: usize,
    size: usize,
    name: *const c_char,
    tensor_slice: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate_slice", || {
        if tensor_slice.is_null() {
            return fail(NRT_INVALID, "tensor_slice is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_slice(tensor_source, offset, size, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor_slice, "tensor_slice", h) }
    })
}

/// Frees a tensor and sets `*tensor` to NULL. Sets naming it keep the (now dead) entry;
/// requests already holding it finish normally. Errors are logged only.
///
/// # Safety
///
/// `tensor` NULL or valid for reads and writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_free(tensor: *mut *mut nrt_tensor_t) {
    let _ = guard("nrt_tensor_free", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: non-null and readable (caller).
        let handle = unsafe { tensor.read() };
        with_open(|rt| rt.free_tensor(handle))?;
        // SAFETY: non-null and writable (caller).
        unsafe { tensor.write(std::ptr::null_mut()) };
        Ok(())
    });
}

/// Copies `size` bytes at `offset` of the tensor into `buf`.
///
/// # Safety
///
/// `buf` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_read(
    tensor: *const nrt_tensor_t,
    buf: *mut c_void,
    offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_read", || {
        let span = crate::trace::Span::begin("nrt_tensor_read");
        let t = with_open(|rt| rt.sync_tensor(tensor))?;
        // SAFETY: forwarded from the caller.
        let result = unsafe { read_checked(&t, buf, offset, size) };
        if let (Ok(()), Some(core)) = (&result, t.core_index())
            && crate::debug::connected(core)
        {
            // SAFETY: `buf` now holds the `size` bytes just read (caller: writable, so
            // readable by us for the call).
            let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) };
            let payload = crate::debug::tensor_read_payload(core, &t.tensor.name, data);
            crate::debug::emit(
                core,
                crate::debug::DebugEvent {
                    ty: NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ,
                    payload,
                },
            );
        }
        if let Some(span) = span {
            let status = result.as_ref().map_or_else(|f| f.status, |_| NRT_SUCCESS);
            span.end(
                t.core_index(),
                &t.tensor.name,
                status as i32,
                Some(size as u64),
            );
        }
        result
    })
}

/// The checks and copy of `nrt_tensor_read` on a resolved tensor.
///
/// # Safety
///
/// As `nrt_tensor_read`'s `buf`.
unsafe fn read_checked(t: &SyncTensor, buf: *mut c_void, offset: usize, size: usize) -> Res<()> {
    t.tensor.check_range("read", offset as u64, size as u64)?;
    if buf.is_null() && size > 0 {
        return fail(NRT_INVALID, "buf is NULL");
    }
    // SAFETY: `buf` holds `size` writable bytes (caller); the range is checked.
    unsafe { t.read(buf.cast(), offset, size) }
}

/// Copies `size` bytes from `buf` to `offset` of the tensor.
///
/// # Safety
///
/// `buf` must be valid for reads of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_write(
    tensor: *mut nrt_tensor_t,
    buf: *const c_void,
    offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_write", || {
        let span = crate::trace::Span::begin("nrt_tensor_write");
        let t = with_open(|rt| rt.sync_tensor(tensor))?;
        // SAFETY: forwarded from the caller.
        let result = unsafe { write_checked(&t, buf, offset, size) };
        if let Some(span) = span {
            let status = result.as_ref().map_or_else(|f| f.status, |_| NRT_SUCCESS);
            span.end(
                t.core_index(),
                &t.tensor.name,
                status as i32,
                Some(size as u64),
            );
        }
        result
    })
}

/// The checks and copy of `nrt_tensor_write` on a resolved tensor.
///
/// # Safety
///
/// As `nrt_tensor_write`'s `buf`.
unsafe fn write_checked(t: &SyncTensor, buf: *const c_void, offset: usize, size: usize) -> Res<()> {
    t.tensor.check_range("write", offset as u64, size as u64)?;
    if buf.is_null() && size > 0 {
        return fail(NRT_INVALID, "buf is NULL");
    }
    // SAFETY: `buf` holds `size` readable bytes (caller); the range is checked.
    unsafe { t.write(buf.cast(), offset, size) }
}

/// Copies `size` bytes between two tensors (device to device only within one core).
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_copy(
    src: *const nrt_tensor_t,
    src_offset: usize,
    dst: *mut nrt_tensor_t,
    dst_offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_copy", || {
        let (s, d) = with_open(|rt| {
            rt.check_copy(src, src_offset as u64, dst, dst_offset as u64, size as u64)
        })?;
        runtime::copy_between(&s, src_offset, &d, dst_offset, size)
    })
}

/// Sets `size` bytes at `offset` to `value as u8`.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_memset(
    tensor: *mut nrt_tensor_t,
    offset: u64,
    value: c_int,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_memset", || {
        let t = with_open(|rt| rt.tensor(tensor, "tensor"))?;
        t.check_range("memset", offset, size as u64)?;
        t.fill(offset as usize, value as u8, size)
    })
}

/// The tensor's size in bytes; 0 (and a log line) for a bad handle.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_size(tensor: *const nrt_tensor_t) -> usize {
    let mut size = 0;
    let _ = guard("nrt_tensor_get_size", || {
        size = with_open(|rt| rt.tensor(tensor, "tensor"))?.size;
        Ok(())
    });
    size
}

/// The host address of a HOST or attached tensor's memory; NULL (and a log line) for
/// device tensors, whose memory is not mapped into the host, and for bad handles.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_va(tensor: *const nrt_tensor_t) -> *mut c_void {
    let mut va = std::ptr::null_mut();
    let _ = guard("nrt_tensor_get_va", || {
        let t = with_open(|rt| rt.tensor(tensor, "tensor"))?;
        va = t.host_address()?.cast();
        Ok(())
    });
    va
}

/// A device tensor's (simulated) physical address, size and memory bank.
///
/// # Safety
///
/// `alloc_info` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_device_allocation_info(
    tensor: *const nrt_tensor_t,
    alloc_info: *mut nrt_tensor_device_allocation_info_t,
) -> NRT_STATUS {
    guard("nrt_tensor_get_device_allocation_info", || {
        let value = with_open(|rt| rt.device_allocation_info(tensor))?;
        // SAFETY: writable (caller).
        unsafe { put(alloc_info, "alloc_info", value) }
    })
}

/// The batch array of a batch call, checked and resolved (nothing when `num_batches`
/// is 0, whatever the runtime's state).
///
/// # Safety
///
/// `batches` must point to `num_batches` batches whose `ops` point to `num_ops` ops.
unsafe fn batch_ops(batches: *const nrt_tensor_batch_t, num_batches: u64) -> Res<runtime::Batch> {
    if num_batches == 0 {
        return Ok(runtime::Batch::default());
    }
    if batches.is_null() {
        return fail(
            NRT_INVALID,
            format!("batches is NULL with num_batches {num_batches}"),
        );
    }
    let Ok(count) = usize::try_from(num_batches) else {
        return fail(
            NRT_INVALID,
            format!("num_batches {num_batches} is too large"),
        );
    };
    // SAFETY: `batches` points to `count` batches (caller).
    let batches = unsafe { std::slice::from_raw_parts(batches, count) };
    // SAFETY: each batch's `ops` points to its `num_ops` ops (caller).
    with_open(|rt| unsafe { rt.check_batches(batches) })
}

/// Reads several ranges of several tensors into host buffers. Every op is checked before
/// any is done; the `unsafe` flag is accepted and ignored (checks always run).
///
/// # Safety
///
/// `batches` must point to `num_batches` valid batches; each op's `buffer` must be valid
/// for writes of its `size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_read_batch(
    batches: *const nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_: bool,
) -> NRT_STATUS {
    let _ = unsafe_;
    guard("nrt_tensor_read_batch", || {
        // SAFETY: the batch array is valid (caller).
        let batch = unsafe { batch_ops(batches, num_batches) }?;
        // SAFETY: each op's buffer holds `size` writable bytes (caller).
        unsafe { batch.read() }
    })
}

/// Writes host buffers to several ranges of several tensors; checked like
/// `nrt_tensor_read_batch`.
///
/// # Safety
///
/// `batches` must point to `num_batches` valid batches; each op's `buffer` must be valid
/// for reads of its `size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_write_batch(
    batches: *const nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_: bool,
) -> NRT_STATUS {
    let _ = unsafe_;
    guard("nrt_tensor_write_batch", || {
        // SAFETY: the batch array is valid (caller).
        let batch = unsafe { batch_ops(batches, num_batches) }?;
        // SAFETY: each op's buffer holds `size` readable bytes (caller).
        unsafe { batch.write() }
    })
}
