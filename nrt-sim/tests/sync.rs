//! Synchronous API behaviour and error paths, through the exported C functions of the
//! in-process simulator.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sim::{DType, ModelBuilder, Op};
use nrt_sys::*;
use std::ffi::CStr;
use std::time::{Duration, Instant};

#[test]
fn version_instance_info_and_status_strings() {
    let _s = Session::new();
    let mut ver = nrt_version_t::default();
    // SAFETY: `ver` is writable for its size.
    assert_eq!(
        unsafe { nrt_get_version(&mut ver, std::mem::size_of::<nrt_version_t>()) },
        NRT_SUCCESS
    );
    assert_eq!(
        (ver.rt_major, ver.rt_minor, ver.rt_patch, ver.rt_maintenance),
        (2, 34, 10, 0)
    );
    // SAFETY: rt_detail is NUL-terminated by the simulator.
    let detail = unsafe { CStr::from_ptr(ver.rt_detail.as_ptr()) };
    assert!(detail.to_str().unwrap().contains("nrt-sim"));
    // A short size writes only that prefix.
    let mut short = nrt_version_t::default();
    // SAFETY: writable for 8 bytes.
    assert_eq!(unsafe { nrt_get_version(&mut short, 8) }, NRT_SUCCESS);
    assert_eq!((short.rt_major, short.rt_minor), (2, 0));
    // SAFETY: NULL is rejected.
    assert_eq!(
        unsafe { nrt_get_version(std::ptr::null_mut(), 224) },
        NRT_INVALID
    );

    let mut info = nrt_instance_info_t::default();
    // SAFETY: writable for its size.
    assert_eq!(
        unsafe { nrt_get_instance_info(&mut info, std::mem::size_of::<nrt_instance_info_t>()) },
        NRT_SUCCESS
    );
    assert_eq!(info.family, NRT_INSTANCE_INF2);
    assert_eq!(info.size, NRT_INSTANCE_SIZE_1XL);
    // SAFETY: NUL-terminated by the simulator.
    let arch = unsafe { CStr::from_ptr(info.arch_name.as_ptr()) };
    assert_eq!(arch.to_str().unwrap(), "nrt-sim");

    assert_eq!(status_str(NRT_SUCCESS), "success");
    assert_eq!(status_str(NRT_QUEUE_FULL), "execution queue is full");
    assert_eq!(
        status_str(NRT_EXEC_COMPLETED_WITH_NUM_ERR),
        "execution completed with numerical errors"
    );
    assert_eq!(status_str(777), "unknown status code");
}

