//! The collectives' rendezvous wire format (nrt-sim/src/runtime/wire.rs), as an untrusted
//! local peer could send it: hellos, contributions and replies. Any input must be
//! refused or parsed to exactly the sizes expected, never crash or over-allocate.
//! First byte: the world (low 4 bits + 1) and the expected part size (high 4 bits x 8).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nrt_sim::fuzzing::parse_rendezvous(data);
});
