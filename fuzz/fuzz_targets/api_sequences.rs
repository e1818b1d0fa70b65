//! Random sequences of safe-API calls on the in-process simulator (the op decoder is
//! tests/support/ops.rs, shared with the property test): no crash, typed errors where
//! the API promises them, and no simulator object alive after teardown.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/ops.rs"]
#[allow(dead_code)]
mod ops;

fuzz_target!(|data: &[u8]| {
    let lib = nrt_sim::library();
    ops::run(lib, data);
    let control = nrt_sim::SimControl::new(lib).expect("nrt-sim");
    let c = control.counters();
    assert_eq!(c.live_objects(), 0, "live objects after teardown: {c:?}");
    assert_eq!(c.host_bytes, 0, "host bytes after teardown: {c:?}");
});