#[test]
fn tensor_write_read_memset_and_size() {
    let _s = Session::new();
    for t in [alloc(0, 16, "dev"), alloc_host(16, "host")] {
        assert_eq!(
            read(t, 0, 16).unwrap(),
            vec![0; 16],
            "fresh tensors are zeroed"
        );
        assert_eq!(write(t, 4, &[1, 2, 3, 4]), NRT_SUCCESS);
        assert_eq!(read(t, 2, 8).unwrap(), vec![0, 0, 1, 2, 3, 4, 0, 0]);
        // SAFETY: handle checked by the simulator.
        assert_eq!(unsafe { nrt_tensor_memset(t, 10, 0x1ff, 6) }, NRT_SUCCESS);
        assert_eq!(
            read(t, 8, 8).unwrap(),
            vec![0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        // SAFETY: handle checked by the simulator.
        assert_eq!(unsafe { nrt_tensor_get_size(t) }, 16);
        // Size 0 at the very end is fine.
        assert_eq!(read(t, 16, 0).unwrap(), Vec::<u8>::new());
        free(t);
    }
}

#[test]
fn out_of_range_accesses_are_invalid_and_logged_with_the_numbers() {
    let _s = Session::new();
    let t = alloc(0, 16, "weights");
    assert_eq!(write(t, 10, &[0; 8]), NRT_INVALID);
    let e = last_error();
    assert!(
        e.contains("offset 10 + size 8") && e.contains("16 bytes") && e.contains("'weights'"),
        "{e}"
    );
    assert_eq!(read(t, 17, 0), Err(NRT_INVALID));
    // Overflowing offset + size is caught, not wrapped.
    let mut byte = 0u8;
    // SAFETY: `byte` is writable for 1 byte; the range is rejected before any copy.
    let status = unsafe { nrt_tensor_read(t, (&raw mut byte).cast(), usize::MAX, 2) };
    assert_eq!(status, NRT_INVALID);
    assert!(last_error().contains(&format!("offset {}", usize::MAX)));
    // SAFETY: handle checked; range rejected.
    assert_eq!(unsafe { nrt_tensor_memset(t, u64::MAX, 0, 1) }, NRT_INVALID);
    // NULL buffer with a size.
    // SAFETY: NULL is rejected before use.
    assert_eq!(
        unsafe { nrt_tensor_write(t, std::ptr::null(), 0, 4) },
        NRT_INVALID
    );
    free(t);
}

#[test]
fn bad_handles_are_rejected_without_crashing() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    let stale = t;
    free(t);
    assert_eq!(write(stale, 0, &[1]), NRT_INVALID_HANDLE);
    assert!(last_error().contains("was freed"), "{}", last_error());
    // Freeing again: logged, the handle is left alone.
    let mut again = stale;
    // SAFETY: valid pointer to a (stale) handle.
    unsafe { nrt_tensor_free(&mut again) };
    assert_eq!(again, stale);
    // NULL and garbage.
    assert_eq!(write(std::ptr::null_mut(), 0, &[1]), NRT_INVALID);
    let garbage = 0xdead_beef_usize as *mut nrt_tensor_t;
    assert_eq!(write(garbage, 0, &[1]), NRT_INVALID_HANDLE);
    assert!(last_error().contains("not a tensor handle"));
    // A tensor set handle is not a tensor handle.
    let s = new_set();
    assert_eq!(write(s.cast(), 0, &[1]), NRT_INVALID_HANDLE);
    destroy_set(s);
    // SAFETY: NULL pointer-to-handle is logged and ignored.
    unsafe { nrt_tensor_free(std::ptr::null_mut()) };
    // SAFETY: returns 0 for a bad handle.
    assert_eq!(unsafe { nrt_tensor_get_size(stale) }, 0);
}

#[test]
fn allocation_arguments_are_checked() {
    let _s = Session::new();
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 0, 0, "empty"),
        Err(NRT_INVALID)
    );
    assert!(last_error().contains("size 0"));
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 2, 8, "x"),
        Err(NRT_INVALID)
    );
    assert!(
        last_error().contains("vnc 2 is not a visible core (0 to 1)"),
        "{}",
        last_error()
    );
    assert_eq!(try_alloc(7, 0, 8, "x"), Err(NRT_INVALID));
    // NULL out-pointer.
    // SAFETY: NULL is rejected.
    let status = unsafe {
        nrt_tensor_allocate(
            NRT_TENSOR_PLACEMENT_HOST,
            -1,
            8,
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, NRT_INVALID);
    // (A host allocation the machine cannot hold: tests/virtual_placement.rs.)
    // More than the core's device memory (1 GiB by default).
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 1, (1 << 30) + 1, "big"),
        Err(NRT_RESOURCE)
    );
    assert!(
        last_error().contains("core 1 has 1073741824 of 1073741824 device bytes free"),
        "{}",
        last_error()
    );
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn memory_stats_and_counters_follow_allocations() {
    let _s = Session::new();
    let stats = |vnc| {
        let mut st = nrt_vnc_memory_stats_t::default();
        let mut out = 0usize;
        // SAFETY: writable struct and size slot.
        let status =
            unsafe { nrt_get_vnc_memory_stats(vnc, &mut st, std::mem::size_of_val(&st), &mut out) };
        assert_eq!(status, NRT_SUCCESS);
        assert_eq!(out, 16);
        (st.bytes_used, st.bytes_limit)
    };
    assert_eq!(stats(1), (0, 1 << 30));
    let t = alloc(1, 1000, "t");
    let slice = {
        let mut s = std::ptr::null_mut();
        // SAFETY: valid handle and out-pointer.
        assert_eq!(
            unsafe { nrt_tensor_allocate_slice(t, 100, 200, std::ptr::null(), &mut s) },
            NRT_SUCCESS
        );
        s
    };
    let h = alloc_host(50, "h");
    let set = new_set();
    assert_eq!(stats(1), (1000, 1 << 30), "slices take no extra memory");
    let c = counters();
    assert_eq!(c.cores[1].tensors, 2);
    assert_eq!(c.cores[1].device_bytes, 1000);
    assert_eq!((c.host_tensors, c.host_bytes, c.tensor_sets), (1, 50, 1));
    assert_eq!(c.live_objects(), 4);
    // SAFETY: NULL stats rejected; bad core rejected.
    assert_eq!(
        unsafe { nrt_get_vnc_memory_stats(0, std::ptr::null_mut(), 16, std::ptr::null_mut()) },
        NRT_INVALID
    );
    let mut st = nrt_vnc_memory_stats_t::default();
    // SAFETY: writable.
    assert_eq!(
        unsafe { nrt_get_vnc_memory_stats(2, &mut st, 16, std::ptr::null_mut()) },
        NRT_INVALID
    );
    destroy_set(set);
    free(slice);
    free(t);
    free(h);
    assert_eq!(stats(1), (0, 1 << 30));
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn copies_within_a_core_and_via_host_work_but_not_across_cores() {
    let _s = Session::new();
    let a = alloc(0, 8, "a");
    let b = alloc(0, 8, "b");
    let other = alloc(1, 8, "other");
    let host = alloc_host(8, "host");
    assert_eq!(write(a, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), NRT_SUCCESS);
    // SAFETY: handles checked by the simulator.
    unsafe {
        assert_eq!(nrt_tensor_copy(a, 2, b, 0, 4), NRT_SUCCESS);
        assert_eq!(read(b, 0, 4).unwrap(), vec![3, 4, 5, 6]);
        assert_eq!(nrt_tensor_copy(a, 0, other, 0, 8), NRT_INVALID);
        assert!(
            last_error().contains("from core 0 to core 1"),
            "{}",
            last_error()
        );
        assert_eq!(nrt_tensor_copy(a, 0, host, 0, 8), NRT_SUCCESS);
        assert_eq!(nrt_tensor_copy(host, 0, other, 0, 8), NRT_SUCCESS);
        assert_eq!(read(other, 0, 8).unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(nrt_tensor_copy(a, 4, b, 0, 5), NRT_INVALID);
        assert!(last_error().contains("copy source: offset 4 + size 5"));
        assert_eq!(nrt_tensor_copy(a, 0, b, 6, 4), NRT_INVALID);
        assert!(last_error().contains("copy destination: offset 6 + size 4"));
        // Overlapping copy within one tensor behaves like memmove.
        assert_eq!(nrt_tensor_copy(a, 0, a, 2, 6), NRT_SUCCESS);
        assert_eq!(read(a, 0, 8).unwrap(), vec![1, 2, 1, 2, 3, 4, 5, 6]);
    }
    for t in [a, b, other, host] {
        free(t);
    }
}

#[test]
fn slices_are_views_and_keep_their_storage_alive() {
    let _s = Session::new();
    let base = alloc(0, 16, "base");
    let mut slice = std::ptr::null_mut();
    // SAFETY: valid handle, name and out-pointer.
    unsafe {
        assert_eq!(
            nrt_tensor_allocate_slice(base, 4, 8, c"view".as_ptr(), &mut slice),
            NRT_SUCCESS
        );
        assert_eq!(nrt_tensor_get_size(slice), 8);
    }
    assert_eq!(write(slice, 0, &[9, 9]), NRT_SUCCESS);
    assert_eq!(read(base, 4, 2).unwrap(), vec![9, 9]);
    assert_eq!(write(base, 10, &[5]), NRT_SUCCESS);
    assert_eq!(read(slice, 6, 1).unwrap(), vec![5]);
    assert_eq!(
        write(slice, 7, &[1, 1]),
        NRT_INVALID,
        "a slice is bounded by its own size"
    );
    // A slice of a slice, and a slice out of range.
    let mut inner = std::ptr::null_mut();
    let mut bad = std::ptr::null_mut();
    // SAFETY: valid handles and out-pointers.
    unsafe {
        assert_eq!(
            nrt_tensor_allocate_slice(slice, 2, 2, std::ptr::null(), &mut inner),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_tensor_allocate_slice(base, 12, 8, std::ptr::null(), &mut bad),
            NRT_INVALID
        );
    }
    assert!(
        last_error().contains("slice: offset 12 + size 8"),
        "{}",
        last_error()
    );
    assert_eq!(read(inner, 0, 2).unwrap(), vec![0, 0]);
    assert_eq!(write(inner, 0, &[3]), NRT_SUCCESS);
    assert_eq!(read(base, 6, 1).unwrap(), vec![3]);
    // The runtime documents slice storage as reference counted: freeing the source
    // leaves its slices usable, and the device bytes stay in use until the last goes.
    free(base);
    assert_eq!(read(slice, 0, 2).unwrap(), vec![9, 9]);
    assert_eq!(write(inner, 1, &[4]), NRT_SUCCESS);
    assert_eq!(read(slice, 3, 1).unwrap(), vec![4]);
    assert_eq!(counters().cores[0].tensors, 2);
    assert_eq!(counters().cores[0].device_bytes, 16);
    free(inner);
    assert_eq!(counters().cores[0].device_bytes, 16);
    free(slice);
    assert_eq!(counters().cores[0].device_bytes, 0);
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn empty_tensors_take_attached_buffers_and_expose_host_addresses() {
    let _s = Session::new();
    let mut t = std::ptr::null_mut();
    // SAFETY: valid name and out-pointer.
    assert_eq!(
        unsafe { nrt_tensor_allocate_empty(c"user".as_ptr(), &mut t) },
        NRT_SUCCESS
    );
    // SAFETY: handle checked.
    assert_eq!(unsafe { nrt_tensor_get_size(t) }, 0);
    assert_eq!(read(t, 0, 0), Err(NRT_INVALID), "no memory before attach");
    assert!(last_error().contains("has no memory"));
    let mut storage = vec![0u8; 32];
    // SAFETY: `storage` outlives the tensor (freed below before `storage` drops).
    unsafe {
        assert_eq!(
            nrt_tensor_attach_buffer(t, storage.as_mut_ptr().cast(), 32),
            NRT_SUCCESS
        );
        assert_eq!(nrt_tensor_get_size(t), 32);
        assert_eq!(nrt_tensor_get_va(t), storage.as_mut_ptr().cast());
        assert_eq!(
            nrt_tensor_attach_buffer(t, std::ptr::null_mut(), 8),
            NRT_INVALID
        );
    }
    assert_eq!(write(t, 30, &[4, 2]), NRT_SUCCESS);
    free(t);
    assert_eq!(&storage[30..], &[4, 2]);

    // Device memory has no host address; HOST memory has one.
    let dev = alloc(0, 8, "dev");
    let host = alloc_host(8, "host");
    // SAFETY: handles checked; the host address is valid for the tensor's 8 bytes.
    unsafe {
        assert!(nrt_tensor_get_va(dev).is_null());
        assert!(last_error().contains("no host address"), "{}", last_error());
        let va = nrt_tensor_get_va(host).cast::<u8>();
        assert!(!va.is_null());
        va.add(3).write(77);
    }
    assert_eq!(read(host, 3, 1).unwrap(), vec![77]);
    free(dev);
    free(host);
}

#[test]
fn host_placement_is_limited_to_4_mib() {
    // HOST (pinned) tensors are documented as one page of at most 4 MB.
    let _s = Session::new();
    let max = 4 << 20;
    let t = try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, max, "max").unwrap();
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, max + 1, "over"),
        Err(NRT_RESOURCE)
    );
    assert!(
        last_error().contains("4194305 bytes of HOST"),
        "{}",
        last_error()
    );
    free(t);
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn attach_buffer_replaces_any_storage_and_makes_the_tensor_virtual() {
    // The runtime documents: previous storage is detached (freed if owned), and the
    // placement becomes VIRTUAL whatever it was.
    let _s = Session::new();
    let dev = alloc(1, 16, "dev");
    assert_eq!(write(dev, 0, &[1; 16]), NRT_SUCCESS);
    let mut view = std::ptr::null_mut();
    // SAFETY: valid handle, name and out-pointer.
    unsafe {
        assert_eq!(
            nrt_tensor_allocate_slice(dev, 8, 8, c"view".as_ptr(), &mut view),
            NRT_SUCCESS
        );
    }
    let mut mine = vec![5u8; 4];
    // SAFETY: `mine` outlives the tensor (freed below before `mine` drops).
    unsafe {
        assert_eq!(
            nrt_tensor_attach_buffer(dev, mine.as_mut_ptr().cast(), 4),
            NRT_SUCCESS
        );
        assert_eq!(nrt_tensor_get_size(dev), 4);
        assert_eq!(nrt_tensor_get_va(dev), mine.as_mut_ptr().cast());
    }
    assert_eq!(read(dev, 0, 4).unwrap(), vec![5; 4]);
    // The old device storage lives on for the slice (and stays counted) ...
    assert_eq!(read(view, 0, 8).unwrap(), vec![1; 8]);
    let c = counters();
    assert_eq!((c.cores[1].tensors, c.cores[1].device_bytes), (1, 16));
    assert_eq!(c.host_tensors, 1);
    // ... until the slice goes.
    free(view);
    assert_eq!(counters().cores[1].device_bytes, 0);
    // A HOST tensor takes a buffer too; its own memory is released.
    let host = alloc_host(8, "host");
    assert_eq!(counters().host_bytes, 8);
    let mut other = [0u8; 8];
    // SAFETY: `other` outlives the tensor.
    assert_eq!(
        unsafe { nrt_tensor_attach_buffer(host, other.as_mut_ptr().cast(), 8) },
        NRT_SUCCESS
    );
    assert_eq!(counters().host_bytes, 0);
    assert_eq!(write(host, 7, &[9]), NRT_SUCCESS);
    // A tensor now in host memory can no longer be used as device memory.
    let mut info = nrt_tensor_device_allocation_info_t::default();
    // SAFETY: handle checked; `info` is writable.
    assert_eq!(
        unsafe { nrt_tensor_get_device_allocation_info(dev, &mut info) },
        NRT_INVALID
    );
    free(host);
    free(dev);
    assert_eq!(other[7], 9);
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn device_allocation_info_is_only_for_device_tensors() {
    let _s = Session::new();
    let dev = alloc(1, 64, "dev");
    let host = alloc_host(8, "host");
    let mut info = nrt_tensor_device_allocation_info_t::default();
    // SAFETY: handles checked; `info` writable.
    unsafe {
        assert_eq!(
            nrt_tensor_get_device_allocation_info(dev, &mut info),
            NRT_SUCCESS
        );
        assert_eq!(info.size, 64);
        assert_ne!(info.physical_address, 0);
        assert_eq!(
            nrt_tensor_get_device_allocation_info(host, &mut info),
            NRT_INVALID
        );
        assert_eq!(
            nrt_tensor_get_device_allocation_info(dev, std::ptr::null_mut()),
            NRT_INVALID
        );
    }
    free(dev);
    free(host);
}

#[test]
fn batch_reads_and_writes_check_every_op_first() {
    let _s = Session::new();
    let a = alloc(0, 8, "a");
    let b = alloc_host(4, "b");
    let src1 = [1u8, 2];
    let src2 = [3u8, 4, 5, 6];
    let ops_a = [
        nrt_tensor_batch_op_t {
            offset: 0,
            size: 2,
            buffer: src1.as_ptr().cast_mut().cast(),
        },
        nrt_tensor_batch_op_t {
            offset: 4,
            size: 4,
            buffer: src2.as_ptr().cast_mut().cast(),
        },
    ];
    let ops_b = [nrt_tensor_batch_op_t {
        offset: 0,
        size: 2,
        buffer: src1.as_ptr().cast_mut().cast(),
    }];
    let batches = [
        nrt_tensor_batch_t {
            tensor: a,
            ops: ops_a.as_ptr(),
            num_ops: 2,
        },
        nrt_tensor_batch_t {
            tensor: b,
            ops: ops_b.as_ptr(),
            num_ops: 1,
        },
    ];
    // SAFETY: every batch and op points at live memory of the stated size.
    unsafe {
        assert_eq!(
            nrt_tensor_write_batch(batches.as_ptr(), 2, false),
            NRT_SUCCESS
        );
    }
    assert_eq!(read(a, 0, 8).unwrap(), vec![1, 2, 0, 0, 3, 4, 5, 6]);
    assert_eq!(read(b, 0, 2).unwrap(), vec![1, 2]);
    let mut d1 = [0u8; 2];
    let mut d2 = [0u8; 4];
    let read_ops = [
        nrt_tensor_batch_op_t {
            offset: 0,
            size: 2,
            buffer: d1.as_mut_ptr().cast(),
        },
        nrt_tensor_batch_op_t {
            offset: 4,
            size: 4,
            buffer: d2.as_mut_ptr().cast(),
        },
    ];
    let rb = [nrt_tensor_batch_t {
        tensor: a,
        ops: read_ops.as_ptr(),
        num_ops: 2,
    }];
    // SAFETY: as above.
    unsafe { assert_eq!(nrt_tensor_read_batch(rb.as_ptr(), 1, true), NRT_SUCCESS) };
    assert_eq!((d1, d2), ([1, 2], [3, 4, 5, 6]));
    // One bad op (past the end of b) -> nothing is written at all.
    let bad_ops = [nrt_tensor_batch_op_t {
        offset: 3,
        size: 2,
        buffer: src1.as_ptr().cast_mut().cast(),
    }];
    let zero = [0u8; 8];
    let reset = [nrt_tensor_batch_op_t {
        offset: 0,
        size: 8,
        buffer: zero.as_ptr().cast_mut().cast(),
    }];
    let bad = [
        nrt_tensor_batch_t {
            tensor: a,
            ops: reset.as_ptr(),
            num_ops: 1,
        },
        nrt_tensor_batch_t {
            tensor: b,
            ops: bad_ops.as_ptr(),
            num_ops: 1,
        },
    ];
    // SAFETY: as above; the bad op is rejected before any copy.
    unsafe { assert_eq!(nrt_tensor_write_batch(bad.as_ptr(), 2, false), NRT_INVALID) };
    assert!(
        last_error().contains("batches[1].ops[0]: offset 3 + size 2"),
        "{}",
        last_error()
    );
    assert_eq!(
        read(a, 0, 2).unwrap(),
        vec![1, 2],
        "first batch not applied"
    );
    // SAFETY: zero batches need no pointer; NULL with a count is rejected.
    unsafe {
        assert_eq!(
            nrt_tensor_read_batch(std::ptr::null(), 0, false),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_tensor_read_batch(std::ptr::null(), 1, false),
            NRT_INVALID
        );
    }
    free(a);
    free(b);
}

#[test]
fn tensor_sets_add_replace_get_and_do_not_own_tensors() {
    let _s = Session::new();
    let set = new_set();
    let t1 = alloc(0, 4, "t1");
    let t2 = alloc(0, 4, "t2");
    assert_eq!(add(set, "x", t1), NRT_SUCCESS);
    let get = |name: &CStr| {
        let mut t = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer.
        let status = unsafe { nrt_get_tensor_from_tensor_set(set, name.as_ptr(), &mut t) };
        (status, t)
    };
    assert_eq!(get(c"x"), (NRT_SUCCESS, t1));
    assert_eq!(add(set, "x", t2), NRT_SUCCESS, "replace by name");
    assert_eq!(get(c"x"), (NRT_SUCCESS, t2));
    // Documented: an unknown name gives NRT_FAILURE and writes nothing.
    let mut untouched = t1;
    // SAFETY: valid C string and out-pointer.
    let status = unsafe { nrt_get_tensor_from_tensor_set(set, c"y".as_ptr(), &mut untouched) };
    assert_eq!((status, untouched), (NRT_FAILURE, t1));
    assert!(last_error().contains("no tensor named 'y'"));
    assert_eq!(add(set, "x", std::ptr::null_mut()), NRT_INVALID);
    // SAFETY: NULL name rejected.
    assert_eq!(
        unsafe { nrt_add_tensor_to_tensor_set(set, std::ptr::null(), t1) },
        NRT_INVALID
    );
    // Freeing a tensor the set names, then using the set's entry: detected.
    free(t2);
    assert_eq!(get(c"x").0, NRT_INVALID_HANDLE);
    // ... and destroying the set afterwards is valid.
    let stale_set = set;
    destroy_set(set);
    assert_eq!(add(stale_set, "x", t1), NRT_INVALID_HANDLE);
    let mut again = stale_set;
    // SAFETY: valid pointer to a stale handle: logged, left alone.
    unsafe { nrt_destroy_tensor_set(&mut again) };
    assert_eq!(again, stale_set);
    free(t1);
    assert_eq!(counters().live_objects(), 0);
}

fn mlp_model() -> Vec<u8> {
    ModelBuilder::new("mlp")
        .input("x", DType::F32, &[2, 3])
        .input("w", DType::F32, &[3, 2])
        .output("y", DType::F32, &[2, 2])
        .output("copy", DType::F32, &[2, 3])
        .op(Op::MatMul {
            a: "x".into(),
            b: "w".into(),
            out: "h".into(),
        })
        .op(Op::ScaleBias {
            input: "h".into(),
            scale: 0.5,
            bias: -1.0,
            out: "s".into(),
        })
        .op(Op::Relu {
            input: "s".into(),
            out: "y".into(),
        })
        .op(Op::Identity {
            input: "x".into(),
            out: "copy".into(),
        })
        .build()
        .unwrap()
}

#[test]
fn models_report_their_tensors_and_placement() {
    let _s = Session::new();
    let m = load(&mlp_model(), 1);
    let mut info = std::ptr::null_mut();
    // SAFETY: valid handle and out-pointers; the array is read within its count.
    unsafe {
        assert_eq!(nrt_get_model_tensor_info(m, &mut info), NRT_SUCCESS);
        let count = (*info).tensor_count as usize;
        assert_eq!(count, 4);
        let entries = (*info).tensor_array.as_slice(count);
        let summary: Vec<(String, u32, usize, u32, Vec<u32>)> = entries
            .iter()
            .map(|e| {
                (
                    CStr::from_ptr(e.name.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                    e.usage,
                    e.size,
                    e.dtype,
                    std::slice::from_raw_parts(e.shape, e.ndim as usize).to_vec(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "x".into(),
                    NRT_TENSOR_USAGE_INPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 3]
                ),
                (
                    "w".into(),
                    NRT_TENSOR_USAGE_INPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![3, 2]
                ),
                (
                    "y".into(),
                    NRT_TENSOR_USAGE_OUTPUT,
                    16,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 2]
                ),
                (
                    "copy".into(),
                    NRT_TENSOR_USAGE_OUTPUT,
                    24,
                    NRT_DTYPE_FLOAT32,
                    vec![2, 3]
                ),
            ]
        );
        assert_eq!(nrt_free_model_tensor_info(info), NRT_SUCCESS);
        assert_eq!(
            nrt_free_model_tensor_info(info),
            NRT_INVALID,
            "double free is caught"
        );
        assert_eq!(
            nrt_free_model_tensor_info(std::ptr::null_mut()),
            NRT_INVALID
        );

        let mut mi = nrt_model_info_t::default();
        let mut written = 0;
        assert_eq!(nrt_get_model_info(m, &mut mi, 4, &mut written), NRT_SUCCESS);
        assert_eq!((mi.vnc, written), (1, 4));
        let mut n = 0;
        assert_eq!(nrt_get_model_vnc_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(n, 1);
        assert_eq!(nrt_get_model_nc_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(nrt_get_model_instance_count(m, &mut n), NRT_SUCCESS);
        assert_eq!(n, 1);
    }
    let c = counters();
    assert_eq!(c.cores[1].models, 1);
    assert!(
        c.cores[1].device_bytes > 1024,
        "the model occupies its file size"
    );
    unload(m);
    // SAFETY: stale handle checked.
    assert_eq!(unsafe { nrt_unload(m) }, NRT_INVALID_HANDLE);
    assert_eq!(counters().cores[1].device_bytes, 0);
}

#[test]
fn load_picks_a_core_and_rejects_bad_files() {
    let _s = Session::new();
    let file = add_model(4, Duration::ZERO);
    let m = load(&file, -1);
    let mut mi = nrt_model_info_t::default();
    // SAFETY: writable info; NULL size-out allowed.
    unsafe {
        assert_eq!(
            nrt_get_model_info(m, &mut mi, 4, std::ptr::null_mut()),
            NRT_SUCCESS
        )
    };
    assert_eq!(mi.vnc, 0, "-1 picks the first core with room");
    assert_eq!(try_load(&file, 2), Err(NRT_LOAD_NOT_ENOUGH_NC));
    assert!(last_error().contains("only 2 core(s) are visible"));
    assert_eq!(try_load(&file, -5), Err(NRT_INVALID));
    // Corrupted payload (hash), truncated file, other packaging version.
    let mut corrupt = file.clone();
    *corrupt.last_mut().unwrap() ^= 1;
    assert_eq!(try_load(&corrupt, 0), Err(NRT_INVALID));
    assert!(last_error().contains("SHA-256"));
    assert_eq!(try_load(&file[..file.len() - 1], 0), Err(NRT_INVALID));
    assert_eq!(try_load(&file[..100], 0), Err(NRT_INVALID));
    let mut v3 = file.clone();
    v3[0] = 3;
    assert_eq!(try_load(&v3, 0), Err(NRT_UNSUPPORTED_NEFF_VERSION));
    // Packaging version 2 is a real NEFF's (MD5): foreign, not unsupported.
    let mut v2 = file.clone();
    v2[0] = 2;
    assert_eq!(try_load(&v2, 0), Err(NRT_INVALID));
    assert!(
        last_error().contains("not an nrt-sim model"),
        "{}",
        last_error()
    );
    // A real compiled NEFF: container with a gzip payload.
    let mut neff = file[..1024].to_vec();
    let payload = [0x1f, 0x8b, 8, 0, 1, 2, 3, 4];
    neff[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    use sha2::Digest;
    neff[172..204].copy_from_slice(&sha2::Sha256::digest(payload));
    neff.extend_from_slice(&payload);
    assert_eq!(try_load(&neff, 0), Err(NRT_INVALID));
    assert!(
        last_error().contains("not an nrt-sim model"),
        "{}",
        last_error()
    );
    // NULL bytes / NULL out-pointer.
    let mut out = std::ptr::null_mut();
    // SAFETY: NULL inputs are rejected before use.
    unsafe {
        assert_eq!(nrt_load(std::ptr::null(), 10, 0, -1, &mut out), NRT_INVALID);
        assert_eq!(
            nrt_load(
                file.as_ptr().cast(),
                file.len(),
                0,
                -1,
                std::ptr::null_mut()
            ),
            NRT_INVALID
        );
        assert_eq!(
            nrt_load(file.as_ptr().cast(), file.len(), 0, 4, &mut out),
            NRT_INVALID
        );
    }
    unload(m);
}

#[test]
fn execute_computes_outputs_exactly() {
    on_exec_stack(|| {
        let _s = Session::new();
        let m = load(&mlp_model(), 0);
        let x = alloc(0, 24, "x");
        let w = alloc_host(24, "w");
        let y = alloc(0, 16, "y");
        let copy = alloc(0, 24, "copy");
        write_f32(x, &[1., 2., 3., 4., 5., 6.]);
        write_f32(w, &[1., 0., 0., 1., 1., -1.]);
        let ins = set_of(&[("x", x), ("w", w), ("extra", y)]);
        let outs = set_of(&[("y", y), ("copy", copy)]);
        assert_eq!(execute(m, ins, outs), NRT_SUCCESS, "{}", last_error());
        // x@w = [[1+3, 2-3], [4+6, 5-6]] = [[4,-1],[10,-1]]; *0.5-1 = [[1,-1.5],[4,-1.5]]; relu
        assert_eq!(read_f32(y, 4), vec![1., 0., 4., 0.]);
        assert_eq!(read_f32(copy, 6), vec![1., 2., 3., 4., 5., 6.]);
        let before = counters().cores[0].executions;
        // SAFETY: handles checked.
        assert_eq!(unsafe { nrt_execute_repeat(m, ins, outs, 3) }, NRT_SUCCESS);
        assert_eq!(counters().cores[0].executions, before + 3);
        // SAFETY: handles checked.
        assert_eq!(unsafe { nrt_execute_repeat(m, ins, outs, 0) }, NRT_INVALID);
        destroy_set(ins);
        destroy_set(outs);
        for t in [x, w, y, copy] {
            free(t);
        }
        unload(m);
    });
}

#[test]
fn execute_rejects_missing_misplaced_missized_and_freed_tensors() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 4, Duration::ZERO);
        // Missing input.
        let partial = set_of(&[("a", rig.a)]);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(
            last_error().contains("input 'b' is missing"),
            "{}",
            last_error()
        );
        // Missing output.
        let no_out = new_set();
        assert_eq!(execute(rig.model, rig.inputs, no_out), NRT_INVALID);
        assert!(last_error().contains("output 'out' is missing"));
        // Wrong size.
        let small = alloc(0, 12, "small");
        assert_eq!(add(partial, "b", small), NRT_SUCCESS);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(
            last_error().contains("is 12 bytes; model 'add' expects 16 bytes"),
            "{}",
            last_error()
        );
        // On another core.
        let far = alloc(1, 16, "far");
        assert_eq!(add(partial, "b", far), NRT_SUCCESS);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID);
        assert!(last_error().contains("is on core 1, but model 'add' is loaded on core 0"));
        // Freed after being added.
        let gone = alloc(0, 16, "gone");
        assert_eq!(add(partial, "b", gone), NRT_SUCCESS);
        free(gone);
        assert_eq!(execute(rig.model, partial, rig.outputs), NRT_INVALID_HANDLE);
        assert!(
            last_error().contains("tensor bound as input 'b'"),
            "{}",
            last_error()
        );
        // Bad model / set handles.
        assert_eq!(
            execute(std::ptr::null_mut(), rig.inputs, rig.outputs),
            NRT_INVALID
        );
        assert_eq!(
            execute(rig.model, std::ptr::null_mut(), rig.outputs),
            NRT_INVALID
        );
        assert_eq!(
            execute(rig.a.cast(), rig.inputs, rig.outputs),
            NRT_INVALID_HANDLE
        );
        assert_eq!(
            counters().cores[0].executions,
            0,
            "rejected runs never execute"
        );
        destroy_set(partial);
        destroy_set(no_out);
        free(small);
        free(far);
        rig.release();
    });
}

