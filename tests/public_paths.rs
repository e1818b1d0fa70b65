//! Compile test of the public API's paths: every item the crate root re-exports, and
//! every path README.md, the examples, the tests, the benches and the rustdoc name under
//! `neuron_rt::xu`, `neuron_rt::neff`, `neuron_rt::sim`, `neuron_rt::diagnose` and
//! `neuron_rt::nrt_sys`. The files under `src/` live in layer folders (`objects/`, `io/`,
//! `error/`, ...) that are private; this file stops compiling if a move drops a
//! re-export a user's crate relies on.

#![allow(unused_imports)]

// Everything the crate root re-exports (src/lib.rs), by kind of item.
use neuron_rt::{
    BenchmarkMode, BenchmarkStats, Capabilities, Completion, ContinuousProfiler, CopyMetrics,
    CoreStats, DType, DebugEvent, DebugStream, Diagnosis, Element, Error, ErrorKind, ExecSets,
    ExecUnit, Failed, Framework, GivenInput, HostBuffer, HostInputs, HostOutputs, Input,
    InputMismatch, InspectConfig, InspectSession, InstanceInfo, LatencyHistogram, Lease,
    MemoryStats, MissingInput, Model, ModelInfo, ModelPool, ModelPoolBuilder, NeffSource,
    NrtStatus, Output, Outputs, Payload, Pipeline, PipelineStream, Placement, PoolMetrics,
    ProfileGuard, RankGroup, RankSpec, ReadBatch, Rejected, Replicas, Request, RequestCounts,
    RequestFuture, Result, RetryPolicy, Runtime, RuntimeBuilder, Scheduled, SeqId, Stage, Staged,
    StagedPipeline, StagedStream, Submit, Submitted, SysTrace, SysTraceConfig, Tensor, TensorInfo,
    TensorSet, TensorUsage, TraceEvent, Version, WriteBatch, XuKind,
};
use neuron_rt::{
    DEFAULT_CAPACITY, DEFAULT_DEPTH, DEFAULT_INITIAL_SETS, DEFAULT_MAX_SETS, DEFAULT_STAGED_DEPTH,
    EXEC_STACK_NEEDED, HELPER_STACK, LARGE_TRANSFER_BYTES, NC_EXEC_RUNNING, VISIBLE_CORES_VAR,
};
// The macro and the public modules.
use neuron_rt::{diagnose, inputs, neff, nrt_sys, sim, xu};
// Paths under the public modules that README, examples, tests, benches and docs use.
use neuron_rt::diagnose::Probe;
use neuron_rt::neff::{DType as NeffDType, Neff, NeffError, NeffWriter};
use neuron_rt::nrt_sys::{self as sys, Library, NrtFns, Origin};
use neuron_rt::sim::{DType as SimDType, ModelBuilder, Op, library, synthetic_output};
use neuron_rt::xu::{Scope, scope};

#[test]
fn public_paths_resolve() {
    // Functions, associated items and variants named by path in README and the examples.
    let _builder: fn() -> RuntimeBuilder = neuron_rt::Runtime::builder;
    let _parse = neuron_rt::neff::Neff::parse;
    let _in_process = neuron_rt::nrt_sys::Library::in_process;
    let _example = neuron_rt::sim::ModelBuilder::add_example;
    let _library: fn() -> &'static Library = neuron_rt::sim::library;
    let _synthetic = neuron_rt::sim::synthetic_output;
    let _from: fn(NeffDType) -> DType = neuron_rt::DType::from;
    let _ = (
        neuron_rt::Capabilities::ASYNC_EVENTS,
        neuron_rt::DType::BF16,
        neuron_rt::DType::F32,
        neuron_rt::DType::I64,
        neuron_rt::neff::DType::BF16,
        neuron_rt::neff::DType::I64,
        neuron_rt::Framework::PyTorch,
        neuron_rt::Placement::Device,
        neuron_rt::nrt_sys::Origin::InProcess,
        neuron_rt::nrt_sys::NRTA_XU_COMPUTE,
        neuron_rt::nrt_sys::NRT_FRAMEWORK_TYPE_NO_FW,
        neuron_rt::nrt_sys::NRT_SUCCESS,
    );
    let _variants = |e: &Error| {
        matches!(
            e,
            neuron_rt::Error::AlreadyInitialized
                | neuron_rt::Error::InvalidArgument { .. }
                | neuron_rt::Error::LibraryNotFound(_)
                | neuron_rt::Error::Unsupported { .. }
        )
    };
    // The `inputs!` macro builds what `Model::run` takes.
    let list = inputs!["a" => &[1.0f32, 2.0]];
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, "a");
    assert_eq!(list[0].1.dtype(), Some(DType::F32));
}

/// One `DType` a user meets: the crate root's, the simulator's and the NEFF module's are
/// the same type (each assignment below compiles only if they are).
#[test]
fn dtype_is_one_type_under_every_path() {
    let root: neuron_rt::DType = neuron_rt::sim::DType::BF16;
    let neff: neuron_rt::neff::DType = root;
    let sim: neuron_rt::sim::DType = neff;
    let same = |a: neuron_rt::DType, b: neuron_rt::sim::DType| a == b;
    assert!(same(sim, neuron_rt::neff::DType::BF16));
    use std::any::TypeId;
    assert_eq!(
        TypeId::of::<neuron_rt::DType>(),
        TypeId::of::<neuron_rt::sim::DType>()
    );
    assert_eq!(
        TypeId::of::<neuron_rt::DType>(),
        TypeId::of::<neuron_rt::neff::DType>()
    );
}
