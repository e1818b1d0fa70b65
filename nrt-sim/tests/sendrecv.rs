//! Send/recv between two simulated runtimes in one process (the in-process rlib and the
//! `dlopen`ed cdylib: separate state) over TCP on 127.0.0.1, with polled requests.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::ffi::CString;
use std::time::{Duration, Instant};

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} timed out"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_tensor_range_moves_between_two_runtimes_over_the_loopback() {
    let port = free_port_pair();
    // SAFETY: the only test of this binary; no other thread reads the environment now.
    unsafe { std::env::set_var("NRT_SIM_SENDRECV_PORT", port.to_string()) };
    let _s = Session::new();
    let other = nrt_sys::Library::open(nrt_sim::cdylib_path().expect("libnrt_sim.so")).unwrap();
    let f = other.fns();
    let ip = CString::new("127.0.0.1").unwrap();
    // SAFETY: every call below passes valid pointers; handles come from the library
    // they are given to.
    unsafe {
        assert_eq!(
            f.nrt_init.unwrap()(NRT_FRAMEWORK_TYPE_NO_FW, std::ptr::null(), std::ptr::null()),
            NRT_SUCCESS
        );
        // Receiver: the cdylib's core 1. Sender: the rlib's core 0.
        let mut dst = std::ptr::null_mut();
        assert_eq!(
            f.nrt_tensor_allocate.unwrap()(
                NRT_TENSOR_PLACEMENT_DEVICE,
                1,
                64,
                std::ptr::null(),
                &mut dst
            ),
            NRT_SUCCESS
        );
        let src = alloc(0, 64, "kv");
        let bytes: Vec<u8> = (100..164).collect();
        assert_eq!(write(src, 0, &bytes), NRT_SUCCESS);

        let mut max = 0;
        assert_eq!(
            nrt_async_sendrecv_get_max_num_pending_request(&mut max),
            NRT_SUCCESS
        );
        assert!(max > 0);
        let mut comm = std::ptr::null_mut();
        assert_eq!(
            nrt_async_sendrecv_connect(ip.as_ptr(), 1, 0, &mut comm),
            NRT_INVALID,
            "no init"
        );
        assert_eq!(f.nrt_async_sendrecv_init.unwrap()(1), NRT_SUCCESS);
        assert_eq!(nrt_async_sendrecv_init(0), NRT_SUCCESS);
        assert_eq!(nrt_async_sendrecv_init(0), NRT_FAILURE, "twice");
        let (mut rx, mut tx) = (std::ptr::null_mut(), std::ptr::null_mut());
        assert_eq!(
            f.nrt_async_sendrecv_accept.unwrap()(ip.as_ptr(), 0, 1, &mut rx),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_async_sendrecv_connect(ip.as_ptr(), 1, 0, &mut tx),
            NRT_SUCCESS
        );
        let far = CString::new("10.1.2.3").unwrap();
        assert_eq!(
            nrt_async_sendrecv_connect(far.as_ptr(), 1, 0, &mut comm),
            NRT_FAILURE
        );
        let mut up = false;
        until("the send side", || {
            assert_eq!(nrt_async_sendrecv_test_comm(tx, &mut up), NRT_SUCCESS);
            up
        });
        until("the receive side", || {
            assert_eq!(
                f.nrt_async_sendrecv_test_comm.unwrap()(rx, &mut up),
                NRT_SUCCESS
            );
            up
        });
        // Receive 32 bytes at offset 16 of dst, from bytes 8..40 of src.
        let (mut rreq, mut sreq) = (std::ptr::null_mut(), std::ptr::null_mut());
        assert_eq!(
            f.nrt_async_sendrecv_recv_tensor.unwrap()(dst, 16, 32, rx, &mut rreq),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_async_sendrecv_recv_tensor(src, 0, 8, tx, &mut comm.cast()),
            NRT_INVALID,
            "wrong direction"
        );
        assert_eq!(
            nrt_async_sendrecv_send_tensor(src, 8, 32, tx, &mut sreq),
            NRT_SUCCESS
        );
        let (mut done, mut size) = (false, 0usize);
        until("the send", || {
            assert_eq!(
                nrt_async_sendrecv_test_request(sreq, &mut done, &mut size),
                NRT_SUCCESS
            );
            done
        });
        assert_eq!(size, 32);
        assert_eq!(
            nrt_async_sendrecv_test_request(sreq, &mut done, &mut size),
            NRT_INVALID_HANDLE,
            "freed"
        );
        until("the receive", || {
            assert_eq!(
                f.nrt_async_sendrecv_test_request.unwrap()(rreq, &mut done, &mut size),
                NRT_SUCCESS
            );
            done
        });
        assert_eq!(size, 32);
        assert_eq!(f.nrt_async_sendrecv_flush.unwrap()(1), NRT_SUCCESS);
        let mut got = vec![0u8; 64];
        assert_eq!(
            f.nrt_tensor_read.unwrap()(dst, got.as_mut_ptr().cast(), 0, 64),
            NRT_SUCCESS
        );
        assert_eq!(&got[16..48], &bytes[8..40]);
        assert_eq!(got[..16], [0; 16]);

        assert_eq!(nrt_async_sendrecv_close(0), NRT_SUCCESS);
        assert_eq!(
            nrt_async_sendrecv_test_comm(tx, &mut up),
            NRT_INVALID_HANDLE,
            "closed"
        );
        assert_eq!(f.nrt_async_sendrecv_close.unwrap()(1), NRT_SUCCESS);
        assert_eq!(nrt_async_sendrecv_flush(0), NRT_FAILURE);
        f.nrt_tensor_free.unwrap()(&mut dst);
        f.nrt_close.unwrap()();
        free(src);
    }
}
