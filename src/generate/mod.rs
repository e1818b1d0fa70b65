//! Generation on NeuronCores: state tensors updated in place, and bundles of NEFFs that
//! share one copy of the weights and of the state per core.
//!
//! * [`bind_state`] / [`Aliases`]: one device tensor bound as a model input and as the
//!   output that updates it (a KV cache), checked; aliases from a [`MetaNeff`]
//!   (`metaneff.pb`), from the [`MUST_ALIAS_SUFFIX`] name suffix, or from the caller.
//!   With the pool: [`ModelPool::lease_on`](crate::ModelPool::lease_on) and
//!   [`Lease::bind_state`](crate::Lease::bind_state).
//! * [`WeightFile`]: a `.safetensors` checkpoint, read or memory-mapped.
//! * [`Bundle`]: several NEFFs on the same cores, one device tensor per weight and per
//!   state per core, bound by name into every [`Member`] that takes it; loaded by
//!   [`BundleBuilder`] from a bundle directory or from [`MemberSpec`]s, the weights
//!   uploaded to every core in parallel with progress ([`LoadProgress`],
//!   [`LoadReport`]).
//! * [`measure_upload`]: the upload rate next to a `memcpy` of the same bytes.
//! * [`PipelinedDecode`]: device-sampled decode with steps queued ahead on the compute
//!   unit, each step's ids input bound on the device to the previous step's ids output
//!   ([`DecodeChain`]: one member, or a chain of members run as one step); the host
//!   only reads each step's ids.
//! * [`Timeline`]: a core's executions from the system trace (device idle gaps, step
//!   times).
//!
//! # A member's inputs
//!
//! Each input is bound one of three ways ([`TensorRole`]): by the caller per call
//! (**user**: ids, positions), by the bundle to its state tensor of that name
//! (**state**, both as the input and as the output that aliases it), or by the bundle
//! to its weight tensor (**weight**, by checkpoint key). The role comes from, in order:
//! the caller ([`MemberSpec::role`]); the metaneff's `type`; the bundle's declared user
//! inputs ([`BundleBuilder::user_inputs`]); an alias (an aliased input is a state); the
//! weight file (an input whose key is in it is a weight); otherwise user, unless user
//! inputs are declared (by the builder or by a metaneff), when the input is
//! [`BundleError::UnboundInput`]. A weight's key is the caller's
//! ([`MemberSpec::weight_key`]), the metaneff's `checkpoint_key`, or the input's name.
//!
//! # Bundle directory
//!
//! ```text
//! <dir>/bundle.json                 the manifest (below)
//! <dir>/<member>/graph.neff         a member's NEFF
//! <dir>/<member>/metaneff.pb        its metadata (optional)
//! <dir>/weights.safetensors         the weights (or weights/tp{rank}_sharded_checkpoint.safetensors)
//! ```
//!
//! `bundle.json`: `{"format": 1, "config": {"vocab": 256, "hidden": 64, "layers": 2,
//! "heads": 4, "head_dim": 16, "ctx": 128, "slots": 4}, "weights": "weights.safetensors",
//! "members": [{"name": "decode_b1", "file": "decode_b1/graph.neff", "metaneff":
//! "decode_b1/metaneff.pb", "bucket": {"batch": 1, "seq_len": 1}, "kind": "decode",
//! "sampling": "ids"}]}`. Paths are relative to the directory; `metaneff` defaults to
//! `metaneff.pb` beside the NEFF (none if absent), `weights` to `weights.safetensors`;
//! `kind` is `prefill`, `decode` or `chain` (a chain stage); `sampling` is `logits` or
//! `ids`. A tensor-parallel bundle adds `"tensor_parallel": {"world": W}`: its members
//! compute one rank's part of the model each, so the directory loads only as a rank of a
//! world of W ([`BundleBuilder::rank`]; otherwise [`BundleError::WorldMismatch`]).
//! Unknown keys are ignored.
//!
//! # Memory
//!
//! A bundle holds, per core, its members' models, one tensor per weight and one per
//! state ([`Bundle::memory`]); the tensors of [`Member::sets`] (user inputs and
//! outputs) are the caller's.

mod aliases;
mod batching;
mod bucket;
mod builder;
mod bundle;
mod chain;
mod error;
mod generator;
mod load;
mod manifest;
mod metaneff;
mod pipelined;
mod sampling;
mod stop;
mod timeline;
mod weights;

pub use aliases::{Alias, Aliases, bind_state};
pub(crate) use aliases::{check_alias, check_fits};
pub use batching::{
    BatchError, Batcher, BatchingOptions, CoreBatchMetrics, Finish, Generated, TokenStream,
};
pub use bucket::{PAD_POSITION, Padded};
pub use builder::{BundleBuilder, MemberSpec};
pub use bundle::{Bucket, Bundle, BundleMemory, Member, MemberKind, ModelConfig, Sampling};
pub use chain::{DecodeChain, IDS_INPUT, NEXT_IDS_OUTPUT, POSITIONS_INPUT, SEQ_IDS_INPUT};
pub use error::BundleError;
pub use generator::{
    BatchGeneration, GenerateOptions, Generation, GenerationStream, Generator, LOGITS_OUTPUT,
    MASK_INPUT, SamplingMode,
};
pub use load::{
    LoadProgress, LoadReport, UploadMeasurement, measure_upload, write_synthetic_weights,
};
pub use metaneff::{MUST_ALIAS_SUFFIX, MetaNeff, MetaTensor, TensorRole};
pub use pipelined::{
    DEFAULT_DECODE_DEPTH, DecodeOptions, DecodeStart, MAX_DECODE_DEPTH, PipelinedDecode,
};
pub use sampling::{Sampler, SamplingParams, argmax};
pub use stop::{Detokenize, FinishReason, StopConditions, StopState};
pub use timeline::{ExecSpan, Timeline, p50};
pub use weights::{WeightFile, WeightView, shard_file_name};