#[test]
fn executions_on_one_core_serialize_and_count_busy_time() {
    on_exec_stack(|| {
        let _s = Session::new();
        let d = Duration::from_millis(30);
        let rig0 = AddRig::new(0, 4, d);
        let rig0b = AddRig::new(0, 4, d);
        let start = Instant::now();
        std::thread::scope(|s| {
            let (m, i, o) = (
                rig0b.model as usize,
                rig0b.inputs as usize,
                rig0b.outputs as usize,
            );
            spawn_with_exec_stack(s, move || {
                assert_eq!(execute(m as *mut _, i as *mut _, o as *mut _), NRT_SUCCESS)
            });
            assert_eq!(rig0.execute(), NRT_SUCCESS);
        });
        assert!(
            start.elapsed() >= 2 * d,
            "two runs on one core overlapped: {:?}",
            start.elapsed()
        );
        let c = counters();
        assert_eq!(c.cores[0].executions, 2);
        assert!(c.cores[0].busy >= 2 * d, "busy {:?}", c.cores[0].busy);
        assert_eq!(c.cores[1].busy, Duration::ZERO);
        rig0.release();
        rig0b.release();
    });
}

#[test]
fn exec_faults_fire_on_the_nth_execution_of_a_core() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        let rig1 = AddRig::new(1, 2, Duration::ZERO);
        write_f32(rig.a, &[1., 2.]);
        write_f32(rig.b, &[10., 20.]);
        control()
            .inject_faults("exec:vnc=0:nth=3:status=1003")
            .unwrap();
        assert_eq!(rig1.execute(), NRT_SUCCESS, "core 1 does not count");
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_SUCCESS);
        write_f32(rig.out, &[0., 0.]);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_NUM_ERR);
        assert!(
            last_error().contains("injected execution fault 1003"),
            "{}",
            last_error()
        );
        assert_eq!(
            read_f32(rig.out, 2),
            vec![11., 22.],
            "1003 still writes outputs"
        );
        assert_eq!(rig.execute(), NRT_SUCCESS, "nth faults fire once");
        // A hardware error leaves outputs untouched.
        control()
            .inject_faults("exec:status=NRT_EXEC_HW_ERR_NC_UE")
            .unwrap();
        write_f32(rig.out, &[0., 0.]);
        assert_eq!(rig.execute(), NRT_EXEC_HW_ERR_NC_UE);
        assert_eq!(read_f32(rig.out, 2), vec![0., 0.]);
        // after=N: every run after the first N, until cleared.
        control().inject_faults("exec:after=1").unwrap();
        assert_eq!(rig.execute(), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_ERR);
        assert_eq!(rig.execute(), NRT_EXEC_COMPLETED_WITH_ERR);
        control().clear_faults();
        assert_eq!(rig.execute(), NRT_SUCCESS);
        let c = counters();
        assert_eq!(c.cores[0].failed_executions, 4);
        rig.release();
        rig1.release();
    });
}

