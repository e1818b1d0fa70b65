//! Stubs (replaced family by family).

use super::args::{guard, not_simulated};
use nrt_sys::*;

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_accept(
    peer_ip: *const std::ffi::c_char,
    peer_lnc: std::ffi::c_int,
    lnc: std::ffi::c_int,
    recv_comm: *mut *mut nrt_async_sendrecv_comm_t,
) -> NRT_STATUS {
    let _ = (peer_ip, peer_lnc, lnc, recv_comm);
    guard("nrt_async_sendrecv_accept", || {
        not_simulated("nrt_async_sendrecv_accept")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_close(lnc: std::ffi::c_int) -> NRT_STATUS {
    let _ = (lnc,);
    guard("nrt_async_sendrecv_close", || {
        not_simulated("nrt_async_sendrecv_close")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_connect(
    peer_ip: *const std::ffi::c_char,
    peer_lnc: std::ffi::c_int,
    lnc: std::ffi::c_int,
    send_comm: *mut *mut nrt_async_sendrecv_comm_t,
) -> NRT_STATUS {
    let _ = (peer_ip, peer_lnc, lnc, send_comm);
    guard("nrt_async_sendrecv_connect", || {
        not_simulated("nrt_async_sendrecv_connect")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_flush(lnc: std::ffi::c_int) -> NRT_STATUS {
    let _ = (lnc,);
    guard("nrt_async_sendrecv_flush", || {
        not_simulated("nrt_async_sendrecv_flush")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_get_max_num_communicators_per_lnc(
    num: *mut std::ffi::c_int,
) -> NRT_STATUS {
    let _ = (num,);
    guard(
        "nrt_async_sendrecv_get_max_num_communicators_per_lnc",
        || not_simulated("nrt_async_sendrecv_get_max_num_communicators_per_lnc"),
    )
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_get_max_num_pending_request(
    num: *mut std::ffi::c_int,
) -> NRT_STATUS {
    let _ = (num,);
    guard("nrt_async_sendrecv_get_max_num_pending_request", || {
        not_simulated("nrt_async_sendrecv_get_max_num_pending_request")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_init(lnc: std::ffi::c_int) -> NRT_STATUS {
    let _ = (lnc,);
    guard("nrt_async_sendrecv_init", || {
        not_simulated("nrt_async_sendrecv_init")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_recv_tensor(
    tensor: *mut nrt_tensor_t,
    offset: usize,
    length: usize,
    recv_comm: *mut nrt_async_sendrecv_comm_t,
    request: *mut *mut nrt_async_sendrecv_request_t,
) -> NRT_STATUS {
    let _ = (tensor, offset, length, recv_comm, request);
    guard("nrt_async_sendrecv_recv_tensor", || {
        not_simulated("nrt_async_sendrecv_recv_tensor")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_send_tensor(
    tensor: *mut nrt_tensor_t,
    offset: usize,
    length: usize,
    send_comm: *mut nrt_async_sendrecv_comm_t,
    request: *mut *mut nrt_async_sendrecv_request_t,
) -> NRT_STATUS {
    let _ = (tensor, offset, length, send_comm, request);
    guard("nrt_async_sendrecv_send_tensor", || {
        not_simulated("nrt_async_sendrecv_send_tensor")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_test_comm(
    comm: *mut nrt_async_sendrecv_comm_t,
    done: *mut bool,
) -> NRT_STATUS {
    let _ = (comm, done);
    guard("nrt_async_sendrecv_test_comm", || {
        not_simulated("nrt_async_sendrecv_test_comm")
    })
}

/// Not simulated yet.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_async_sendrecv_test_request(
    request: *mut nrt_async_sendrecv_request_t,
    done: *mut bool,
    size: *mut usize,
) -> NRT_STATUS {
    let _ = (request, done, size);
    guard("nrt_async_sendrecv_test_request", || {
        not_simulated("nrt_async_sendrecv_test_request")
    })
}
