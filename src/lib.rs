//! Safe Rust API over `libnrt`, the AWS Neuron Runtime that loads compiled models (NEFFs)
//! onto the NeuronCores of Inferentia2 and Trainium instances and runs them.
//!
//! libnrt is loaded at run time (see [`RuntimeBuilder`]), so this crate builds anywhere;
//! without Neuron hardware, `nrt-sim` (a simulated libnrt with the same C interface) runs
//! the same code.
//!
//! * [`Runtime`]: `nrt_init` / `nrt_close`, version, core counts, memory statistics.
//! * [`Model`]: a loaded model, its [`TensorInfo`]s, and [`Model::execute`].
//! * [`Tensor`]: device, host or virtual memory with bounds-checked typed access.
//! * [`TensorSet`]: named tensors bound as the inputs or outputs of an execution.
//! * [`ReadBatch`] / [`WriteBatch`]: many tensor ranges moved in one call;
//!   [`ProfileGuard`]: device profiling of a model ([`Model::profile`]).
//! * [`RankSpec`] / [`Runtime::load_model_rank`] / [`RankGroup`]: a model as ranks of a
//!   collective group (tensor parallelism), in this process or one process per rank;
//!   [`Runtime::barrier`] / [`Runtime::all_gather`]: host-driven collectives across ranks.
//! * [`Model::run`] / [`Model::benchmark`]: one call with host data; host-timed statistics.
//! * [`Error`] / [`NrtStatus`]: every libnrt status and every Rust-side check, with values.
//! * [`neff`]: read a compiled model's file without loading it: header, hash, cores,
//!   compiler version, target, and its inputs and outputs ([`neff::Neff`]).
//! * [`Capabilities`]: what the loaded library offers; missing parts give
//!   [`Error::Unsupported`] instead of a call into nothing.
//! * [`xu`]: the async API: [`ExecUnit`]s (execution-unit queues), [`Request`]s that own
//!   what the device uses until they complete, [`Pipeline`] to keep a unit busy.
//! * [`StagedPipeline`]: write -> execute -> read with the three units of a core busy at
//!   once; [`Replicas`]: one model on many cores, jobs to the least loaded one.
//! * [`generate`]: state tensors updated in place (a KV cache) and bundles of NEFFs that
//!   share one copy of the weights (from `.safetensors`) and of the state per core.
//!
//! # Example
//!
//! On a Neuron instance, `Runtime::new()` finds libnrt and `load_model_file` loads a
//! compiled NEFF. This example runs anywhere with the crate's feature `sim` (README.md
//! gives the dependency lines that work before the crates.io release): it uses the
//! simulator and a model built for it.
//!
//! ```
//! use neuron_rt::{Runtime, inputs};
//! use neuron_rt::sim::{DType, ModelBuilder, Op};
//!
//! // out = a + b, on f32 [2, 3]
//! let neff = ModelBuilder::new("add")
//!     .input("a", DType::F32, &[2, 3])
//!     .input("b", DType::F32, &[2, 3])
//!     .output("out", DType::F32, &[2, 3])
//!     .op(Op::Add { a: "a".into(), b: "b".into(), out: "out".into() })
//!     .build()
//!     .unwrap();
//!
//! // On hardware: `Runtime::new()?` and `runtime.load_model_file("add.neff")?`.
//! let runtime = Runtime::builder().simulator().build()?;
//! let model = runtime.load_model(&neff)?;
//!
//! // One call with host data: named inputs (each of its own element type) in, named
//! // outputs with their dtype and shape out, read as the type asked for.
//! let out = model.run(&inputs!["a" => &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], "b" => &[10.0f32; 6]])?;
//! assert_eq!(out["out"].as_slice::<f32>()?, [11.0, 12.0, 13.0, 14.0, 15.0, 16.0]);
//!
//! // Or with device tensor sets, reused across executions.
//! let inputs = model.allocate_inputs()?; // one device tensor per model input
//! let mut outputs = model.allocate_outputs()?;
//! inputs.get("a").unwrap().write(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! inputs.get("b").unwrap().write(&[10.0f32; 6])?;
//! model.execute(&inputs, &mut outputs)?; // checks every binding, then nrt_execute
//! let out: Vec<f32> = outputs.get("out").unwrap().to_vec()?;
//! assert_eq!(out, [11.0, 12.0, 13.0, 14.0, 15.0, 16.0]);
//! println!("libnrt {}", runtime.version()?);
//! # Ok::<(), neuron_rt::Error>(())
//! ```
//!
//! # The guide
//!
//! Beyond this page, [`guide`] has a chapter per area: host data, the real libnrt, async
//! execution and its safety, pipelines, the pool, collectives, profiling, the simulator,
//! real NEFFs, troubleshooting, benchmarks and the repository's layout.
//!
//! # Errors that say what to do
//!
//! A failed `nrt_init`, model load or allocation carries a [`hint`](Error::hint): the
//! environment variables that affect it, missing or inaccessible `/dev/neuron*` devices,
//! the processes holding them, per-core memory, what a model file that is not a NEFF
//! holds. See [`diagnose`].
//!
//! # Logging
//!
//! The crate logs through the [`log`](https://docs.rs/log) facade: runtime start and model
//! loads at `info`, execution units, retries and diagnosis findings at `debug`. Nothing
//! is printed unless the application installs a logger.
//!
//! # Safety model
//!
//! Every handle keeps the runtime open, so `nrt_close` runs after the last one is
//! dropped; a tensor stays alive while any set or slice refers to it; every offset and
//! size is checked before libnrt sees it; and no safe function can cause undefined
//! behaviour, whatever its input (including `mem::forget` of anything it returns).

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod collectives;
pub mod diagnose;
mod dtype;
mod error;
pub mod generate;
pub mod guide;
mod io;
pub mod neff;
mod objects;
mod parallel;
mod profiling;
mod raw;
pub mod xu;

