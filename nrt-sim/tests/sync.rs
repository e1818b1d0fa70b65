//! Synchronous API behaviour and error paths, through the exported C functions of the
//! in-process simulator: versions, tensors, slices, buffers. (Batches and tensor sets:
//! `sync_batches_sets.rs`; models and execution: `sync_models.rs`.)

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::ffi::CStr;

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