#[test]
fn alloc_and_load_faults() {
    let _s = Session::new();
    control().inject_faults("alloc:nth=2").unwrap();
    let first = alloc_host(4, "first");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, 4, "second"),
        Err(NRT_RESOURCE)
    );
    assert!(last_error().contains("injected allocation fault for tensor 'second'"));
    let third = alloc_host(4, "third");
    control()
        .inject_faults("alloc:vnc=1:status=NRT_FAIL_HOST_MEM_ALLOC")
        .unwrap();
    let on0 = alloc(0, 4, "on0");
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 1, 4, "on1"),
        Err(NRT_FAIL_HOST_MEM_ALLOC)
    );
    control().inject_faults("load:vnc=1").unwrap();
    let file = add_model(2, Duration::ZERO);
    let m0 = load(&file, 0);
    assert_eq!(try_load(&file, 1), Err(NRT_RESOURCE));
    let m1 = load(&file, 1);
    // Bad specs are refused with the reason, and arm nothing.
    let err = control().inject_faults("exec:nth=2:bogus=1").unwrap_err();
    assert_eq!(err.fault, "exec:nth=2:bogus=1");
    assert!(err.message.contains("unknown field"));
    // SAFETY: valid C string; NULL rejected.
    unsafe {
        assert_eq!(
            nrt_sim::control::nrt_sim_inject_faults(c"nope".as_ptr()),
            NRT_INVALID
        );
        assert_eq!(
            nrt_sim::control::nrt_sim_inject_faults(std::ptr::null()),
            NRT_INVALID
        );
    }
    for t in [first, third, on0] {
        free(t);
    }
    unload(m0);
    unload(m1);
}

