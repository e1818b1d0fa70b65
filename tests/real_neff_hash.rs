//! `NEURON_RT_VALIDATE_HASH` on the simulator: a real-format NEFF whose header hash does
//! not match its (intact) payload loads when the check is off (the runtime's default)
//! and is refused when it is on. In its own test binary, as it changes the environment.

mod support;

use neuron_rt::neff::{DType, NeffWriter};
use neuron_rt::{NrtStatus, Runtime};

#[test]
fn hash_is_checked_only_when_validate_hash_is_true() {
    let _g = support::lock();
    let mut bytes = NeffWriter::new("h.neff")
        .input("x", DType::F16, &[8])
        .output("y", DType::F16, &[8])
        .build()
        .unwrap();
    bytes[172] ^= 0x01; // the first byte of the stored MD5

    // Default: off, as the runtime's configuration guide gives it.
    let rt = support::runtime();
    let m = rt.load_model(&bytes).expect("hash not checked by default");
    drop((m, rt));

    for (value, checked) in [("TRUE", true), ("false", false), ("true", true)] {
        // SAFETY: this binary has one test, which touches the environment only here,
        // while no other thread of it runs.
        unsafe { std::env::set_var("NEURON_RT_VALIDATE_HASH", value) };
        let rt = support::runtime();
        match rt.load_model(&bytes) {
            Ok(_) => assert!(!checked, "{value}: a bad hash loaded"),
            Err(err) => {
                assert!(checked, "{value}: {err}");
                assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
                let text = format!("{err} {}", err.hint().unwrap_or_default());
                assert!(text.contains("bad NEFF hash"), "{text}");
            }
        }
        // An intact file loads with the check on.
        bytes[172] ^= 0x01;
        rt.load_model(&bytes).unwrap();
        bytes[172] ^= 0x01;
    }

    // SAFETY: as above.
    unsafe { std::env::set_var("NEURON_RT_VALIDATE_HASH", "maybe") };
    let err = Runtime::builder()
        .library(support::sim())
        .build()
        .unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Invalid), "{err}");
    // SAFETY: as above.
    unsafe { std::env::remove_var("NEURON_RT_VALIDATE_HASH") };
    support::assert_no_leaks();
}
