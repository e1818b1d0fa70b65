//! `NRT_TENSOR_PLACEMENT_VIRTUAL`: pageable host memory below runtime 2.32, refused from
//! 2.32 on (the runtime removed it). Emulated versions other than the default run in a
//! child process (`NRT_SIM_VERSION` is read at `nrt_init`).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;

#[test]
fn virtual_placement_is_refused_by_default() {
    // The default emulated version is 2.34.10.
    let _s = Session::new();
    let before = counters();
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, 8, "virt"),
        Err(NRT_INVALID)
    );
    let why = last_error();
    assert!(
        why.contains("VIRTUAL") && why.contains("2.32") && why.contains("2.34.10"),
        "the log names the removal and the emulated version: {why}"
    );
    let after = counters();
    assert_eq!(
        (after.host_tensors, after.host_bytes),
        (before.host_tensors, before.host_bytes)
    );
}

#[test]
fn virtual_placement_is_refused_from_2_32() {
    if !in_child(
        "virtual_placement_is_refused_from_2_32",
        &[("NRT_SIM_VERSION", "2.32.31")],
    ) {
        return;
    }
    let _s = Session::new();
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, 8, "virt"),
        Err(NRT_INVALID)
    );
    assert!(last_error().contains("2.32.31"), "{}", last_error());
    // Attached buffers still work (the simulator calls them VIRTUAL internally).
    let mut t = std::ptr::null_mut();
    let mut mine = [0u8; 4];
    // SAFETY: valid name and out-pointer; `mine` outlives the tensor.
    unsafe {
        assert_eq!(
            nrt_tensor_allocate_empty(c"e".as_ptr(), &mut t),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_tensor_attach_buffer(t, mine.as_mut_ptr().cast(), 4),
            NRT_SUCCESS
        );
    }
    assert_eq!(write(t, 0, &[1, 2, 3, 4]), NRT_SUCCESS);
    free(t);
    assert_eq!(mine, [1, 2, 3, 4]);
}

#[test]
fn virtual_placement_allocates_host_memory_below_2_32() {
    if !in_child(
        "virtual_placement_allocates_host_memory_below_2_32",
        &[("NRT_SIM_VERSION", "2.31.24")],
    ) {
        return;
    }
    // The runtime documents VIRTUAL tensors as allocated in (pageable) host memory.
    let _s = Session::new();
    let v = try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, 8, "virt").unwrap();
    assert_eq!(read(v, 0, 8).unwrap(), vec![0; 8], "zeroed storage at once");
    assert_eq!(write(v, 2, &[6]), NRT_SUCCESS);
    // SAFETY: handle checked; the address is valid for the tensor's 8 bytes.
    let va = unsafe { nrt_tensor_get_va(v) }.cast::<u8>();
    assert!(!va.is_null());
    // SAFETY: as above.
    assert_eq!(unsafe { va.add(2).read() }, 6);
    let c = counters();
    assert_eq!((c.host_tensors, c.host_bytes), (1, 8));
    assert_eq!(c.cores[0].device_bytes, 0);
    free(v);
    assert_eq!(counters().host_bytes, 0);
    // Unlike HOST, no 4 MiB limit...
    let big = try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, (4 << 20) + 1, "big").unwrap();
    free(big);
    // ...but a host allocation the machine cannot hold fails.
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, usize::MAX / 2, "huge"),
        Err(NRT_RESOURCE)
    );
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_VIRTUAL, -1, 0, "zero"),
        Err(NRT_INVALID)
    );
    assert_eq!(counters().live_objects(), 0);
}
