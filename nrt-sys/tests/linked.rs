//! Feature `link`: libnrt linked at build time. CI runs this against the simulator:
//! `LIBNRT_LIB_DIR=<folder with libnrt.so -> libnrt_sim.so> cargo test -p nrt-sys --features link --test linked`.
#![cfg(feature = "link")]

#[test]
fn linked_functions_call_the_library_linked_at_build_time() {
    let mut v = nrt_sys::nrt_version_t::default();
    // SAFETY: v is a valid nrt_version_t and the size passed is its own size.
    let status = unsafe { nrt_sys::linked::nrt_get_version(&mut v, std::mem::size_of_val(&v)) };
    assert_eq!(status, nrt_sys::NRT_SUCCESS);
    assert_eq!(v.rt_major, 2, "a 2.x runtime library");
}

#[test]
fn the_linked_table_has_every_function() {
    let fns = nrt_sys::NrtFns::linked();
    assert!(fns.presence().iter().all(|(_, present)| *present));
    let mut count = 0u32;
    // SAFETY: the pointer is a valid, writable u32; the count query may run before nrt_init.
    let status = unsafe { fns.nrt_get_total_vnc_count.unwrap()(&mut count) };
    assert_eq!(status, nrt_sys::NRT_SUCCESS);
    assert!(count > 0);
}
