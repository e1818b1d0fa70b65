//! The async API v3: scheduling, completion queries and completion events.

use super::args::{guard, not_simulated, put};
use crate::error::{Res, fail};
use crate::runtime::{require_async_events, require_async_v3, with_open};
use nrt_sys::*;
use std::ffi::{c_int, c_void};

/// Checks the `ret` and `req_sequence` out-pointers of a schedule call.
fn check_slots(ret: *mut NRT_STATUS, req_sequence: *mut nrta_seq_t) -> Res<()> {
    if ret.is_null() || !ret.is_aligned() {
        return fail(NRT_INVALID, format!("ret {ret:p} is NULL or misaligned"));
    }
    if req_sequence.is_null() || !req_sequence.is_aligned() {
        return fail(
            NRT_INVALID,
            format!("req_sequence {req_sequence:p} is NULL or misaligned"),
        );
    }
    Ok(())
}

/// Schedules a write of `size` bytes from `buf` to `offset` of the tensor on TENSOR_OP
/// queue `queue` (0 or 1) of core `lnc_idx` (the tensor's core for a device tensor).
///
/// # Safety
///
/// `buf` must stay valid for reads of `size` bytes, and `ret` for writes, until the
/// request completes; `req_sequence` valid for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_write(
    tensor: *mut nrt_tensor_t,
    buf: *const c_void,
    offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_write", || {
        require_async_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            // SAFETY: `ret` (checked) and `buf` stay valid until completion (caller).
            unsafe { rt.schedule_write(tensor, buf.cast(), offset, size, lnc_idx, queue, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules a read of `size` bytes at `offset` of the tensor into `buf`, on TENSOR_OP
/// queue `queue` of core `lnc_idx`.
///
/// # Safety
///
/// `buf` must stay valid for writes of `size` bytes, and `ret` for writes, until the
/// request completes; `req_sequence` valid for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_read(
    buf: *mut c_void,
    tensor: *mut nrt_tensor_t,
    offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_read", || {
        require_async_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            // SAFETY: `ret` (checked) and `buf` stay valid until completion (caller).
            unsafe { rt.schedule_read(buf.cast(), tensor, offset, size, lnc_idx, queue, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules a tensor-to-tensor copy on TENSOR_OP queue `queue` of core `lnc_idx`;
/// device tensors must be on that core (so device to device only within one core).
///
/// # Safety
///
/// `ret` must stay valid for writes until the request completes; `req_sequence` valid
/// for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_copy(
    src: *mut nrt_tensor_t,
    src_offset: u64,
    dst: *mut nrt_tensor_t,
    dst_offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_copy", || {
        require_async_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            // SAFETY: `ret` (checked) stays valid until completion (caller).
            unsafe { rt.schedule_copy(src, src_offset, dst, dst_offset, size, lnc_idx, queue, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules an execution on the COMPUTE queue of the model's core (`queue` must be 0),
/// with the same checks as `nrt_execute` done now.
///
/// # Safety
///
/// `ret` must stay valid for writes until the request completes; `req_sequence` valid
/// for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_execute_schedule(
    model: *mut nrt_model_t,
    input: *const nrt_tensor_set_t,
    output: *mut nrt_tensor_set_t,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_execute_schedule", || {
        require_async_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            // SAFETY: `ret` (checked) stays valid until completion (caller).
            unsafe { rt.schedule_execute(model, input, output, queue, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_cc_prepare(
    comm: *mut nrt_cc_comm_t,
    input: *mut nrt_tensor_list_t,
    output: *mut nrt_tensor_list_t,
    dtype: nrt_dtype_t,
    op: nrt_op_type_t,
    cc_op: nrt_cc_op_type_t,
    cc_ctx: *mut *mut nrt_cc_context_t,
) -> NRT_STATUS {
    let _ = (comm, input, output, dtype, op, cc_op, cc_ctx);
    guard("nrta_cc_prepare", || {
        require_async_v3()?;
        not_simulated("collectives")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_cc_schedule(
    cc_ctx: *mut *mut nrt_cc_context_t,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    let _ = (cc_ctx, queue, ret, req_sequence);
    guard("nrta_cc_schedule", || {
        require_async_v3()?;
        not_simulated("collectives")
    })
}

/// Whether request `seq` has completed; `NRT_INVALID` for an id its queue never issued.
///
/// # Safety
///
/// `is_completed` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_is_completed(seq: nrta_seq_t, is_completed: *mut bool) -> NRT_STATUS {
    guard("nrta_is_completed", || {
        require_async_v3()?;
        if is_completed.is_null() {
            return fail(NRT_INVALID, "is_completed is NULL");
        }
        let done = with_open(|rt| rt.is_completed(seq))?;
        // SAFETY: writable (caller).
        unsafe { put(is_completed, "is_completed", done) }
    })
}

/// The last completed sequence id of one queue (`xu_id << 48` before any).
///
/// # Safety
///
/// `seq` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_get_sequence(
    lnc: u32,
    xu: nrta_xu_t,
    queue: c_int,
    seq: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_get_sequence", || {
        require_async_v3()?;
        let last = with_open(|rt| rt.last_completed(lnc.into(), xu, queue.into()))?;
        // SAFETY: writable (caller).
        unsafe { put(seq, "seq", last) }
    })
}

/// Signals the eventfd `fd` (counter + 1) when request `seq` completes, at once if it
/// already has; `fd < 0` removes the registrations of `seq`. The signal is written after
/// the request's status (as `nrta_is_completed` sees it). `NRT_INVALID` for an id its
/// queue never issued or an `fd` that is not an open eventfd.
///
/// # Safety
///
/// `fd` must stay open until the signal was delivered or the registration removed (the
/// simulator only passes it to write(2)).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_event_register_seq_id_completion(
    seq: nrta_seq_t,
    fd: c_int,
) -> NRT_STATUS {
    guard("nrta_event_register_seq_id_completion", || {
        require_async_events()?;
        with_open(|rt| rt.register_seq_event(seq, fd))
    })
}

/// Signals the eventfd `fd` on every completion of unit `(lnc, xu, queue)`, replacing
/// the unit's earlier fd; `fd < 0` deregisters. One signal may stand for several
/// completions: read `nrta_get_sequence` after a wake-up. `NRT_INVALID` for a unit that
/// does not exist or an `fd` that is not an open eventfd.
///
/// # Safety
///
/// `fd` must stay open until it is deregistered (the simulator only passes it to
/// write(2)).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_event_register_xu_completion(
    lnc: c_int,
    xu: nrta_xu_t,
    queue: c_int,
    fd: c_int,
) -> NRT_STATUS {
    guard("nrta_event_register_xu_completion", || {
        require_async_events()?;
        with_open(|rt| rt.register_xu_event(lnc.into(), xu, queue.into(), fd))
    })
}

/// Marker of the async v2 API, exported so that older-runtime detection by symbol can be
/// exercised; the simulator does not model v2 error trackers and always returns
/// `NRT_FAILURE` without reading any argument.
///
/// # Safety
///
/// Reads no argument, so it is harmless whatever the caller passes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_error_tracker_create() -> NRT_STATUS {
    guard("nrta_error_tracker_create", || {
        not_simulated("the async v2 error tracker")
    })
}
