//! The guide: how to use neuron-rt beyond the first example, one chapter per area.
//!
//! README.md is the front door (what this is, the two commands, a first program, how to
//! depend on it); these chapters are the rest, here so that docs.rs shows them next to the
//! API they describe. Every Rust snippet in them is compiled (and run on the simulator where
//! it can be) as a doc test.
//!
//! | chapter | what it covers |
//! |---|---|
//! | [`host_data`] | `Model::run` with inputs of every dtype, outputs as typed views, `ndarray`, logging |
//! | [`hardware`] | the real libnrt: library search, SDK headers, linking, an Inf2 / Trn instance, how each Rust call maps to libnrt, the execution stack rule, dated runtime changes |
//! | [`async_execution`] | execution units, requests, futures, scopes, admission, cancellation, and the safety rules of the async API |
//! | [`pipelines`] | staged write -> execute -> read pipelines on a core's three units, replicas on many cores, the other examples |
//! | [`pool`] | `ModelPool` for servers, failure semantics, `examples/serve` over HTTP and its load generator |
//! | [`generation`] | LLM generation: bundles sharing weights, KV-cache state tensors, buckets, the decode loop, host and device sampling |
//! | [`collectives`] | tensor-parallel models: rank groups in one process, one process per rank, across instances, host collectives |
//! | [`profiling`] | host and device benchmarks, the system trace, inspect and continuous profiling, debug stream, dmabuf |
//! | [`simulator`] | nrt-sim: what it simulates, your own code and model files on it |
//! | [`real_neffs`] | compiler-made NEFFs: reading them, running them on the simulator in signature-only mode |
//! | [`troubleshooting`] | what a failed init, load or allocation tells you, and what to do |
//! | [`benchmarks`] | what `cargo bench` measures, how, and the figures |
//! | [`layout`] | the repository's folders and crates |

#[doc = include_str!("host_data.md")]
pub mod host_data {}

#[doc = include_str!("hardware.md")]
pub mod hardware {}

#[doc = include_str!("async_execution.md")]
pub mod async_execution {}

#[doc = include_str!("pipelines.md")]
pub mod pipelines {}

#[doc = include_str!("pool.md")]
pub mod pool {}

#[doc = include_str!("generation.md")]
pub mod generation {}

#[doc = include_str!("collectives.md")]
pub mod collectives {}

#[doc = include_str!("profiling.md")]
pub mod profiling {}

#[doc = include_str!("simulator.md")]
pub mod simulator {}

#[doc = include_str!("real_neffs.md")]
pub mod real_neffs {}

#[doc = include_str!("troubleshooting.md")]
pub mod troubleshooting {}

#[doc = include_str!("benchmarks.md")]
pub mod benchmarks {}

#[doc = include_str!("layout.md")]
pub mod layout {}
