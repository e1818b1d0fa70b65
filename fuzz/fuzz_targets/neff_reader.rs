//! The NEFF reader (`neuron-neff`): header, hash, gzip, tar and the JSON signature. Any
//! input must be read or refused with an error, never crash or allocate without bound;
//! a signature that reads is written back by the writer and reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuron_neff::{Neff, NeffWriter, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let _ = Neff::parse(data);
    let unchecked = ParseOptions {
        verify_hash: false,
        ..ParseOptions::default()
    };
    let Ok(neff) = Neff::parse_with(data, &unchecked) else {
        return;
    };
    for t in neff.inputs().iter().chain(neff.outputs()) {
        assert_eq!(t.byte_size, t.elements() * t.dtype.size() as u64);
    }
    let mut w = NeffWriter::new(neff.name())
        .cores(neff.cores())
        .packaging(neff.header().packaging);
    for t in neff.inputs() {
        w = w.input(t.name.clone(), t.dtype, &t.shape);
    }
    for t in neff.outputs() {
        w = w.output(t.name.clone(), t.dtype, &t.shape);
    }
    // The writer refuses some readable signatures (a name used twice, no model name).
    if let Ok(bytes) = w.build() {
        let again = Neff::parse(&bytes).expect("the writer's output reads");
        assert_eq!(again.inputs(), neff.inputs());
        assert_eq!(again.outputs(), neff.outputs());
        assert_eq!(again.cores(), neff.cores());
    }
});
