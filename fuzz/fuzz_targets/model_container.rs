//! The simulator's model file parser: the NEFF-shaped container and the payload inside
//! (what `nrt_load` checks), and the text form the model builder reads. Any input must
//! be accepted or refused with an error, never crash. Real-format NEFFs (gzip'd tar
//! payloads) go through the reader of `neuron-neff` here too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = nrt_sim::describe_model(data)
        && !text.starts_with('#')
    {
        // A model that parses describes itself in a form that builds the same model (a
        // real NEFF, described in comment lines, has no such form).
        let rebuilt = nrt_sim::build_model_from_text(&text).expect("canonical text builds");
        assert_eq!(
            nrt_sim::describe_model(&rebuilt).expect("rebuilt model parses"),
            text
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nrt_sim::build_model_from_text(text);
    }
});
