//! Inputs on which the `neff_reader` fuzz target once failed (`tests/fuzz_regressions/`):
//! each must be refused with an error, never panic, with and without the hash check.

use neuron_neff::{Neff, ParseOptions};

#[test]
fn inputs_that_once_crashed_the_reader_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the regressions folder") {
        let path = entry.expect("an entry").path();
        let bytes = std::fs::read(&path).expect("a regression input");
        let unchecked = ParseOptions {
            verify_hash: false,
            ..ParseOptions::default()
        };
        assert!(Neff::parse(&bytes).is_err(), "{} was read", path.display());
        assert!(
            Neff::parse_with(&bytes, &unchecked).is_err(),
            "{} was read without the hash check",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 1);
}
