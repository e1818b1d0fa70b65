//! Send/recv between logical cores of different runtimes (`nrt_async_sendrecv_*`; the
//! transport is in `crate::sendrecv`, README.md "Send/recv").
//!
//! Statuses as the header documents them (`NRT_RESOURCE` over the limits,
//! `NRT_INVALID_HANDLE` for a communicator or request that is not live, `NRT_TIMEOUT`
//! when a connection is not made in time, `NRT_FAILURE` otherwise); choices: NULL
//! pointers and bad arguments -> `NRT_INVALID`; a request that completed is freed by
//! the `test_request` that reports it (testing it again -> `NRT_INVALID_HANDLE`).

use super::args::{c_bytes, guard, put};
use crate::error::{Res, fail};
use crate::opaque::Registry;
use crate::runtime::with_open;
use crate::sendrecv::{
    self, Comm, MAX_COMMUNICATORS_PER_LNC, MAX_PENDING_REQUESTS, Payload, Request,
};
use nrt_sys::*;
use std::ffi::{c_char, c_int};
use std::sync::Arc;

static COMMS: Registry<Arc<Comm>> = Registry::new(0x63, "send/recv communicator");
static REQUESTS: Registry<Arc<Request>> = Registry::new(0x72, "send/recv request");

/// The simulator's limit of communicators per core (16).
///
/// # Safety
///
/// `num` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_get_max_num_communicators_per_lnc(
    num: *mut c_int,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard(
        "nrt_async_sendrecv_get_max_num_communicators_per_lnc",
        || unsafe { put(num, "num", MAX_COMMUNICATORS_PER_LNC as c_int) },
    )
}

/// The simulator's limit of pending requests per communicator (64).
///
/// # Safety
///
/// `num` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_get_max_num_pending_request(
    num: *mut c_int,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard(
        "nrt_async_sendrecv_get_max_num_pending_request",
        || unsafe { put(num, "num", MAX_PENDING_REQUESTS as c_int) },
    )
}

/// Starts send/recv on core `lnc` (listening on `NRT_SIM_SENDRECV_PORT + lnc` of the
/// loopback); needs the runtime open; a second init -> `NRT_FAILURE`.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_init(lnc: c_int) -> NRT_STATUS {
    guard("nrt_async_sendrecv_init", || {
        with_open(|_| Ok(()))?;
        sendrecv::init(lnc)
    })
}

/// Ends send/recv on core `lnc`: every communicator and request of it is gone
/// afterwards. Refused (`NRT_FAILURE`) while a communicator is unconnected or has
/// requests in flight, or when `lnc` was not initialised.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_close(lnc: c_int) -> NRT_STATUS {
    guard("nrt_async_sendrecv_close", || sendrecv::close(lnc))
}

/// # Safety
///
/// As the exported functions: `peer_ip` NULL or NUL-terminated, `out` NULL or writable.
unsafe fn make_comm(
    peer_ip: *const c_char,
    peer_lnc: c_int,
    lnc: c_int,
    out: *mut *mut nrt_async_sendrecv_comm_t,
    send: bool,
) -> Res<()> {
    with_open(|_| Ok(()))?;
    // SAFETY: forwarded from the caller.
    let ip = String::from_utf8_lossy(unsafe { c_bytes(peer_ip, "peer_ip") }?).into_owned();
    if out.is_null() {
        return fail(NRT_INVALID, "the communicator out-pointer is NULL");
    }
    let comm = sendrecv::communicator(&ip, peer_lnc, lnc, send)?;
    let token = COMMS.insert(comm)?;
    // SAFETY: non-null and writable (caller).
    unsafe { put(out, "comm", token) }
}

/// A send communicator from core `lnc` to core `peer_lnc` at `peer_ip` (loopback only;
/// another address -> `NRT_FAILURE`); connects in the background (`test_comm`).
///
/// # Safety
///
/// `peer_ip` must be NULL or NUL-terminated; `send_comm` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_connect(
    peer_ip: *const c_char,
    peer_lnc: c_int,
    lnc: c_int,
    send_comm: *mut *mut nrt_async_sendrecv_comm_t,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_async_sendrecv_connect", || unsafe {
        make_comm(peer_ip, peer_lnc, lnc, send_comm, true)
    })
}

/// A receive communicator of core `lnc` for core `peer_lnc` at `peer_ip`; connected
/// once that peer's send communicator reached this core (`test_comm`).
///
/// # Safety
///
/// `peer_ip` must be NULL or NUL-terminated; `recv_comm` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_accept(
    peer_ip: *const c_char,
    peer_lnc: c_int,
    lnc: c_int,
    recv_comm: *mut *mut nrt_async_sendrecv_comm_t,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_async_sendrecv_accept", || unsafe {
        make_comm(peer_ip, peer_lnc, lnc, recv_comm, false)
    })
}