pub use collectives::rank_group::RankGroup;
pub use collectives::rank_spec::{DEFAULT_ROOT_COMM_PORT, RankSpec};
pub use dtype::{DType, Element};
pub use error::{
    Diagnosis, Error, ErrorKind, GivenInput, InputMismatch, MissingInput, NrtStatus, Result,
};
pub use io::batch::{ReadBatch, WriteBatch};
pub use io::run::BenchmarkStats;
pub use io::{Input, Output, Outputs};
pub use objects::{
    Capabilities, EXEC_STACK_NEEDED, Framework, HELPER_STACK, InstanceInfo, MemoryStats, Model,
    ModelInfo, Placement, Runtime, RuntimeBuilder, Tensor, TensorInfo, TensorSet, TensorUsage,
    VISIBLE_CORES_VAR, Version,
};
pub use parallel::pool::builder::{
    DEFAULT_INITIAL_SETS, DEFAULT_MAX_SETS, LARGE_TRANSFER_BYTES, ModelPoolBuilder, NeffSource,
};
pub use parallel::pool::{
    CopyMetrics, LatencyHistogram, Lease, ModelPool, PoolMetrics, RequestCounts,
};
pub use parallel::replicas::Replicas;
pub use parallel::staged::{
    CoreStats, DEFAULT_STAGED_DEPTH, HostInputs, HostOutputs, Stage, Staged, StagedPipeline,
    StagedStream,
};
pub use profiling::bench_device::{BenchmarkMode, NC_EXEC_RUNNING};
pub use profiling::debug_stream::{DebugEvent, DebugStream};
pub use profiling::inspect::{ContinuousProfiler, InspectConfig, InspectSession};
pub use profiling::profile::ProfileGuard;
pub use profiling::trace::{SysTrace, SysTraceConfig, TraceEvent};
pub use xu::{
    Completion, DEFAULT_CAPACITY, DEFAULT_DEPTH, ExecSets, ExecUnit, Failed, HostBuffer, Payload,
    Pipeline, PipelineStream, Rejected, Request, RequestFuture, RetryPolicy, Scheduled, SeqId,
    Submit, Submitted, XuKind,
};

/// The `half` crate, whose `f16` and `bf16` are tensor element types (feature `half`, on
/// by default), so that a program reading bf16 outputs needs no dependency of its own.
#[cfg(feature = "half")]
#[cfg_attr(docsrs, doc(cfg(feature = "half")))]
pub use half;

/// The raw bindings and loader this crate is built on.
pub use nrt_sys;

/// The simulated libnrt (`nrt-sim`): its model builder and control API, for use with
/// [`RuntimeBuilder::simulator`]. Only with feature `sim`.
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
#[doc(inline)]
pub use nrt_sim as sim;

/// README.md's code blocks, compiled as doc tests so that the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
