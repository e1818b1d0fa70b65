//! Property test (issue 11, "keep them closed"): random sequences of safe-API calls on
//! the dlopen'ed simulator (allocate, write/read/fill/copy at random offsets in and out
//! of bounds, slices, sets, load + execute, async writes/reads/executes that are waited
//! for, dropped or forgotten inside a scope, async writes to host tensors followed by a
//! sync read that must see them, and `submit` futures forgotten while they wait, which
//! must not hold up a later submission) never panic, fail with the typed errors the API
//! documents, and leave no simulator object alive once everything is dropped.
//!
//! It lives in the benches package (proptest stays out of the root package's build).
//! The ops are decoded from bytes by tests/support/ops.rs, shared with the fuzz target
//! `api_sequences` (fuzz/). Forgotten requests are only forgotten inside an async scope,
//! which still waits for them and frees what they hold: a request forgotten outside one
//! keeps the runtime open for the rest of the process, which would end the sequence of
//! cases (one runtime per library).

// The workspace's shared test support (the root package's tests/support/).
#[path = "../../tests/support/ops.rs"]
mod ops;
#[path = "../../tests/support/mod.rs"]
mod support;

use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // A failing case is printed (shrunk) in the test output; no files are written.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_call_sequences_keep_the_contract_and_leak_nothing(bytes in vec(any::<u8>(), 0..256)) {
        let _g = support::lock();
        ops::run(support::sim(), &bytes);
        support::assert_no_leaks();
    }
}