#[test]
fn unmodelled_functions_fail_and_say_so() {
    let _s = Session::new();
    // SAFETY: these functions read none of their arguments.
    unsafe {
        assert_eq!(nrt_barrier(0, 0, 1), NRT_FAILURE);
        assert!(last_error().contains("not simulated"));
        assert_eq!(nrt_build_global_comm(0, 0, 1), NRT_FAILURE);
        assert_eq!(nrt_cc_global_comm_init(0, 0, 1), NRT_FAILURE);
        assert_eq!(
            nrt_profile_start(std::ptr::null_mut(), std::ptr::null()),
            NRT_FAILURE
        );
        assert_eq!(nrt_profile_stop(std::ptr::null()), NRT_FAILURE);
        assert_eq!(
            nrt_load_collectives(std::ptr::null(), 0, 0, -1, 0, 1, std::ptr::null_mut()),
            NRT_FAILURE
        );
        assert_eq!(nrta_error_tracker_create(), NRT_FAILURE);
    }
}

#[test]
fn concurrent_tensor_traffic_from_many_threads_is_consistent() {
    let _s = Session::new();
    let tensors: Vec<usize> = (0..4).map(|i| alloc(i % 2, 1024, "t") as usize).collect();
    std::thread::scope(|s| {
        for (i, &t) in tensors.iter().enumerate() {
            s.spawn(move || {
                let t = t as *mut nrt_tensor_t;
                for round in 0..200u32 {
                    let v = [(i as u8).wrapping_add(round as u8); 1024];
                    assert_eq!(write(t, 0, &v), NRT_SUCCESS);
                    assert_eq!(read(t, 0, 1024).unwrap(), v.to_vec());
                }
            });
        }
    });
    for t in tensors {
        free(t as *mut _);
    }
}
