//! dma-buf export (a memfd over a device tensor's bytes), the debug stream's tensor-read
//! events, output completion counts and the simulated device topology.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::time::Duration;

fn device_va(t: *mut nrt_tensor_t) -> u64 {
    let mut info = nrt_tensor_device_allocation_info_t::default();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { nrt_tensor_get_device_allocation_info(t, &mut info) },
        NRT_SUCCESS
    );
    info.physical_address
}

#[test]
fn dmabuf_fd_is_a_memfd_over_the_tensor_bytes() {
    let _s = Session::new();
    let t = alloc(1, 64, "kv");
    let bytes: Vec<u8> = (0..64).collect();
    assert_eq!(write(t, 0, &bytes), NRT_SUCCESS);
    let va = device_va(t);
    let mut fd = -1;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { nrt_get_dmabuf_fd(va + 8, 16, &mut fd) },
        NRT_SUCCESS
    );
    // SAFETY: the descriptor is ours to close.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut got = Vec::new();
    file.read_to_end(&mut got).unwrap();
    assert_eq!(got, &bytes[8..24]);
    // Out of the tensor, unknown address, NULL out-pointer.
    // SAFETY: valid or NULL out-pointers.
    unsafe {
        assert_eq!(nrt_get_dmabuf_fd(va + 60, 16, &mut fd), NRT_INVALID);
        assert_eq!(nrt_get_dmabuf_fd(12345, 16, &mut fd), NRT_INVALID);
        assert_eq!(nrt_get_dmabuf_fd(va, 16, std::ptr::null_mut()), NRT_INVALID);
    }
    free(t);
}

#[test]
fn debug_stream_delivers_tensor_reads_of_its_core_to_one_client() {
    let _s = Session::new();
    let (mut fd, mut other) = (-1, -1);
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(nrt_debug_client_connect(0, &mut fd), NRT_SUCCESS);
        assert_eq!(
            nrt_debug_client_connect(0, &mut other),
            NRT_INVALID,
            "one client"
        );
        assert_eq!(
            nrt_debug_client_connect(9, &mut other),
            NRT_INVALID,
            "no such core"
        );
    }
    let readable = |fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    };
    let t0 = alloc(0, 8, "probe");
    let t1 = alloc(1, 8, "elsewhere");
    write(t0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(!readable(fd), "writes are not events");
    assert_eq!(read(t1, 0, 8).unwrap(), [0; 8]);
    assert!(!readable(fd), "core 1's reads go elsewhere");
    assert_eq!(read(t0, 2, 4).unwrap(), [3, 4, 5, 6]);
    assert!(readable(fd));
    let mut header = ndebug_stream_event_header_t::default();
    let mut payload = std::ptr::null_mut();
    // SAFETY: valid out-pointers; the payload is freed once with free().
    unsafe {
        assert_eq!(
            nrt_debug_client_read_one_event(fd, &mut header, &mut payload),
            NRT_SUCCESS
        );
        assert_eq!(header.type_, NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ);
        let p = &*payload.cast::<ndebug_stream_payload_debug_tensor_read_t>();
        assert_eq!(CStr::from_ptr(p.prefix.as_ptr()).to_str().unwrap(), "probe");
        assert_eq!(
            (p.logical_nc_id, p.tensor_data_size, p.tensor_shape[0]),
            (0, 4, 4)
        );
        assert_eq!(header.data_size as usize, std::mem::size_of_val(p) + 4);
        let data = std::slice::from_raw_parts(p.tensor_data.as_ptr().cast::<u8>(), 4);
        assert_eq!(data, [3, 4, 5, 6]);
        libc::free(payload);
        assert!(!readable(fd));
        assert_eq!(
            nrt_debug_client_read_one_event(fd, &mut header, &mut payload),
            NRT_QUEUE_EMPTY
        );
        nrt_debug_client_connect_close(fd);
        assert_eq!(
            nrt_debug_client_read_one_event(fd, &mut header, &mut payload),
            NRT_INVALID
        );
        assert_eq!(
            nrt_debug_client_connect(0, &mut fd),
            NRT_SUCCESS,
            "free again"
        );
        nrt_debug_client_connect_close(fd);
    }
    free(t0);
    free(t1);
}

#[test]
fn output_completion_counts_executions_and_times_out() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 4, Duration::ZERO);
        // SAFETY: handles checked by the simulator.
        unsafe {
            assert_eq!(
                nrt_tensor_check_output_completion(rig.out, 1000, 1),
                NRT_TIMEOUT
            );
            assert_eq!(rig.execute(), NRT_SUCCESS);
            assert_eq!(rig.execute(), NRT_SUCCESS);
            assert_eq!(
                nrt_tensor_check_output_completion(rig.out, 0, 2),
                NRT_SUCCESS
            );
            assert_eq!(
                nrt_tensor_check_output_completion(rig.out, 0, 3),
                NRT_TIMEOUT
            );
            assert_eq!(nrt_tensor_reset_output_completion(rig.out), NRT_SUCCESS);
            assert_eq!(
                nrt_tensor_check_output_completion(rig.out, 0, 1),
                NRT_TIMEOUT
            );
            assert_eq!(
                nrt_tensor_check_output_completion(rig.a, 0, 1),
                NRT_TIMEOUT,
                "an input"
            );
        }
        rig.release();
    });
}

#[test]
fn topology_is_one_device_and_unsimulated_calls_fail_with_a_reason() {
    let _s = Session::new();
    let (mut id, mut count, mut map) = (7u32, 4u32, [9u32; 4]);
    // SAFETY: valid out-pointers (map has room for `count` entries).
    unsafe {
        assert_eq!(nrt_host_device_id_get(0, &mut id), NRT_SUCCESS);
        assert_eq!(id, 0);
        assert_eq!(nrt_host_device_id_get(1, &mut id), NRT_INVALID);
        assert_eq!(
            nrt_host_device_id_rid_map_get(&mut count, map.as_mut_ptr()),
            NRT_SUCCESS
        );
        assert_eq!((count, map[0]), (1, 0));
        let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
        assert_eq!(nrt_get_hbm_mmap_va(0, 0, &mut addr, &mut size), NRT_INVALID);
        assert!(last_error().contains("not supported"), "{}", last_error());
        assert_eq!(nrt_trace_start(false), NRT_FAILURE);
        assert!(last_error().contains("not simulated"), "{}", last_error());
        let mut err = 0;
        let mut msg = [0 as std::ffi::c_char; 64];
        assert!(nrt_get_libnccl_net(&mut err, msg.as_mut_ptr(), msg.len()).is_null());
        assert_eq!(err, 1);
        assert!(
            CStr::from_ptr(msg.as_ptr())
                .to_str()
                .unwrap()
                .contains("nrt-sim")
        );
    }
}