/// `*done`: whether the communicator is connected (`NRT_TIMEOUT` once it gave up).
///
/// # Safety
///
/// `done` must be NULL or writable; the token is checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_test_comm(
    comm: *mut nrt_async_sendrecv_comm_t,
    done: *mut bool,
) -> NRT_STATUS {
    guard("nrt_async_sendrecv_test_comm", || {
        if done.is_null() {
            return fail(NRT_INVALID, "done is NULL");
        }
        let comm = COMMS.with(comm, "comm", |c| Ok(c.clone()))?;
        let up = sendrecv::test_comm(&comm)?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(done, "done", up) }
    })
}

/// # Safety
///
/// `request` NULL or writable.
unsafe fn start(
    tensor: *mut nrt_tensor_t,
    offset: usize,
    length: usize,
    comm: *mut nrt_async_sendrecv_comm_t,
    request: *mut *mut nrt_async_sendrecv_request_t,
    send: bool,
) -> Res<()> {
    if request.is_null() {
        return fail(NRT_INVALID, "request is NULL");
    }
    let comm = COMMS.with(comm, "comm", |c| Ok(c.clone()))?;
    let t = with_open(|rt| rt.sync_tensor(tensor))?;
    t.tensor.check_range(
        if send { "send" } else { "recv" },
        offset as u64,
        length as u64,
    )?;
    let payload = if send {
        let mut bytes = vec![0u8; length];
        // SAFETY: `bytes` holds `length` writable bytes; the range is checked.
        unsafe { t.read(bytes.as_mut_ptr(), offset, length) }?;
        Payload::Send(bytes)
    } else {
        Payload::Recv(
            length,
            Box::new(move |bytes: &[u8]| {
                // SAFETY: `bytes` holds bytes.len() <= length readable bytes; the range
                // [offset, offset + length) of the tensor was checked.
                unsafe { t.write(bytes.as_ptr(), offset, bytes.len()) }
            }),
        )
    };
    let req = sendrecv::submit(&comm, payload)?;
    let token = REQUESTS.insert(req)?;
    // SAFETY: non-null and writable (caller).
    unsafe { put(request, "request", token) }
}

/// Starts sending `length` bytes at `offset` of `tensor` (copied at the call) on a
/// connected send communicator; non-blocking.
///
/// # Safety
///
/// `request` must be NULL or writable; handles are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_send_tensor(
    tensor: *mut nrt_tensor_t,
    offset: usize,
    length: usize,
    send_comm: *mut nrt_async_sendrecv_comm_t,
    request: *mut *mut nrt_async_sendrecv_request_t,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_async_sendrecv_send_tensor", || unsafe {
        start(tensor, offset, length, send_comm, request, true)
    })
}

/// Starts receiving at most `length` bytes into `tensor` at `offset` on a connected
/// receive communicator; non-blocking. A larger message fails the request.
///
/// # Safety
///
/// `request` must be NULL or writable; handles are checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_recv_tensor(
    tensor: *mut nrt_tensor_t,
    offset: usize,
    length: usize,
    recv_comm: *mut nrt_async_sendrecv_comm_t,
    request: *mut *mut nrt_async_sendrecv_request_t,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_async_sendrecv_recv_tensor", || unsafe {
        start(tensor, offset, length, recv_comm, request, false)
    })
}

/// `*done`: whether the request completed, and then `*size` the bytes moved; the
/// request is freed by the call that reports it done (its failure status is returned
/// then).
///
/// # Safety
///
/// `done` and `size` must be NULL or writable; the token is checked.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_test_request(
    request: *mut nrt_async_sendrecv_request_t,
    done: *mut bool,
    size: *mut usize,
) -> NRT_STATUS {
    guard("nrt_async_sendrecv_test_request", || {
        if done.is_null() || size.is_null() {
            return fail(
                NRT_INVALID,
                format!("done {done:p} / size {size:p} is NULL"),
            );
        }
        let req = REQUESTS.with(request, "request", |r| Ok(r.clone()))?;
        let outcome = req.poll();
        if outcome.is_some() {
            REQUESTS.remove(request, "request")?;
        }
        // SAFETY: non-null and writable (caller).
        unsafe {
            put(done, "done", outcome.is_some())?;
            put(size, "size", outcome.map_or(0, |o| o.1))?;
        }
        match outcome {
            Some((status, _)) if status != NRT_SUCCESS => fail(
                status,
                format!(
                    "the request failed: {}",
                    req.reason().as_deref().unwrap_or("no reason recorded")
                ),
            ),
            _ => Ok(()),
        }
    })
}

/// Completed receives are already in memory (host memory stands in for the device):
/// succeeds on an initialised core.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_flush(lnc: c_int) -> NRT_STATUS {
    guard("nrt_async_sendrecv_flush", || {
        if !sendrecv::initialised(lnc) {
            return fail(
                NRT_FAILURE,
                format!("send/recv of core {lnc} is not initialised"),
            );
        }
        Ok(())
    })
}
