//! The simulator's other text parsers: the fault language (nrt-sim/FAULTS.md) and the
//! core-selection environment values (NEURON_RT_VISIBLE_CORES, NEURON_RT_NUM_CORES).
//! First byte: the machine's core count; the rest: the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nrt_sim::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&total, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let total = u32::from(total);
    let _ = fuzzing::parse_faults(text);
    for parsed in [
        fuzzing::parse_visible_cores(text, total),
        fuzzing::parse_num_cores(text, total),
    ] {
        if let Ok((first, count)) = parsed {
            // Accepted selections lie inside the machine.
            assert!(u64::from(first) + u64::from(count) <= u64::from(total.max(1)));
        }
    }
});
