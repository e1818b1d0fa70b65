//! `Runtime::new()` finds libnrt the default way; `LIBNRT_PATH` naming the simulator
//! makes it load that file. In its own test binary, as it changes the environment.

mod support;

use neuron_rt::{Error, Runtime};

#[test]
fn libnrt_path_is_followed_and_a_bad_one_is_reported() {
    let _g = support::lock();
    // SAFETY: this binary has one test, which touches the environment from one thread.
    unsafe { std::env::set_var("LIBNRT_PATH", "/nonexistent/libnrt.so.1") };
    let err = Runtime::new().unwrap_err();
    match &err {
        Error::LibraryNotFound(load) => {
            assert_eq!(load.attempts.len(), 1);
            assert_eq!(load.attempts[0].source, "LIBNRT_PATH");
        }
        other => panic!("unexpected {other}"),
    }
    let path = nrt_sim::cdylib_path().unwrap();
    // SAFETY: as above.
    unsafe { std::env::set_var("LIBNRT_PATH", &path) };
    let rt = Runtime::new().unwrap();
    assert!(std::ptr::eq(rt.library(), support::sim()));
    assert!(rt.visible_core_count().unwrap() >= 1);
}
