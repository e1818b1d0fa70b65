//! The init/close window, in a process of its own (so "before init" really is).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;

#[test]
fn calls_outside_the_init_window_fail_and_init_after_close_works() {
    let _serial = Session::serial_only();

    // Before init: object calls are refused, counts and versions work.
    assert_eq!(
        try_alloc(NRT_TENSOR_PLACEMENT_HOST, -1, 16, "x"),
        Err(NRT_UNINITIALIZED)
    );
    assert!(last_error().contains("before nrt_init"), "{}", last_error());
    let mut count = 0u32;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_get_total_vnc_count(&mut count) }, NRT_SUCCESS);
    assert_eq!(count, 2);
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_get_visible_nc_count(&mut count) }, NRT_SUCCESS);
    assert_eq!(count, 2);
    let mut ver = nrt_version_t::default();
    // SAFETY: `ver` is writable for its size.
    assert_eq!(
        unsafe { nrt_get_version(&mut ver, std::mem::size_of::<nrt_version_t>()) },
        NRT_SUCCESS
    );
    assert_eq!((ver.rt_major, ver.rt_minor), (2, 34));
    let c = counters();
    assert!(!c.open);
    assert_eq!(c.cores.len(), 0);
    // Closing before init is harmless.
    // SAFETY: no arguments.
    unsafe { nrt_close() };

    // Bad framework type.
    // SAFETY: version strings are not read.
    let status = unsafe { nrt_init(99, std::ptr::null(), std::ptr::null()) };
    assert_eq!(status, NRT_INVALID);
    assert!(
        last_error().contains("framework type 99"),
        "{}",
        last_error()
    );

    assert_eq!(init_status(), NRT_SUCCESS);
    assert!(counters().open);
    // A second init without close fails.
    assert_eq!(init_status(), NRT_FAILURE);
    assert!(last_error().contains("already initialized"));
    let host = alloc_host(64, "leaked");
    // SAFETY: no arguments.
    unsafe { nrt_close() };

    // After close: CLOSED, and the leaked tensor was counted and freed.
    let c = counters();
    assert!(!c.open);
    assert_eq!(c.live_at_last_close, 1);
    assert_eq!(c.live_objects(), 0);
    assert_eq!(c.cores.len(), 2, "last session's cores are still reported");
    assert_eq!(write(host, 0, &[1, 2, 3]), NRT_CLOSED);
    assert!(last_error().contains("after nrt_close"));
    let mut s = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_allocate_tensor_set(&mut s) }, NRT_CLOSED);
    // SAFETY: no arguments (closing twice is harmless).
    unsafe { nrt_close() };

    // Init again: the old handle stays dead, new objects work.
    assert_eq!(init_status(), NRT_SUCCESS);
    assert_eq!(write(host, 0, &[1, 2, 3]), NRT_INVALID_HANDLE);
    let t = alloc(0, 8, "fresh");
    assert_eq!(write(t, 0, &[7; 8]), NRT_SUCCESS);
    free(t);
    // SAFETY: no arguments.
    unsafe { nrt_close() };
    assert_eq!(counters().live_at_last_close, 0);
}
