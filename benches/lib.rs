//! neuron-rt's benchmarks (`cargo bench --bench NAME` from the workspace root) and its
//! property test, in a package of their own so that their dependencies (criterion,
//! proptest, tracing-subscriber) are not built by `cargo run --example` or by a user's
//! build of the library. Nothing here: the targets are the bench files beside this one
//! and `tests/`.
